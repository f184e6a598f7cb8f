"""Labelled samples: the record every dataset reader yields, and the on-disk training format.

A `RawSample` is one labelled image: its bands (`Band` records, hence descriptors), the name of
its label scheme, its size, and ``read(window, bands)`` -> (physical float32 ``[k, h, w]`` with
NaN where invalid, uint8 label ``[h, w]`` in the dataset's own codes). Adapters for the public
datasets yield their own `RawSample` kinds; `StoredSample` reads the training format that
`write_sample` writes (docs/training-format.md):

``<id>.yaml`` (metadata) beside ``<id>.tif`` + ``<id>.label.tif`` or one ``<id>.npz``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import yaml
from rasterio.errors import RasterioError
from rasterio.windows import Window

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.sensors import Band, Sensor, bundled_sensors, get_sensor, parse_sensor

FORMAT = "cloudmask-training-sample"
VERSION = 1
Box = tuple[int, int, int, int]  # row, col, height, width


class RawSample:
    """One labelled image; subclasses implement `shape` and `_read`."""

    id: str
    bands: tuple[Band, ...]
    scheme: str

    @property
    def shape(self) -> tuple[int, int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _read(self, box: Box, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # pragma: no cover

    def read(
        self, box: Box | None = None, bands: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(physical float32 ``[k, h, w]`` NaN = invalid, uint8 label ``[h, w]``)."""
        h, w = self.shape
        box = box or (0, 0, h, w)
        idx = list(range(len(self.bands))) if bands is None else list(bands)
        image, label = self._read(box, idx)
        image = np.asarray(image, dtype=np.float32)
        if image.shape[1:] != label.shape or image.shape[0] != len(idx):
            raise InputError(
                self.id,
                f"image window {image.shape} and label {label.shape} do not match "
                f"({len(idx)} bands requested)",
            )
        return image, np.asarray(label)


def to_physical(
    stored: np.ndarray,
    scale: Sequence[float] | None,
    offset: Sequence[float] | None,
    nodata: float | None,
) -> np.ndarray:
    """Stored values ``[k, h, w]`` -> float32 physical, NaN where nodata or non-finite."""
    x = stored.astype(np.float32)
    invalid = ~np.isfinite(x)
    if nodata is not None:
        invalid |= stored == nodata
    if scale is not None:
        x *= np.asarray(scale, dtype=np.float32)[:, None, None]
    if offset is not None:
        x += np.asarray(offset, dtype=np.float32)[:, None, None]
    x[invalid] = np.nan
    return x


def read_raster_window(
    path: str, box: Box, indexes: list[int], *, what: str = "raster"
) -> np.ndarray:
    """A window ``(row, col, h, w)`` of 1-based band ``indexes`` of a raster (boundless: 0)."""
    r, c, h, w = box
    try:
        with rasterio.open(path) as ds:
            return ds.read(indexes, window=Window(c, r, w, h), boundless=True, fill_value=0)
    except RasterioError as exc:
        raise InputError(path, f"cannot read {what} ({first_line(exc)})") from None


def raster_shape(path: str | Path) -> tuple[int, int]:
    try:
        with rasterio.open(path) as ds:
            return ds.height, ds.width
    except RasterioError as exc:
        raise InputError(path, f"cannot read raster ({first_line(exc)})") from None


