"""Readers of the public cloud datasets' own layouts, and conversion to the training format.

Every adapter is ``adapter(root, split=..., **options) -> list[RawSample]``; `open_dataset` looks
one up by kind, `convert` writes its samples in the training format (docs/training-format.md).
``cloudmask convert KIND SRC DST [--split S] [--option key=value]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloudmask_cli.errors import InputError
from cloudmask_cli.sensors import Sensor
from cloudmask_cli.training.adapters import landsat, local, perusat, sentinel2
from cloudmask_cli.training.sample import RawSample, load_stored, write_sample

ADAPTERS: dict[str, Callable[..., list[Any]]] = {
    "training": lambda root, split=None: load_stored(root, split),
    "biome-patches": local.biome_patches,
    "oncloudn": local.oncloudn,
    "sen1floods11": local.sen1floods11,
    "cloudsen12": sentinel2.cloudsen12,
    "cmc": sentinel2.cmc,
    "kappaset": sentinel2.kappaset,
    "scl": sentinel2.scl,
    "biome": landsat.biome,
    "l7irish": landsat.l7irish,
    "sparcs": landsat.sparcs,
    "cloud38": landsat.cloud38,
    "cloudperu2": perusat.cloudperu2,
}


def open_dataset(
    kind: str, root: str | Path, split: str | None = None, options: dict[str, Any] | None = None
) -> list[RawSample]:
    """The samples of a dataset in its own layout (``kind``) or in the training format."""
    if kind not in ADAPTERS:
        raise InputError(root, f"unknown dataset kind {kind!r} (known: {', '.join(ADAPTERS)})")
    fn = ADAPTERS[kind]
    options = dict(options or {})
    if kind != "training":
        params = inspect.signature(fn).parameters
        unknown = [k for k in options if k not in params or k in ("root", "split")]
        if unknown:
            allowed = [p for p in params if p not in ("root", "split")]
            raise InputError(root, f"unknown option(s) {unknown} for {kind} (allowed: {allowed})")
    elif options:
        raise InputError(root, f"the training format takes no options, got {sorted(options)}")
    root = Path(root)
    if not root.exists():
        raise InputError(root, "no such dataset folder")
    try:
        return fn(root, split=split, **options)
    except ValueError as exc:
        raise InputError(root, str(exc)) from None


def convert(
    kind: str,
    src: str | Path,
    dst: str | Path,
    split: str | None = None,
    options: dict[str, Any] | None = None,
    fmt: str = "tif",
    skip_unlabelled: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write a dataset's samples into ``dst`` (``dst/<split>/`` when a split is given) in the
    training format; samples with no labelled pixel are skipped when ``skip_unlabelled``."""
    from cloudmask_cli.training.labels import load_scheme

    samples = open_dataset(kind, src, split, options)
    folder = Path(dst) / split if split else Path(dst)
    written = []
    for i, s in enumerate(samples):
        image, label = s.read()
        if skip_unlabelled and not load_scheme(s.scheme).bits(label, s.id).any():
            continue
        name = _sensor_name(s)  # a bundled sensor by name; mixed modalities inline
        sensor: Sensor | str = name if name else Sensor(name="custom", bands=s.bands)
        written.append(
            write_sample(
                folder,
                s.id,
                image,
                label,
                sensor=sensor,
                bands=[b.name for b in s.bands],
                scheme=s.scheme,
                fmt=fmt,
                source={"dataset": kind, "path": str(src)},
            )  # fmt: skip
        )
        if progress:
            progress(i + 1, len(samples))
    return written


def _sensor_name(sample: RawSample) -> str | None:
    from cloudmask_cli.sensors import bundled_sensors

    for name, sens in bundled_sensors().items():
        if all(b in sens.bands for b in sample.bands):
            return name
    return None


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``--option key=value`` items as adapter options, each value read as YAML."""
    import yaml

    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(None, f"--option {item!r}: expected key=value")
        options[key] = yaml.safe_load(value)
    return options


def add_dataset_arguments(parser: Any, data_help: str = "a dataset folder") -> None:
    """The arguments naming a dataset (DATA, --kind, --split, --option) for an argparse tool."""
    parser.add_argument("data", help=data_help)
    parser.add_argument("--kind", default="training")
    parser.add_argument("--split", default=None, help="default: every split")
    parser.add_argument("--option", action="append", default=[], help="adapter option key=value")


__all__ = ["ADAPTERS", "add_dataset_arguments", "convert", "open_dataset", "parse_options"]
