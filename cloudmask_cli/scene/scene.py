"""Scene: a product's bands on one working grid, read window by window (`cloudmask_cli.scene`)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.records import BandInfo, GridInfo, SceneInfo
from cloudmask_cli.scene.grid import Grid
from cloudmask_cli.scene.resample import (
    downsample_read,
    read_memory,
    read_resampled,
    upsample_mask,
    upsample_read,
)
from cloudmask_cli.scene.sources import BandSource, Mask, to_physical
from cloudmask_cli.sensors import Band, Sensor


@dataclass
class _MaskTiles:
    """A mask's invalid pixels at the working resolution, one packed bit array per tile of the
    mask file (tile ``(k, j)``: working-grid rows ``k * rows`` and columns ``j * cols`` on)."""

    rows: int
    cols: int
    tiles: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def span(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """The rows ``r0:r1`` and columns ``c0:c1`` (every tile they touch held)."""
        out = np.empty((r1 - r0, c1 - c0), dtype=bool)
        for k in range(r0 // self.rows, (r1 - 1) // self.rows + 1):
            for j in range(c0 // self.cols, (c1 - 1) // self.cols + 1):
                bits = self.tiles[k, j]
                ta, tb = max(r0, k * self.rows), min(r1, (k + 1) * self.rows)
                tc, td = max(c0, j * self.cols), min(c1, (j + 1) * self.cols)
                part = np.unpackbits(bits[ta - k * self.rows : tb - k * self.rows], axis=1,
                                     count=td - j * self.cols)  # fmt: skip
                out[ta - r0 : tb - r0, tc - c0 : td - c0] = part[:, tc - j * self.cols :]
        return out


class Scene:
    """A product's bands on a working grid; `read` returns float32 physical values, NaN invalid."""

    def __init__(
        self,
        *,
        sensor: Sensor,
        bands: Sequence[BandSource],
        crs: CRS,
        bounds: tuple[float, float, float, float],
        resolution: float | None = None,
        masks: Sequence[Mask] = (),
        product: str = "",
        product_type: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not bands:
            raise InputError(product, "the product has no readable bands")
        self.sensor = sensor
        self.bands = tuple(bands)
        self.masks = tuple(masks)
        self.crs = crs
        self.bounds = bounds
        self.product = product
        self.product_type = product_type
        self.metadata = dict(metadata or {})
        self.grid = Grid.from_bounds(crs, bounds, resolution or self.default_resolution)
        # One handle per file, shared by the read threads, each used under its own lock:
        # GDAL caches decoded blocks per handle, so per-thread handles would decode every
        # JPEG 2000 tile once per thread and hold one block cache per thread.
        self._handles: dict[str, rasterio.io.DatasetReader] = {}
        self._vrts: dict[str, WarpedVRT] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        # per mask: its tiles tested and still needed, as bits (`_mask_span`)
        self._mask_tiles: dict[Mask, _MaskTiles] = {}

    # -- grid -------------------------------------------------------------------------
    @property
    def default_resolution(self) -> float:
        """The finest multispectral (non-panchromatic) band's resolution."""
        res = [
            self.native_resolution(b)
            for b in self.bands
            if b.band.type == "reflectance"
            and not b.band.panchromatic
            and "pan" not in b.band.name.lower()
        ]
        return min(res or [self.native_resolution(b) for b in self.bands])

    def native_resolution(self, src: BandSource) -> float:
        if src.resolution:
            return src.resolution
        if src.band.resolution:
            return src.band.resolution
        return abs(self._open(src.path).transform.a)

    def with_resolution(self, resolution: float | None) -> Scene:
        """The same scene on a grid of another resolution (metres, or CRS units)."""
        return Scene(
            sensor=self.sensor,
            bands=self.bands,
            crs=self.crs,
            bounds=self.bounds,
            resolution=resolution,
            masks=self.masks,
            product=self.product,
            product_type=self.product_type,
            metadata=self.metadata,
        )

    def select(self, names: Sequence[str]) -> Scene:
        """The same scene with only the named bands, in the given order."""
        by_name = {b.band.name: b for b in self.bands}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise InputError(self.product, f"no band(s) {', '.join(missing)} in this product")
        new = self.with_resolution(self.grid.resolution)
        new.bands = tuple(by_name[n] for n in names)
        return new

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    @property
    def band_names(self) -> list[str]:
        return [b.band.name for b in self.bands]

    @property
    def primary(self) -> list[int]:
        """Indices of the product's own bands (not auxiliary SAR/DEM): they decide validity."""
        return [i for i, b in enumerate(self.bands) if not b.warp] or list(range(len(self.bands)))

    def descriptors(self) -> np.ndarray:
        return np.stack([b.band.descriptor for b in self.bands])

    # -- reading ------------------------------------------------------------------------
    def _lock(self, path: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())

    def _open(self, path: str) -> rasterio.io.DatasetReader:
        with self._guard:
            ds = self._handles.get(path)
            if ds is None:
                try:
                    ds = rasterio.open(path)
                except RasterioError as exc:
                    raise InputError(path, f"cannot read raster ({first_line(exc)})") from None
                self._handles[path] = ds
            return ds

    def close(self) -> None:
        """Close the datasets this scene opened (it reopens them if read again)."""
        with self._guard:
            for vrt in self._vrts.values():
                vrt.close()
            for ds in self._handles.values():
                ds.close()
            self._vrts.clear()
            self._handles.clear()
            self._mask_tiles.clear()

    def _release(self, path: str) -> None:
        """Close one file's handle, and so drop its blocks from GDAL's cache (use under the
        file's lock; it is reopened when read again)."""
        with self._guard:
            ds = self._handles.pop(path, None)
        if ds is not None:
            ds.close()

    def read(self, window: Window, bands: Sequence[int] | None = None) -> np.ndarray:
        """Bands (all, or these indices) over a window of the working grid.

        Returns float32 ``(n_bands, h, w)`` physical values with NaN where a band is invalid
        and everywhere the scene's masks say no data.
        """
        window = _int_window(window)
        idx = range(len(self.bands)) if bands is None else bands
        out = np.empty((len(idx), int(window.height), int(window.width)), dtype=np.float32)
        for k, i in enumerate(idx):
            out[k] = self._read_band(self.bands[i], window)
        bad = self.invalid(window)
        if bad is not None:
            out[:, bad] = np.nan
        return out

    def read_band(self, index: int, window: Window, strip: bool = False) -> np.ndarray:
        """One band over a window: float32 ``(h, w)``, NaN where the band itself is invalid
        (the scene's own masks, `invalid`, not applied). ``strip``: the window is one of a
        top-to-bottom sequence over the same columns (see `_mask_span`)."""
        return self._read_band(self.bands[index], _int_window(window), strip)

    def invalid(self, window: Window, strip: bool = False) -> np.ndarray | None:
        """Where the scene's masks (those of every band) say no data; None without masks."""
        if not self.masks:
            return None
        return self._masks_invalid(self.masks, _int_window(window), strip)

    def read_valid(self, window: Window) -> np.ndarray:
        """Boolean valid-data mask of a window: some band valid and no scene mask set."""
        return np.isfinite(self.read(window)).any(axis=0)

    def _masks_invalid(
        self, masks: Sequence[Mask], window: Window, strip: bool = False
    ) -> np.ndarray:
        bad = np.zeros((int(window.height), int(window.width)), dtype=bool)
        for m in masks:
            if strip:
                bad |= self._mask_span(m, window)
            else:
                with self._lock(m.path):
                    bad |= self._mask_values(m, window)
        return bad

    def _mask_values(self, m: Mask, window: Window) -> np.ndarray:
        """``m.invalid`` of the mask resampled (nearest) onto a window (use under its lock)."""
        ds = self._open(m.path)
        index = m.index if isinstance(m.index, int) else list(m.index)
        shape = (int(window.height), int(window.width))
        bounds = self.grid.window_bounds(window)
        t, res = ds.transform, self.grid.resolution * (1 + 1e-6)
        coarser = abs(t.a) > res and abs(t.e) > res and t.b == t.d == 0 and t.e < 0
        if coarser and (ds.crs is None or ds.crs == self.crs):
            return upsample_mask(ds, m, bounds, shape)
        return m.invalid(read_resampled(ds, index, bounds, shape, Resampling.nearest, m.path))

    def _mask_span(self, m: Mask, window: Window) -> np.ndarray:
        """A strip of a mask, each tile of the mask file decoded once per run.

        Quality masks are multi-layer JPEG 2000 files with tall tiles (8 layers, 2048-row tiles
        for the 20 m bands): successive strips fall in one tile row, and decoding it again for
        each (or for each strip's columns, which change where windows without data are dropped)
        cost more than the bands. Here each tile is tested once and kept as bits at the working
        resolution until the strips have passed its row (nearest resampling is per pixel: a
        slice equals a read of the window). The layers GDAL decoded are dropped from its block
        cache with the handle: eight layers per tile pushed the bands' tiles out of it, and the
        next strip decoded those again.
        """
        r0, r1 = int(window.row_off), int(window.row_off + window.height)
        c0, c1 = int(window.col_off), int(window.col_off + window.width)
        res = self.grid.resolution
        with self._lock(m.path):
            held = self._mask_tiles.get(m)
            if held is None:
                ds = self._open(m.path)
                (block_h, block_w), t = ds.block_shapes[0], ds.transform
                held = _MaskTiles(max(1, math.floor(block_h * abs(t.e) / res + 1e-6)),
                                  max(1, math.floor(block_w * abs(t.a) / res + 1e-6)))  # fmt: skip
                self._mask_tiles[m] = held
            first = r0 // held.rows
            # strips come top to bottom: tile rows above this one are done with (a strip read
            # ahead out of order only decodes a tile again)
            for key in [key for key in held.tiles if key[0] < first]:
                del held.tiles[key]
            decoded = False
            for k in range(first, (r1 - 1) // held.rows + 1):
                for j in range(c0 // held.cols, (c1 - 1) // held.cols + 1):
                    if (k, j) not in held.tiles:
                        a, b = k * held.rows, min(self.grid.height, (k + 1) * held.rows)
                        c, d = j * held.cols, min(self.grid.width, (j + 1) * held.cols)
                        bad = self._mask_values(m, Window(c, a, d - c, b - a))
                        held.tiles[k, j] = np.packbits(bad, axis=1)
                        decoded = True
            if decoded and all(b.path != m.path for b in self.bands):
                self._release(m.path)
            return held.span(r0, r1, c0, c1)

    def _warped(self, path: str) -> WarpedVRT:
        """A bilinear warp of a raster in another CRS onto the working grid (use under lock)."""
        vrt = self._vrts.get(path)
        if vrt is None:
            ds = self._open(path)
            vrt = WarpedVRT(
                ds,
                crs=self.crs,
                transform=self.grid.transform,
                width=self.grid.width,
                height=self.grid.height,
                resampling=Resampling.bilinear,
                src_nodata=ds.nodata,
                nodata=np.nan,  # outside the raster's footprint -> NaN, i.e. band absent
                dtype="float32",
            )
            self._vrts[path] = vrt
        return vrt

    def _read_band(self, src: BandSource, window: Window, strip: bool = False) -> np.ndarray:
        shape = (int(window.height), int(window.width))
        if src.memory is not None:
            values = read_memory(src, self.crs, self.grid.window_transform(window), shape)
            if src.masks:
                values[self._masks_invalid(src.masks, window, strip)] = np.nan
            return values
        ds = self._open(src.path)
        if src.warp or (ds.crs is not None and ds.crs != self.crs):
            with self._lock(src.path):
                dn = self._warped(src.path).read(src.index, window=window)
            values = to_physical(src, dn)
            if src.masks:
                values[self._masks_invalid(src.masks, window, strip)] = np.nan
            return values
        bounds = self.grid.window_bounds(window)
        src_res = abs(ds.transform.a)
        ratio = src_res / self.grid.resolution
        with self._lock(src.path):
            if ratio > 1.0 + 1e-6:
                values = upsample_read(ds, src, bounds, shape)
            elif ratio < 1.0 - 1e-6:
                values = downsample_read(ds, src, bounds, shape)
            else:
                dn = read_resampled(ds, src.index, bounds, shape, Resampling.nearest, src.path)
                values = to_physical(src, dn)
        if src.masks:
            values[self._masks_invalid(src.masks, window, strip)] = np.nan
        return values

    def iter_blocks(self, size: int = 1024) -> Iterator[Window]:
        h, w = self.shape
        for r in range(0, h, size):
            for c in range(0, w, size):
                yield Window(c, r, min(size, w - c), min(size, h - r))

    def valid_fraction(self, max_pixels: int = 512) -> float:
        """Fraction of valid pixels, estimated on a coarse version of the grid (uses overviews)."""
        res = self.grid.resolution * max(1.0, max(self.shape) / max_pixels)
        coarse = self.with_resolution(res) if res > self.grid.resolution else self
        valid = coarse.read_valid(Window(0, 0, coarse.shape[1], coarse.shape[0]))
        coarse.close()
        return float(valid.mean())

    def info(self) -> SceneInfo:
        """Everything `cloudmask info` prints."""
        return SceneInfo(
            product=self.product,
            product_type=self.product_type,
            sensor=self.sensor.name,
            metadata=self.metadata,
            grid=GridInfo(
                crs=self.crs.to_string() if self.crs else None,
                width=self.shape[1],
                height=self.shape[0],
                resolution=self.grid.resolution,
                bounds=list(self.bounds),
            ),
            bands=[
                BandInfo(
                    name=b.band.name,
                    type=b.band.type,
                    wavelength=list(b.band.wavelength) if b.band.wavelength else None,
                    resolution=self.native_resolution(b),
                    descriptor=_descriptor_summary(b.band),
                    radiometry=b.radiometry.describe(),
                    path=b.path,
                )
                for b in self.bands
            ],
        )


def _int_window(window: Window) -> Window:
    return Window(int(window.col_off), int(window.row_off), int(window.width), int(window.height))


def _descriptor_summary(band: Band) -> str:
    from cloudmask_cli.descriptors import summary

    return summary(band.descriptor)


def replace_bands(scene: Scene, bands: Sequence[BandSource]) -> Scene:
    """A copy of ``scene`` with other band sources (used when adding auxiliary rasters)."""
    new = scene.with_resolution(scene.grid.resolution)
    new.bands = tuple(bands)
    return new
