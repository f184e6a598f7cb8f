"""Scene: a product's bands on one working grid, read window by window.

A reader (``cloudmask_cli.products``) builds a `Scene` from a product's metadata; nothing is
decoded until `Scene.read` asks for a window. Each read decodes every band of the window once:

- source finer than the grid (e.g. 10 m bands at 60 m): GDAL decimates with ``average`` from
  ``out_shape``, so JP2 resolution levels and TIFF overviews are used instead of full decoding;
- same resolution: a plain windowed read;
- source coarser (e.g. 20 m bands at 10 m): the covering source pixels are read natively and
  upsampled here with a no-data-aware bilinear kernel, so no-data never bleeds into valid
  pixels and edges stay where the nearest source pixel puts them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.sensors import Band, Sensor


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, transform and size."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @classmethod
    def from_bounds(
        cls, crs: CRS, bounds: tuple[float, float, float, float], resolution: float
    ) -> Grid:
        left, bottom, right, top = bounds
        width = max(1, round((right - left) / resolution))
        height = max(1, round((top - bottom) / resolution))
        return cls(crs, Affine(resolution, 0, left, 0, -resolution, top), width, height)

    @property
    def resolution(self) -> float:
        return abs(self.transform.a)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    def at_resolution(self, resolution: float) -> Grid:
        return Grid.from_bounds(self.crs, self.bounds, resolution)

    def window_bounds(self, window: Window) -> tuple[float, float, float, float]:
        return rasterio.windows.bounds(window, self.transform)

    def window_transform(self, window: Window) -> Affine:
        return rasterio.windows.transform(window, self.transform)


@dataclass(frozen=True)
class Radiometry:
    """DN -> physical value.

    ``x = (dn * scale + offset) / divisor``; with ``k1``/``k2`` the linear part is a radiance
    and the result is the brightness temperature ``k2 / ln(k1 / x + 1)`` in kelvin.
    """

    scale: float = 1.0
    offset: float = 0.0
    divisor: float = 1.0
    k1: float | None = None
    k2: float | None = None
    to_db: bool = False  # linear power -> decibels (SAR given in linear units)
    formula: str = ""

    def apply(self, dn: np.ndarray) -> np.ndarray:
        x = dn.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)
        if self.divisor != 1.0:
            x /= np.float32(self.divisor)
        if self.k1 is not None and self.k2 is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.float32(self.k2) / np.log(np.float32(self.k1) / x + 1.0)
            x[~np.isfinite(x)] = np.nan
        if self.to_db:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.where(x > 0, 10.0 * np.log10(x), np.nan).astype(np.float32)
        return x

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scale": self.scale, "offset": self.offset}
        if self.divisor != 1.0:
            out["divisor"] = self.divisor
        if self.k1 is not None:
            out.update(k1=self.k1, k2=self.k2)
        if self.formula:
            out["formula"] = self.formula
        return out


@dataclass(frozen=True)
class Mask:
    """A raster that marks invalid pixels: set bits, listed values, or values not listed."""

    path: str
    index: int | tuple[int, ...] = 1  # a tuple: layers of one file, read in one call, any flags
    invalid_bits: int = 0
    invalid_values: tuple[float, ...] = ()
    valid_values: tuple[float, ...] = ()
    name: str = ""

    def invalid(self, values: np.ndarray) -> np.ndarray:
        bad = np.zeros(values.shape, dtype=bool)
        if self.invalid_bits:
            bad |= (values.astype(np.int64) & self.invalid_bits) != 0
        if self.invalid_values:
            bad |= np.isin(values, self.invalid_values)
        if self.valid_values:
            bad |= ~np.isin(values, self.valid_values)
        return np.asarray(bad.any(axis=0)) if bad.ndim == 3 else bad


@dataclass(frozen=True)
class _MaskSpan:
    """Rows ``first``..``last`` of a mask's invalid pixels over a strip's columns, packed."""

    first: int
    last: int
    width: int
    bits: np.ndarray

    def covers(self, r0: int, r1: int) -> bool:
        return self.first <= r0 and r1 <= self.last

    def rows(self, r0: int, r1: int) -> np.ndarray:
        rows = self.bits[r0 - self.first : r1 - self.first]
        return np.unpackbits(rows, axis=1, count=self.width).astype(bool)


@dataclass(frozen=True)
class BandSource:
    """Where one band lives and how its DN become physical values."""

    band: Band
    path: str  # a GDAL path: file, /vsizip/..., /vstar/...
    index: int = 1
    radiometry: Radiometry = field(default_factory=Radiometry)
    nodata: tuple[float, ...] = ()  # DN values that mean "no data"
    masks: tuple[Mask, ...] = ()  # masks that apply to this band only
    resolution: float | None = None  # native resolution, if not the YAML's
    warp: bool = False  # on another grid (auxiliary rasters): warped onto the working grid


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
        # per mask and strip columns: its last decoded block row, as bits (`_mask_span`)
        self._mask_spans: dict[tuple[Mask, int, int], _MaskSpan] = {}

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
            self._mask_spans.clear()

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
        return m.invalid(_read_resampled(ds, index, bounds, shape, Resampling.nearest, m.path))

    def _mask_span(self, m: Mask, window: Window) -> np.ndarray:
        """A strip of a mask, decoded a whole block row of the mask file at a time.

        Quality masks are multi-layer JPEG 2000 files with tall tiles (8 layers, 2048-row
        tiles for the 20 m bands): the rows of successive strips fall in one tile row, which
        the block cache cannot hold beside the bands, so each strip decoded it again. Here a
        tile row is decoded once over the strip's columns and kept as bits at the working
        resolution (nearest resampling is per pixel: a slice equals a read of the window).
        """
        r0, r1 = int(window.row_off), int(window.row_off + window.height)
        c0, c1 = int(window.col_off), int(window.col_off + window.width)
        with self._lock(m.path):
            span = self._mask_spans.get((m, c0, c1))
            if span is None or not span.covers(r0, r1):
                ds = self._open(m.path)
                block_h, block_w = ds.block_shapes[0]
                res = self.grid.resolution
                step = max(1, math.floor(block_h * abs(ds.transform.e) / res + 1e-6))
                a, b = (r0 // step) * step, min(self.grid.height, -(-r1 // step) * step)
                # a block (tile) at a time across: OpenJPEG holds every layer of what it decodes
                # as int32 (8 layers of a 2048 px tile row of the 20 m masks: ~360 MB at once)
                cols = max(1, math.floor(block_w * abs(ds.transform.a) / res + 1e-6))
                bad = np.empty((b - a, c1 - c0), dtype=bool)
                for c in range(c0, c1, cols):
                    w = min(cols, c1 - c)
                    bad[:, c - c0 : c - c0 + w] = self._mask_values(m, Window(c, a, w, b - a))
                span = _MaskSpan(a, b, c1 - c0, np.packbits(bad, axis=1))
                self._mask_spans[(m, c0, c1)] = span
        return span.rows(r0, r1)

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
        ds = self._open(src.path)
        shape = (int(window.height), int(window.width))
        if src.warp or (ds.crs is not None and ds.crs != self.crs):
            with self._lock(src.path):
                dn = self._warped(src.path).read(src.index, window=window)
            values = _to_physical(src, dn)
            if src.masks:
                values[self._masks_invalid(src.masks, window, strip)] = np.nan
            return values
        bounds = self.grid.window_bounds(window)
        src_res = abs(ds.transform.a)
        ratio = src_res / self.grid.resolution
        with self._lock(src.path):
            if ratio > 1.0 + 1e-6:
                values = _upsample_read(ds, src, bounds, shape)
            elif ratio < 1.0 - 1e-6:
                values = _downsample_read(ds, src, bounds, shape)
            else:
                dn = _read_resampled(ds, src.index, bounds, shape, Resampling.nearest, src.path)
                values = _to_physical(src, dn)
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

    def info(self) -> dict[str, Any]:
        """Everything `cloudmask info` prints."""
        return {
            "product": self.product,
            "product_type": self.product_type,
            "sensor": self.sensor.name,
            **self.metadata,
            "grid": {
                "crs": self.crs.to_string() if self.crs else None,
                "width": self.shape[1],
                "height": self.shape[0],
                "resolution": self.grid.resolution,
                "bounds": list(self.bounds),
            },
            "bands": [
                {
                    "name": b.band.name,
                    "type": b.band.type,
                    "wavelength": list(b.band.wavelength) if b.band.wavelength else None,
                    "resolution": self.native_resolution(b),
                    "descriptor": _descriptor_summary(b.band),
                    "radiometry": b.radiometry.describe(),
                    "path": b.path,
                }
                for b in self.bands
            ],
        }


def _int_window(window: Window) -> Window:
    return Window(int(window.col_off), int(window.row_off), int(window.width), int(window.height))


def _descriptor_summary(band: Band) -> str:
    from cloudmask_cli.descriptors import summary

    return summary(band.descriptor)


def _to_physical(src: BandSource, dn: np.ndarray) -> np.ndarray:
    values = src.radiometry.apply(dn)
    if src.nodata:
        values[np.isin(dn, src.nodata)] = np.nan
    return values


def _source_window(ds: rasterio.io.DatasetReader, bounds: tuple[float, ...]) -> Window:
    return rasterio.windows.from_bounds(*bounds, transform=ds.transform)


def _read_resampled(
    ds: rasterio.io.DatasetReader,
    index: int | list[int],
    bounds: tuple[float, ...],
    shape: tuple[int, int],
    resampling: Resampling,
    path: str,
) -> np.ndarray:
    """Read ``bounds`` of one band at ``shape``; GDAL uses overviews when decimating."""
    win = _source_window(ds, bounds)
    inside = (
        win.col_off >= -1e-6
        and win.row_off >= -1e-6
        and win.col_off + win.width <= ds.width + 1e-6
        and win.row_off + win.height <= ds.height + 1e-6
    )
    try:
        if inside:
            return ds.read(index, window=win, out_shape=shape, resampling=resampling)
        fill = ds.nodata if ds.nodata is not None else 0
        return ds.read(
            index,
            window=win,
            out_shape=shape,
            resampling=resampling,
            boundless=True,
            fill_value=fill,
        )
    except RasterioError as exc:
        raise InputError(path, f"cannot decode band {index} ({first_line(exc)})") from None


def _downsample_read(
    ds: rasterio.io.DatasetReader,
    src: BandSource,
    bounds: tuple[float, ...],
    shape: tuple[int, int],
) -> np.ndarray:
    """Average down through overviews; drop the ring of pixels next to no data.

    An averaged pixel that straddles the no-data edge mixes fill DN into its value (JP2
    resolution levels do the same), so pixels touching a no-data pixel are marked invalid.
    One extra pixel is read on each side so the ring is the same in every window.
    """
    h, w = shape
    left, bottom, right, top = bounds
    px, py = (right - left) / w, (top - bottom) / h
    db = ds.bounds
    # grow by one pixel on each side that stays inside the raster (outside is not no data)
    ml, mr = int(left - px >= db.left - 1e-6 * px), int(right + px <= db.right + 1e-6 * px)
    mb, mt = int(bottom - py >= db.bottom - 1e-6 * py), int(top + py <= db.top + 1e-6 * py)
    grown = (left - ml * px, bottom - mb * py, right + mr * px, top + mt * py)
    out_shape = (h + mt + mb, w + ml + mr)
    dn = _read_resampled(ds, src.index, grown, out_shape, Resampling.average, src.path)
    values = _to_physical(src, dn)
    if src.nodata:
        bad = np.isnan(values)
        ring = bad.copy()
        ring[1:] |= bad[:-1]
        ring[:-1] |= bad[1:]
        ring[:, 1:] |= ring[:, :-1].copy()
        ring[:, :-1] |= ring[:, 1:].copy()
        values[ring] = np.nan
    return values[mt : mt + h, ml : ml + w]


def _upsample_read(
    ds: rasterio.io.DatasetReader,
    src: BandSource,
    bounds: tuple[float, ...],
    shape: tuple[int, int],
) -> np.ndarray:
    """Read the covering source pixels natively and upsample with no-data-aware bilinear."""
    h, w = shape
    left, bottom, right, top = bounds
    # Source pixel coordinates (continuous, pixel centres at .5) of the target pixel centres.
    tx = left + (np.arange(w) + 0.5) * (right - left) / w
    ty = top - (np.arange(h) + 0.5) * (top - bottom) / h
    u = (tx - ds.transform.c) / ds.transform.a - 0.5
    v = (ty - ds.transform.f) / ds.transform.e - 0.5
    c0 = max(0, math.floor(u.min()))
    r0 = max(0, math.floor(v.min()))
    c1 = min(ds.width, math.floor(u.max()) + 2)
    r1 = min(ds.height, math.floor(v.max()) + 2)
    if c1 <= c0 or r1 <= r0:
        return np.full(shape, np.nan, dtype=np.float32)
    try:
        dn = ds.read(src.index, window=Window(c0, r0, c1 - c0, r1 - r0))
    except RasterioError as exc:
        raise InputError(src.path, f"cannot decode band {src.index} ({first_line(exc)})") from None
    vals = _to_physical(src, dn)
    u = u - c0
    v = v - r0
    return bilinear_nan(vals, v, u)


def bilinear_nan(vals: np.ndarray, v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample ``vals`` at rows ``v`` x cols ``u`` (separable), ignoring NaN neighbours.

    A target pixel is NaN when its nearest source pixel is NaN, so the valid-data edge is the
    nearest-neighbour edge; inside it, NaN neighbours get no weight.
    """
    hs, ws = vals.shape
    v = np.clip(v, 0, hs - 1)
    u = np.clip(u, 0, ws - 1)
    v0 = np.floor(v).astype(np.int64)
    u0 = np.floor(u).astype(np.int64)
    v1 = np.minimum(v0 + 1, hs - 1)
    u1 = np.minimum(u0 + 1, ws - 1)
    fv = (v - v0).astype(np.float32)[:, None]
    fu = (u - u0).astype(np.float32)[None, :]
    finite = np.isfinite(vals)
    z = np.where(finite, vals, 0).astype(np.float32)
    wgt = finite.astype(np.float32)
    num = np.zeros((len(v), len(u)), dtype=np.float32)
    den = np.zeros_like(num)
    for rows, wr in ((v0, 1 - fv), (v1, fv)):
        for cols, wc in ((u0, 1 - fu), (u1, fu)):
            k = wr * wc
            num += z[np.ix_(rows, cols)] * k
            den += wgt[np.ix_(rows, cols)] * k
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    nearest = finite[np.ix_(np.rint(v).astype(np.int64), np.rint(u).astype(np.int64))]
    out[~nearest] = np.nan
    return out


def replace_bands(scene: Scene, bands: Sequence[BandSource]) -> Scene:
    """A copy of ``scene`` with other band sources (used when adding auxiliary rasters)."""
    new = scene.with_resolution(scene.grid.resolution)
    new.bands = tuple(bands)
    return new


__all__ = [
    "BandSource",
    "Grid",
    "Mask",
    "Radiometry",
    "Scene",
    "bilinear_nan",
    "replace",
    "replace_bands",
]
