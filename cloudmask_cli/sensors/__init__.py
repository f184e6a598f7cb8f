"""Sensor definitions: YAML files -> `Sensor` and `Band` records.

The bundled definitions are the repository's ``sensors/*.yaml`` (installed as the package
``cloudmask_cli.sensor_files``); a user passes their own with
``--sensor my.yaml``. Everything the model knows about a band is derived from these fields
(see `cloudmask_cli.descriptors`), so no sensor constant is written in code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import StrictBool, field_validator

from cloudmask_cli import descriptors
from cloudmask_cli.errors import InputError
from cloudmask_cli.schema import parse, reads_on, schema

OPTICAL = ("reflectance", "brightness_temperature")
SAR_UNITS = ("db", "linear")


@schema
class Band:
    """One band of a sensor as its YAML describes it (unknown keys are errors)."""

    name: str
    type: str
    wavelength: tuple[float, float] | None = None
    resolution: float | None = None
    source: str | None = None  # how a reader finds the band in a product (file key, band id)
    scale: float | Literal["metadata"] = 1.0  # "metadata": the reader takes it from the product
    offset: float | Literal["metadata"] = 0.0
    units: str | None = None  # SAR only: "db" or "linear"
    description: str = ""
    panchromatic: StrictBool = False  # a pan band: not used to pick the default resolution

    @field_validator("wavelength", mode="before")
    @classmethod
    def _range(cls, v: Any) -> Any:
        if v is not None and (
            not isinstance(v, (list, tuple))
            or len(v) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        ):
            raise reads_on(f"must be [min_nm, max_nm], got {v!r}")
        return v

    @field_validator("scale", "offset", mode="before")
    @classmethod
    def _number_or_metadata(cls, v: Any) -> Any:
        if v == "metadata":
            return v
        try:
            return float(v)
        except (TypeError, ValueError):
            raise reads_on(f"must be a number or 'metadata', got {v!r}") from None

    @field_validator("resolution", mode="before")
    @classmethod
    def _metres(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0):
            raise reads_on("must be a positive number of metres")
        return v

    @field_validator("source", "description", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return v if v is None else str(v)  # a band number is a file key too

    def __post_init__(self) -> None:
        t, wl = self.type, self.wavelength
        if t not in descriptors.BAND_TYPES:
            raise ValueError(f"unknown type {t!r} (expected {', '.join(descriptors.BAND_TYPES)})")
        if t in OPTICAL:
            if wl is None:
                raise ValueError(f"missing 'wavelength: [min_nm, max_nm]' for {t}")
            if not 300 < wl[0] <= wl[1]:
                raise ValueError(f"wavelength {list(wl)} must satisfy 300 < min <= max (nm)")
        elif wl is not None:
            raise ValueError(f"a {t} band has no wavelength")
        if t.startswith("sar_") and t != "sar_angle":
            units = (self.units or "db").lower()
            if units not in SAR_UNITS:
                raise ValueError(f"units must be 'db' or 'linear', got {self.units!r}")
            object.__setattr__(self, "units", units)

    @cached_property
    def descriptor(self) -> np.ndarray:
        return descriptors.descriptor(self.type, self.wavelength)


@dataclass(frozen=True)
class Sensor:
    """A sensor definition: its bands in product (or stack) order."""

    name: str
    bands: tuple[Band, ...]
    title: str = ""
    platforms: tuple[str, ...] = ()
    nodata: float | None = None
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def band(self, name: str) -> Band:
        for b in self.bands:
            if b.name == name:
                return b
        raise KeyError(f"sensor {self.name} has no band {name!r}")

    @property
    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]


def _parse_band(raw: Any, i: int, path: str) -> Band:
    if not isinstance(raw, dict):
        raise InputError(path, f"band {i + 1}: expected a mapping with name/type, got {raw!r}")
    name = raw.get("name")
    if not name or not isinstance(name, str):
        raise InputError(path, f"band {i + 1}: missing 'name'")
    if "type" not in raw:
        raise InputError(path, f"band {name!r}: missing 'type'")
    return parse(Band, raw, path, where=f"band {name!r}")


def parse_sensor(data: Any, path: str = "<sensor>") -> Sensor:
    """Validate a sensor definition (already parsed YAML) and build a `Sensor`."""
    if not isinstance(data, dict):
        raise InputError(path, "a sensor definition must be a mapping with 'name' and 'bands'")
    name = data.get("name")
    if not name:
        raise InputError(path, "missing 'name'")
    raw_bands = data.get("bands")
    if not raw_bands or not isinstance(raw_bands, list):
        raise InputError(path, "missing 'bands' (a list with one entry per band)")
    bands = tuple(_parse_band(b, i, path) for i, b in enumerate(raw_bands))
    seen: set[str] = set()
    for b in bands:
        if b.name in seen:
            raise InputError(path, f"duplicate band name {b.name!r}")
        seen.add(b.name)
    nodata = data.get("nodata")
    known = {"name", "bands", "title", "platforms", "nodata"}
    return Sensor(
        name=str(name),
        bands=bands,
        title=str(data.get("title", name)),
        platforms=tuple(data.get("platforms", ()) or ()),
        nodata=float(nodata) if nodata is not None else None,
        path=path,
        extra={k: v for k, v in data.items() if k not in known},
    )


def load_sensor_file(path: str | Path) -> Sensor:
    """Load and validate a sensor YAML file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "sensor definition not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise InputError(p, f"not valid YAML{where}") from None
    return parse_sensor(data, str(p))


def _bundled_dir() -> Path:
    return Path(str(resources.files("cloudmask_cli.sensor_files")))


def bundled_sensors() -> dict[str, Sensor]:
    """All bundled sensor definitions by name."""
    out = {}
    for f in sorted(_bundled_dir().glob("*.yaml")):
        s = load_sensor_file(f)
        out[s.name] = s
    return out


def get_sensor(name_or_path: str | Path) -> Sensor:
    """A bundled sensor by name, or a user YAML by path."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return load_sensor_file(text)
    sensors = bundled_sensors()
    if text not in sensors:
        raise InputError(text, f"unknown sensor (bundled: {', '.join(sensors)})")
    return sensors[text]
