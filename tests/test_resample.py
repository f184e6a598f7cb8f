"""Coarse quality masks tested at their own resolution and repeated onto the working grid
(scene/resample.py `upsample_mask`, issue 23): the same pixels as GDAL's nearest-neighbour read
of the window, inside the raster, across its edges and outside it."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from cloudmask_cli.scene.resample import bilinear_nan, read_resampled, upsample_mask
from cloudmask_cli.scene.sources import BandSource, Mask, equals_any, to_physical
from cloudmask_cli.sensors import get_sensor

ORIGIN = (300000.0, 5000000.0)


def _mask_file(path, res: float, nodata: int | None = None):
    rng = np.random.default_rng(int(res))
    data = rng.integers(0, 4, (3, 37, 41), dtype=np.uint8)
    profile = dict(driver="GTiff", width=41, height=37, count=3, dtype="uint8", crs="EPSG:32633",
                   transform=Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1]), nodata=nodata)  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


MASKS = [
    Mask("", index=(1, 2, 3), invalid_values=(1,)),
    Mask("", index=2, invalid_bits=2),
    Mask("", index=(1, 3), valid_values=(0, 3)),
]


@pytest.mark.parametrize("res", [20.0, 30.0, 60.0])
@pytest.mark.parametrize("nodata", [None, 3])
def test_upsampled_mask_equals_a_nearest_read(tmp_path, res, nodata):
    path = str(_mask_file(tmp_path / "m.tif", res, nodata))
    grid = 10.0
    width, height = 41 * res, 37 * res
    # windows of the 10 m grid: inside, on the first pixels, across the right and bottom
    # edges, past the top-left corner, and wholly outside
    windows = [(13, 7, 50, 33), (0, 0, 64, 64), (int(width / grid) - 20, int(height / grid) - 9,
               45, 31), (-12, -5, 40, 30), (int(width / grid) + 5, 0, 16, 16)]  # fmt: skip
    with rasterio.open(path) as ds:
        for m in MASKS:
            index = m.index if isinstance(m.index, int) else list(m.index)
            for c, r, w, h in windows:
                left, top = ORIGIN[0] + c * grid, ORIGIN[1] - r * grid
                bounds = (left, top - h * grid, left + w * grid, top)
                got = upsample_mask(ds, m, bounds, (h, w))
                want = m.invalid(read_resampled(ds, index, bounds, (h, w), Resampling.nearest,
                                                path))  # fmt: skip
                assert got.dtype == bool and got.shape == (h, w)
                np.testing.assert_array_equal(got, want, err_msg=f"{m} window {(c, r, w, h)}")


def test_equals_any_is_isin():
    values = np.array([[0, 1, 2, 65535], [7, 0, 3, 1]], dtype=np.uint16)
    for targets in [(0,), (1, 65535), (2.0, 3.0, 9.0)]:
        np.testing.assert_array_equal(equals_any(values, targets), np.isin(values, targets))
    x = np.array([np.nan, 0.0, 1.5], dtype=np.float32)
    np.testing.assert_array_equal(equals_any(x, (np.nan, 1.5)), np.isin(x, (np.nan, 1.5)))
    band = get_sensor("sentinel2_msi").bands[1]
    src = BandSource(band, "x", nodata=(0, 65535))
    out = to_physical(src, values)
    assert np.isnan(out[values == 0]).all() and np.isnan(out[values == 65535]).all()
    assert np.isfinite(out[(values != 0) & (values != 65535)]).all()


def test_bilinear_without_no_data_is_the_no_data_aware_result_bit_for_bit():
    """The shortcut for a read without no-data gives what the no-data-aware kernel gives on
    pixels away from no data, so a window and the strip it is cut from agree exactly."""
    rng = np.random.default_rng(1)
    vals = rng.uniform(0, 1, (40, 50)).astype(np.float32)
    v = (np.arange(60) + 0.5) / 2 - 0.5
    u = (np.arange(90) + 0.5) / 2 - 0.5
    clean = bilinear_nan(vals, v, u)
    holed = vals.copy()
    holed[25:, 40:] = np.nan  # far from the rows and columns compared below
    with_holes = bilinear_nan(holed, v, u)
    np.testing.assert_array_equal(clean[:40, :70], with_holes[:40, :70])
    assert np.isnan(with_holes[-1, -1]) and np.isfinite(clean).all()
    # and both are bilinear interpolation
    want = vals[0, 0] * 0.75 * 0.75 + vals[0, 1] * 0.75 * 0.25 + vals[1, 0] * 0.25 * 0.75
    want += vals[1, 1] * 0.25 * 0.25
    np.testing.assert_allclose(clean[1, 1], want, rtol=1e-6)


def _bilinear_reference(vals: np.ndarray, v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Four neighbours weighted in float64, NaN neighbours left out (the definition)."""
    hs, ws = vals.shape
    out = np.full((v.size, u.size), np.nan)
    for i, y in enumerate(np.clip(v, 0, hs - 1)):
        for j, x in enumerate(np.clip(u, 0, ws - 1)):
            r0, c0 = int(np.floor(y)), int(np.floor(x))
            fy, fx = y - r0, x - c0
            num = den = 0.0
            for r, wr in ((r0, 1 - fy), (min(r0 + 1, hs - 1), fy)):
                for c, wc in ((c0, 1 - fx), (min(c0 + 1, ws - 1), fx)):
                    if np.isfinite(vals[r, c]):
                        num, den = num + wr * wc * vals[r, c], den + wr * wc
            if np.isfinite(vals[int(np.rint(y)), int(np.rint(x))]):
                out[i, j] = num / den
    return out


@pytest.mark.parametrize("factor", [2, 3, 6, 2.7])
def test_bilinear_is_the_four_neighbour_weighting(factor):
    rng = np.random.default_rng(3)
    vals = rng.uniform(0, 1, (9, 11)).astype(np.float32)
    v = (np.arange(int(9 * factor) - 2) + 0.5) / factor - 0.5 + 0.2
    u = (np.arange(int(11 * factor)) + 0.5) / factor - 0.5 - 0.1
    for a in (vals, np.where(rng.random(vals.shape) < 0.2, np.nan, vals).astype(np.float32)):
        got, want = bilinear_nan(a, v, u), _bilinear_reference(a, v, u)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=2e-6)
