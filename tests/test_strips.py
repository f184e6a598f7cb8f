"""Windows cut from strips (inference/strips.py) equal windows read one by one, bit for bit."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from rasterio.windows import Window

from cloudmask_cli.demo.landsat import write_landsat
from cloudmask_cli.demo.sentinel2 import write_sentinel2
from cloudmask_cli.inference.aoi import AOI
from cloudmask_cli.inference.strips import StripReader, group_rows, strip_window
from cloudmask_cli.inference.tiling import plan_windows
from cloudmask_cli.products import open_product
from cloudmask_cli.scene import Scene
from tests.conftest import require


def _one_by_one(scene: Scene, win: Window, aoi: AOI | None) -> tuple[np.ndarray, np.ndarray]:
    """A window as the pipeline read it before strips: alone, then masked to valid data."""
    x = scene.read(win)
    valid = np.isfinite(x[scene.primary]).any(axis=0)
    if aoi is not None:
        valid &= aoi.inside(win)
    x[:, ~valid] = np.nan
    return x, valid


def _assert_strips_equal_windows(
    scene: Scene,
    windows: list[Window],
    aoi: AOI | None = None,
    threads: int = 3,
    ahead: int = 2,
    max_width: int | None = None,
) -> int:
    expected = {(w.row_off, w.col_off): _one_by_one(scene, w, aoi) for w in windows}
    scene.close()
    n = 0
    with StripReader(scene, windows, aoi, threads, ahead, max_width) as reader:
        for strip in reader:
            assert strip.seconds > 0
            for tile in strip.tiles:
                x, valid = expected[(tile.window.row_off, tile.window.col_off)]
                np.testing.assert_array_equal(tile.x, x)  # NaN where NaN, equal elsewhere
                np.testing.assert_array_equal(tile.valid, valid)
                np.testing.assert_array_equal(tile.bands, np.isfinite(x).any(axis=(1, 2)))
                n += 1
    scene.close()
    assert n == len(windows)
    return n


@pytest.fixture(scope="module")
def s2(tmp_path_factory) -> Path:
    # 246 px at 10 m: 20 m and 60 m bands upsampled, masks, the no-data wedge
    return write_sentinel2(tmp_path_factory.mktemp("s2"), level="L1C", size_10m=246, seed=3)


@pytest.mark.parametrize("resolution", [10, 20, 60, 25])
@pytest.mark.parametrize("split", [False, True])
def test_sentinel2_strips_equal_single_window_reads(s2, resolution, split):
    """Every read path: native, averaged down (20, 60 m), upsampled bilinear (10 m) and an
    off-grid resolution; windows that overlap and the last row and column clamped; rows read
    whole or in strips of two windows."""
    scene = open_product(s2, resolution=resolution)
    size = max(12, scene.shape[0] // 4)
    windows = plan_windows(scene.shape, size, size // 4)
    assert len(group_rows(windows)) > 2
    max_width = 2 * size if split else None
    if split:
        assert len(group_rows(windows, max_width)) > len(group_rows(windows))
    _assert_strips_equal_windows(scene, windows, max_width=max_width)


def test_rows_cut_into_strips_of_bounded_width():
    windows = plan_windows((100, 1000), 100, 20)  # 13 windows a row, stepping by 80
    rows = group_rows(windows, 300)
    assert all(strip_window(r).width <= 300 for r in rows)
    assert [len(r) for r in rows] == [3, 3, 3, 4]  # the last window clamped to the edge
    assert sum(len(r) for r in rows) == len(windows)
    assert len(group_rows(windows, 50)) == len(windows)  # narrower than a window: one each
    assert group_rows(windows) == [windows]


def test_landsat_with_scene_masks_and_gaps(tmp_path):
    product = write_landsat(tmp_path, spacecraft="LE07", size=150, seed=2)
    scene = open_product(product)
    windows = plan_windows(scene.shape, 40, 8)
    _assert_strips_equal_windows(scene, windows, threads=1, ahead=0, max_width=100)


def test_windows_dropped_from_the_plan_and_an_aoi(s2, tmp_path):
    from rasterio.warp import transform_bounds

    scene = open_product(s2, resolution=20)
    west, south, east, north = scene.bounds
    lon0, lat0, lon1, lat1 = transform_bounds(
        scene.crs, "EPSG:4326", west, south, (west + east) / 2, (south + north) / 2
    )
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    aoi = AOI(path, scene.grid)
    # a plan with holes: rows of different length, strips spanning only their windows
    windows = [w for i, w in enumerate(plan_windows(scene.shape, 32, 8)) if i % 3]
    assert any(strip_window(row).width < scene.shape[1] for row in group_rows(windows))
    _assert_strips_equal_windows(scene, windows, aoi)


def test_real_t29unu_tile_strips_equal_windows(shared_data):
    product = require(
        shared_data / "products/sentinel2/"
        "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
    )
    scene = open_product(product, resolution=60)
    # three rows of the run's windows across the whole width (the swath edge, SCL masks)
    windows = [w for w in plan_windows(scene.shape) if w.row_off < 3 * 384]
    _assert_strips_equal_windows(scene, windows, threads=2, ahead=1)


def test_leaving_early_stops_the_read_threads(s2):
    scene = open_product(s2, resolution=10)
    windows = plan_windows(scene.shape, 32, 8)
    before = threading.active_count()
    with StripReader(scene, windows, threads=3, ahead=3) as reader:
        first = next(iter(reader))
        assert first.tiles
    assert threading.active_count() == before
    scene.close()
