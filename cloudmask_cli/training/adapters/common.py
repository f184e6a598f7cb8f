"""Pieces every dataset adapter uses: raster-backed samples, scene tiles, splits."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.scene import Radiometry, Scene
from cloudmask_cli.sensors import Band, get_sensor
from cloudmask_cli.training.sample import Box, RawSample, raster_shape, read_raster_window

warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)


BIOME_SHADOW = 64  # the Biome / CCA mask code of cloud shadow


def sensor_bands(sensor: str, names: Sequence[str]) -> tuple[Band, ...]:
    """`Band` records of a bundled sensor, by name, in the given order."""
    sens = get_sensor(sensor)
    return tuple(sens.band(n) for n in names)


@dataclass(frozen=True)
class BandFile:
    """One band: a raster file, its 1-based band index, DN -> physical, DN no-data values."""

    path: str
    index: int = 1
    radiometry: Radiometry = field(default_factory=Radiometry)
    nodata: tuple[float, ...] = ()


@dataclass
class RasterSample(RawSample):
    """A sample whose bands and label are (windows of) raster files on one pixel grid.

    ``origin``/``size`` select a tile of larger rasters; ``label_lut`` remaps raw label values to
    the scheme's codes (e.g. "mask > 0" -> 1) before the scheme is applied.
    """

    id: str
    bands: tuple[Band, ...]
    scheme: str
    files: tuple[BandFile, ...]
    label_path: str
    label_index: int = 1
    label_lut: tuple[int, ...] | None = None
    origin: tuple[int, int] = (0, 0)
    size: tuple[int, int] | None = None

    @cached_property
    def shape(self) -> tuple[int, int]:
        return self.size if self.size is not None else raster_shape(self.label_path)

    def _read(self, box: Box, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
        r, c, h, w = box
        abs_box = (r + self.origin[0], c + self.origin[1], h, w)
        out = np.empty((len(bands), h, w), dtype=np.float32)
        for k, i in enumerate(bands):
            f = self.files[i]
            dn = read_raster_window(f.path, abs_box, [f.index], what=f"band {self.bands[i].name}")[
                0
            ]
            x = f.radiometry.apply(dn)
            bad = ~np.isfinite(x)
            for v in f.nodata:
                bad |= dn == v
            x[bad] = np.nan
            out[k] = x
        label = read_raster_window(self.label_path, abs_box, [self.label_index], what="label")[0]
        if self.label_lut is not None:
            label = np.asarray(self.label_lut, dtype=np.uint8)[label.astype(np.int64).clip(0, 255)]
        return out, label


_SCENES: dict[tuple[str, float | None, tuple[str, ...]], Scene] = {}


def open_scene(path: str, resolution: float | None, names: tuple[str, ...]) -> Scene:
    """A product opened through the project's readers, cached per process (workers re-open)."""
    key = (path, resolution, names)
    if key not in _SCENES:
        from cloudmask_cli.products import open_product

        scene = open_product(path, resolution=resolution)
        _SCENES[key] = scene.select(list(names)) if names else scene
    return _SCENES[key]


@dataclass
class SceneSample(RawSample):
    """A tile of a product read through `cloudmask_cli.products` (physical values from its
    metadata), labelled by a raster resampled (nearest) onto the product's working grid."""

    id: str
    bands: tuple[Band, ...]
    scheme: str
    product: str
    label_path: str
    origin: tuple[int, int]
    size: tuple[int, int]
    resolution: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.size

    def scene(self) -> Scene:
        return open_scene(self.product, self.resolution, tuple(b.name for b in self.bands))

    def _read(self, box: Box, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
        r, c, h, w = box
        win = Window(c + self.origin[1], r + self.origin[0], w, h)
        scene = self.scene()
        image = scene.read(win, bands)
        label = read_on_grid(self.label_path, scene.grid.window_bounds(win), (h, w))
        return image, label


def read_on_grid(
    path: str, bounds: tuple[float, float, float, float], shape: tuple[int, int]
) -> np.ndarray:
    """A label raster's values over ``bounds`` at ``shape`` (nearest; outside: 0)."""
    try:
        with rasterio.open(path) as ds:
            win = rasterio.windows.from_bounds(*bounds, transform=ds.transform)
            return ds.read(
                1,
                window=win,
                out_shape=shape,
                resampling=Resampling.nearest,
                boundless=True,
                fill_value=0,
            )
    except RasterioError as exc:
        raise InputError(path, f"cannot read label ({first_line(exc)})") from None


def in_split(sample_id: str, split: str | None, val_fraction: float) -> bool:
    """Deterministic train/val split by a hash of the id (for datasets without their own)."""
    if split in (None, "all"):
        return True
    if split not in ("train", "val"):
        raise ValueError(f"split must be train, val or all for this dataset, got {split!r}")
    is_val = (zlib.crc32(sample_id.encode()) % 10_000) < val_fraction * 10_000
    return is_val == (split == "val")


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise InputError(path, f"not a {what} folder")
    return path


def none_found(path: Path, what: str) -> InputError:
    return InputError(path, f"no {what} found")
