"""One band read onto a window of the working grid, whatever its own resolution:

- source finer than the grid (e.g. 10 m bands at 60 m): GDAL decimates with ``average`` from
  ``out_shape``, so JP2 resolution levels and TIFF overviews are used instead of full decoding;
- same resolution: a plain windowed read;
- source coarser (e.g. 20 m bands at 10 m): the covering source pixels are read natively and
  upsampled here with a no-data-aware bilinear kernel, so no-data never bleeds into valid
  pixels and edges stay where the nearest source pixel puts them.
"""

from __future__ import annotations

import math

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import reproject
from rasterio.windows import Window

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.scene.sources import BandSource, Mask, to_physical

_EPS = 1e-6


def source_window(ds: rasterio.io.DatasetReader, bounds: tuple[float, ...]) -> Window:
    return rasterio.windows.from_bounds(*bounds, transform=ds.transform)


def read_resampled(
    ds: rasterio.io.DatasetReader,
    index: int | list[int],
    bounds: tuple[float, ...],
    shape: tuple[int, int],
    resampling: Resampling,
    path: str,
) -> np.ndarray:
    """Read ``bounds`` of one band at ``shape``; GDAL uses overviews when decimating."""
    win = source_window(ds, bounds)
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


def downsample_read(
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
    dn = read_resampled(ds, src.index, grown, out_shape, Resampling.average, src.path)
    values = to_physical(src, dn)
    if src.nodata:
        bad = np.isnan(values)
        ring = bad.copy()
        ring[1:] |= bad[:-1]
        ring[:-1] |= bad[1:]
        ring[:, 1:] |= ring[:, :-1].copy()
        ring[:, :-1] |= ring[:, 1:].copy()
        values[ring] = np.nan
    return values[mt : mt + h, ml : ml + w]


def centres(
    ds: rasterio.io.DatasetReader, bounds: tuple[float, ...], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Where the centres of a window's pixels (``bounds``, ``shape`` on the working grid)
    fall in a north-up source raster: continuous row and column coordinates, source pixel
    ``(r, c)`` spanning ``[r, r + 1) x [c, c + 1)``."""
    h, w = shape
    left, bottom, right, top = bounds
    tx = left + (np.arange(w) + 0.5) * (right - left) / w
    ty = top - (np.arange(h) + 0.5) * (top - bottom) / h
    return (ty - ds.transform.f) / ds.transform.e, (tx - ds.transform.c) / ds.transform.a


def upsample_read(
    ds: rasterio.io.DatasetReader,
    src: BandSource,
    bounds: tuple[float, ...],
    shape: tuple[int, int],
) -> np.ndarray:
    """Read the covering source pixels natively and upsample with no-data-aware bilinear."""
    v, u = centres(ds, bounds, shape)
    # pixel coordinates with the source pixel centres at whole numbers, for the kernel
    u, v = u - 0.5, v - 0.5
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
    vals = to_physical(src, dn)
    u = u - c0
    v = v - r0
    return bilinear_nan(vals, v, u)


def upsample_mask(
    ds: rasterio.io.DatasetReader,
    mask: Mask,
    bounds: tuple[float, ...],
    shape: tuple[int, int],
) -> np.ndarray:
    """``mask.invalid`` of a raster coarser than the grid (e.g. a 20 m quality mask at 10 m),
    tested on the covering source pixels at their own resolution and then repeated onto the
    window: what a nearest-neighbour read of the window gives (the source pixel holding each
    target pixel's centre), with a few times fewer pixels decoded into layers and tested.
    Outside the raster, the test of the fill value (as a boundless read fills)."""
    v, u = centres(ds, bounds, shape)
    rows, cols = np.floor(v).astype(np.int64), np.floor(u).astype(np.int64)
    in_c, in_r = (cols >= 0) & (cols < ds.width), (rows >= 0) & (rows < ds.height)
    fill = ds.nodata if ds.nodata is not None else 0
    index = mask.index if isinstance(mask.index, int) else list(mask.index)
    layers = 1 if isinstance(index, int) else len(index)
    outside = bool(mask.invalid(np.full((layers, 1, 1), fill, dtype=ds.dtypes[0]))[0, 0])
    out = np.full(shape, outside, dtype=bool)
    if not (in_c.any() and in_r.any()):
        return out
    c0, c1 = int(cols[in_c].min()), int(cols[in_c].max()) + 1
    r0, r1 = int(rows[in_r].min()), int(rows[in_r].max()) + 1
    try:
        values = ds.read(index, window=Window(c0, r0, c1 - c0, r1 - r0))
    except RasterioError as exc:
        raise InputError(mask.path, f"cannot decode band {index} ({first_line(exc)})") from None
    bad = mask.invalid(values)
    # whole rows taken, then columns: two 1-D gathers, not one 2-D one per target pixel
    held = np.take(np.take(bad, rows[in_r] - r0, axis=0), cols[in_c] - c0, axis=1)
    if in_r.all() and in_c.all():
        return held
    out[np.ix_(in_r, in_c)] = held
    return out


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
    gv, gu = 1 - fv, 1 - fu
    finite = np.isfinite(vals)

    # separable: along the columns on the source rows (a few times fewer of them than the
    # target's), then whole rows taken and mixed; `take` and in-place products, no 2-D gather
    def interpolate(a: np.ndarray) -> np.ndarray:
        cols = np.take(a, u0, axis=1)
        cols *= gu
        part = np.take(a, u1, axis=1)
        part *= fu
        cols += part
        out = np.take(cols, v0, axis=0)
        out *= gv
        part = np.take(cols, v1, axis=0)
        part *= fv
        out += part
        return out

    if finite.all():
        # the weights' sum as `interpolate` gives it for all-ones, operation for operation
        # (so bit for bit what a window with some no-data gives on its valid pixels); where
        # it is exactly 1 everywhere (e.g. a 20 m band at 10 m) dividing changes nothing
        out = interpolate(vals.astype(np.float32))
        ones = gu + fu
        if not ((ones == 1).all() and (gv + fv == 1).all()):
            out /= ones * gv + ones * fv
        return out
    num = interpolate(np.where(finite, vals, 0).astype(np.float32))
    den = interpolate(finite.astype(np.float32))
    with np.errstate(invalid="ignore", divide="ignore"):
        num /= den
    nearest = np.take(np.take(finite, np.rint(v).astype(np.int64), axis=0),
                      np.rint(u).astype(np.int64), axis=1)  # fmt: skip
    num[~nearest] = np.nan
    return num


def read_memory(src: BandSource, crs: CRS, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """An in-memory band (``src.memory``) on the window of the working grid with ``transform``
    and ``shape``: a slice where the array lies on that grid, else the covering source pixels
    resampled by GDAL from the array in place (average to a coarser grid, bilinear to a finer
    one, no data as NaN). Outside the array: NaN."""
    assert src.memory is not None
    dn, t = src.memory.values, src.memory.transform
    h, w = shape
    out = np.full(shape, np.nan, dtype=np.float32)
    col, row = (transform.c - t.c) / t.a, (transform.f - t.f) / t.e
    same = abs(transform.a - t.a) <= _EPS * abs(t.a) and abs(transform.e - t.e) <= _EPS * abs(t.e)
    if same and abs(col - round(col)) < _EPS and abs(row - round(row)) < _EPS:
        r0, c0 = round(row), round(col)
        a, b = max(r0, 0), min(r0 + h, dn.shape[0])
        c, d = max(c0, 0), min(c0 + w, dn.shape[1])
        if a < b and c < d:
            out[a - r0 : b - r0, c - c0 : d - c0] = to_physical(src, dn[a:b, c:d])
        return out
    # the source pixels under the window, two more on each side for the kernels
    left, top = transform.c, transform.f
    right, bottom = left + transform.a * w, top + transform.e * h
    c0 = max(0, math.floor((left - t.c) / t.a) - 2)
    c1 = min(dn.shape[1], math.ceil((right - t.c) / t.a) + 2)
    r0 = max(0, math.floor((top - t.f) / t.e) - 2)
    r1 = min(dn.shape[0], math.ceil((bottom - t.f) / t.e) + 2)
    if c1 <= c0 or r1 <= r0:
        return out
    values = to_physical(src, dn[r0:r1, c0:c1])
    coarser = abs(transform.a) > abs(t.a) * (1 + _EPS)
    reproject(
        values,
        out,
        src_transform=t * Affine.translation(c0, r0),
        src_crs=crs,
        dst_transform=transform,
        dst_crs=crs,
        src_nodata=np.nan,
        dst_nodata=np.nan,
        resampling=Resampling.average if coarser else Resampling.bilinear,
    )
    return out