# -- the training format --------------------------------------------------------------------
@dataclass
class StoredSample(RawSample):
    """A sample in the training format (see the module docstring)."""

    id: str
    bands: tuple[Band, ...]
    scheme: str
    image: str
    label: str
    scale: tuple[float, ...] | None = None
    offset: tuple[float, ...] | None = None
    nodata: float | None = None
    stored_shape: tuple[int, int] | None = None
    source: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def shape(self) -> tuple[int, int]:
        if self.stored_shape is not None:
            return self.stored_shape
        if self.image.endswith(".npz"):
            return tuple(self._npz()["label"].shape)
        return raster_shape(self.image)

    def _npz(self) -> dict[str, np.ndarray]:
        try:
            with np.load(self.image, allow_pickle=False) as z:
                return {"image": z["image"], "label": z["label"]}
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(
                self.image, f"not a training .npz with image and label ({exc})"
            ) from None

    def _read(self, box: Box, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
        r, c, h, w = box
        if self.image.endswith(".npz"):
            z = self._npz()
            stored = z["image"][bands, r : r + h, c : c + w]
            label = z["label"][r : r + h, c : c + w]
        else:
            stored = read_raster_window(self.image, box, [i + 1 for i in bands], what="image")
            label = read_raster_window(self.label, box, [1], what="label")[0]
        scale = None if self.scale is None else [self.scale[i] for i in bands]
        offset = None if self.offset is None else [self.offset[i] for i in bands]
        return to_physical(stored, scale, offset, self.nodata), label


def _sensor_from_meta(value: Any, where: str) -> Sensor:
    if isinstance(value, str):
        return get_sensor(value)
    if isinstance(value, dict):
        return parse_sensor(value, where)
    raise InputError(where, "'sensor' must be a bundled sensor name or a sensor mapping")


def read_sample_meta(path: str | Path) -> StoredSample:
    """Parse one sample's metadata YAML (or JSON) into a `StoredSample`."""
    path = Path(path)
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(path, f"unreadable sample metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(path, f"not a training sample description (format != {FORMAT})")
    if meta.get("version") != VERSION:
        raise InputError(path, f"unsupported training sample version {meta.get('version')!r}")
    for key in ("sensor", "bands", "scheme", "image"):
        if key not in meta:
            raise InputError(path, f"missing {key!r}")
    sensor = _sensor_from_meta(meta["sensor"], str(path))
    try:
        bands = tuple(sensor.band(str(n)) for n in meta["bands"])
    except KeyError as exc:
        raise InputError(path, str(exc.args[0])) from None
    n = len(bands)
    scale, offset = meta.get("scale"), meta.get("offset")
    for key, val in (("scale", scale), ("offset", offset)):
        if val is not None and (not isinstance(val, list) or len(val) != n):
            raise InputError(path, f"{key!r} must list one number per band ({n})")
    scheme = str(meta["scheme"])
    if scheme.endswith((".yaml", ".yml")):
        scheme = str((path.parent / scheme).resolve())
    image = str(path.parent / meta["image"])
    label = str(path.parent / (meta.get("label") or meta["image"]))
    shape = meta.get("shape")
    return StoredSample(
        id=str(meta.get("id", path.stem)),
        bands=bands,
        scheme=scheme,
        image=image,
        label=label,
        scale=tuple(float(v) for v in scale) if scale is not None else None,
        offset=tuple(float(v) for v in offset) if offset is not None else None,
        nodata=float(meta["nodata"]) if meta.get("nodata") is not None else None,
        stored_shape=(int(shape[0]), int(shape[1])) if shape else None,
        source=dict(meta.get("source") or {}),
    )


def load_stored(root: str | Path, split: str | None = None) -> list[StoredSample]:
    """Samples of a training-format folder (``root/<split>/`` when ``split`` is given)."""
    root = Path(root)
    if root.is_file():
        return [read_sample_meta(root)]
    folder = root / split if split else root
    if not folder.is_dir():
        raise InputError(
            folder, "no such training data folder" + (f" (split {split!r})" if split else "")
        )
    metas = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    if not metas:
        raise InputError(folder, "holds no sample metadata files (<id>.yaml)")
    return [read_sample_meta(p) for p in metas]


def _sensor_entry(sensor: Sensor) -> str | dict[str, Any]:
    bundled = bundled_sensors()
    if sensor.name in bundled and bundled[sensor.name].bands == sensor.bands:
        return sensor.name
    bands = []
    for b in sensor.bands:
        entry: dict[str, Any] = {"name": b.name, "type": b.type}
        if b.wavelength is not None:
            entry["wavelength"] = list(b.wavelength)
        if b.units:
            entry["units"] = b.units
        bands.append(entry)
    return {"name": sensor.name, "bands": bands}


def write_sample(
    folder: str | Path,
    sample_id: str,
    image: np.ndarray,
    label: np.ndarray,
    *,
    sensor: Sensor | str,
    bands: Sequence[str],
    scheme: str,
    fmt: str = "tif",
    scale: Sequence[float] | None = None,
    offset: Sequence[float] | None = None,
    nodata: float | None = None,
    crs: Any = None,
    transform: Any = None,
    source: dict[str, Any] | None = None,
) -> Path:
    """Write one sample in the training format; returns its metadata path.

    ``image`` ``[N, H, W]`` holds physical values (float, NaN = invalid) or stored values that
    ``scale``/``offset`` turn into physical ones; ``label`` ``[H, W]`` uint8 in ``scheme``'s codes.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sens = get_sensor(sensor) if isinstance(sensor, str) else sensor
    for name in bands:
        sens.band(name)  # KeyError names the band
    if image.ndim != 3 or image.shape[0] != len(bands) or image.shape[1:] != label.shape:
        raise ValueError(f"image {image.shape} / label {label.shape} / {len(bands)} bands mismatch")
    label = np.asarray(label, dtype=np.uint8)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "id": sample_id,
        "sensor": _sensor_entry(sens),
        "bands": list(bands),
        "scheme": scheme,
        "shape": [int(label.shape[0]), int(label.shape[1])],
    }
    if fmt == "npz":
        np.savez_compressed(folder / f"{sample_id}.npz", image=image, label=label)
        meta.update(image=f"{sample_id}.npz", label=f"{sample_id}.npz")
    elif fmt == "tif":
        _write_tif(folder / f"{sample_id}.tif", image, crs, transform, nodata)
        _write_tif(folder / f"{sample_id}.label.tif", label[None], crs, transform, None)
        meta.update(image=f"{sample_id}.tif", label=f"{sample_id}.label.tif")
    else:
        raise ValueError(f"unknown training sample format {fmt!r} (tif or npz)")
    if scale is not None:
        meta["scale"] = [float(v) for v in scale]
    if offset is not None:
        meta["offset"] = [float(v) for v in offset]
    if nodata is not None:
        meta["nodata"] = float(nodata)
    if source:
        meta["source"] = source
    path = folder / f"{sample_id}.yaml"
    path.write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    return path


def _write_tif(
    path: Path, data: np.ndarray, crs: Any, transform: Any, nodata: float | None
) -> None:
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype.name,
        "compress": "deflate",
    }
    if data.shape[1] >= 256 and data.shape[2] >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
