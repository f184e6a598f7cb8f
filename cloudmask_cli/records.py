"""Typed results: what a run (its sidecar), `cloudmask info` and `cloudmask evaluate` report.

Each is a pydantic model built with its fields named, so no reader guesses keys; one
serialiser writes them all (`Record.to_json`: ``json.dumps`` of `Record.to_dict`, the JSON
the files have always held) and `Record.read` reads one back (keys a later version adds are
ignored; those an earlier one lacked take their defaults). A record also reads like the JSON
it writes (``sidecar["class_fractions"]``), as the plain dicts of earlier versions did.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from cloudmask_cli.classes import cloud_fraction
from cloudmask_cli.errors import InputError
from cloudmask_cli.schema import problem

R = TypeVar("R", bound="Record")


class Record(BaseModel, Mapping[str, Any]):
    """A result record: typed fields, one JSON form."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)
    WHAT: ClassVar[str] = "record"  # what a file that fails to read as one is not
    # fields written only when set (a quicklook's path, the time it took)
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _serialise(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        d = handler(self)
        for key in self.OMIT_WHEN_NONE:
            if d.get(key) is None:
                d.pop(key, None)
        return d

    def to_dict(self) -> dict[str, Any]:
        """The JSON form as plain dicts, lists and numbers."""
        return json.loads(self.to_json())

    def to_json(self, indent: int | None = 2) -> str:
        # json.dumps, not pydantic's writer: NaN stays NaN and odd metadata values (dates,
        # paths) become strings, as the files written before these records were typed
        return json.dumps(self.model_dump(mode="python"), indent=indent, default=str)

    def write(self, path: str | PathLike[str]) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def read(cls: type[R], path: str | PathLike[str]) -> R:
        """The record in the JSON file ``path``; an `InputError` naming it when it is not one."""
        try:
            return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(path, f"cannot read ({exc.strerror})") from None
        except ValidationError as exc:
            raise InputError(path, f"not a {cls.WHAT}: {problem(exc, cls)}") from None

    # read access as the JSON form (Mapping), for code written against the dicts
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


class Windows(Record):
    size: int
    overlap: int
    planned: int
    run: int
    empty: int


class Timings(Record):
    OMIT_WHEN_NONE = ("quicklook_s",)

    total_s: float
    read_s_summed_over_threads: float
    model_s: float
    quicklook_s: float | None = None


class Sidecar(Record):
    """What `cloudmask run` writes beside a mask (``mask.tif.json``); its presence marks the run
    complete. Fields an earlier version did not write default to None."""

    WHAT = "cloudmask run sidecar"
    OMIT_WHEN_NONE = ("quicklook",)

    cloudmask_version: str
    product: str
    product_id: str
    product_type: str | None = None
    datetime: str | None = None
    sensor: str | None = None
    style: str
    codes: dict[str, str] = {}
    class_fractions: dict[str, float]
    valid_fraction: float
    model: dict[str, Any] = {}
    bands: list[str] = []
    radiometry: dict[str, Any] = {}
    radiometric_offsets: Any = None
    auxiliary: Any = None
    resolution: float | None = None
    crs: str | None = None
    shape: list[int] = []
    aoi: str | None = None
    spectral_tests: bool | None = None
    windows: Windows | None = None
    device: str | None = None
    batch_size: int | None = None
    precision: str | None = None
    runtime: str | None = None
    flips: bool | None = None
    oom_events: int | None = None
    float32_retries: int | None = None
    read_threads: int | None = None
    timings: Timings | None = None
    quicklook: str | None = None

    @property
    def cloud_fraction(self) -> float | None:
        """The share of valid pixels that are cloud, as the style's classes say (None where a
        class of the style mixes cloud with something else)."""
        return cloud_fraction(self.style, self.class_fractions)


class GridInfo(Record):
    crs: str | None
    width: int
    height: int
    resolution: float
    bounds: list[float]


class BandInfo(Record):
    name: str
    type: str
    wavelength: list[float] | None
    resolution: float | None
    descriptor: str
    radiometry: dict[str, Any]
    path: str | None


class SceneInfo(Record):
    """What `cloudmask info` prints: the product, its reader's metadata (written at the top
    level, as the reader names it), the grid and the bands."""

    OMIT_WHEN_NONE = ("valid_fraction",)

    product: str
    product_type: str | None
    sensor: str
    metadata: dict[str, Any] = {}
    grid: GridInfo
    bands: list[BandInfo]
    valid_fraction: float | None = None  # a full read: `cloudmask info` adds it

    @model_serializer(mode="wrap")
    def _serialise(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        d = handler(self)
        head = {k: d.pop(k) for k in ("product", "product_type", "sensor")}
        metadata = d.pop("metadata")
        if d.get("valid_fraction") is None:
            d.pop("valid_fraction", None)
        return {**head, **metadata, **d}


class Binary(Record):
    """One grouping of the classes scored as positive against the rest: counts and ratios
    (None where a ratio has no pixels to be taken over)."""

    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None
    recall: float | None
    f1: float | None
    balanced_accuracy: float | None
    iou: float | None
    undetermined: int  # predicted sets that are neither all positive nor all negative


class ScoreReport(Record):
    """Scores of one set of pixels (`training.metrics.Scores.report`)."""

    pixels: int
    unscored_pixels: int
    predicted_no_data: int
    per_class: dict[str, Binary]
    cloud: Binary
    invalid: Binary


class EvaluationReport(Record):
    """What `cloudmask evaluate --json` writes: what was scored, on what, and the scores per
    dataset and over all of them (`training.metrics.Scores.report`)."""

    WHAT = "cloudmask evaluate report"

    data: str
    weights: str | None = None
    weights_sha256: str | None = None
    spectral_tests: bool | None = None
    baseline: str | None = None
    peer: str | None = None
    mask: str | None = None
    bands: str = "all"
    samples: int
    excluded: dict[str, dict[str, str]] = {}  # {dataset: {sample id: reason}}
    cloud_free: dict[str, list[str]] = {}  # {dataset: [sample id]}
    perturbation: str | None = None
    datasets: dict[str, ScoreReport]
    overall: ScoreReport
