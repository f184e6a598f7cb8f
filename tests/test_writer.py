import json

import numpy as np
import pytest
import rasterio
from conftest import a_sidecar
from rasterio.crs import CRS

from cloudmask_cli.classes import colormap
from cloudmask_cli.errors import InputError
from cloudmask_cli.inference.writer import MaskWriter
from cloudmask_cli.scene import Grid

GRID = Grid.from_bounds(
    CRS.from_epsg(32629), (500000, 5990000, 500000 + 1300 * 20, 5990000 + 1100 * 20), 20
)


def _codes(rows, width, row0):
    r = (np.arange(rows)[:, None] + row0) // 100
    c = np.arange(width)[None, :] // 100
    codes = ((r + c) % 6).astype(np.uint8)
    codes[:, :50] = 255
    return codes


def _write(path, probs_path=None, strips=(300, 384, 384, 32)):
    with MaskWriter(path, GRID, "7class", probs_path) as w:
        row = 0
        for n in strips:
            codes = _codes(n, GRID.width, row)
            p = np.full((7, n, GRID.width), 1 / 7, np.float32) if probs_path else None
            w.write(codes, p)
            row += n
        assert row == GRID.height
        w.finish(a_sidecar())


def test_cog_is_valid_and_described(tmp_path):
    out = tmp_path / "mask.tif"
    _write(out, tmp_path / "probs.tif")
    with rasterio.open(out) as ds:
        assert ds.driver == "GTiff"
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.profile["tiled"] and ds.block_shapes[0] == (512, 512)
        assert ds.overviews(1), "internal overviews"
        assert ds.nodata == 255 and ds.dtypes[0] == "uint8"
        assert ds.crs == GRID.crs and ds.transform == GRID.transform
        assert ds.compression is not None
        cmap = ds.colormap(1)
        for code, rgba in colormap("7class").items():
            assert cmap[code] == rgba
        assert "thick_cloud" in ds.descriptions[0]
        assert json.loads(ds.tags()["CLOUDMASK_CLASSES"])["4"] == "thick_cloud"
        data = ds.read(1)
    expected = np.concatenate([_codes(1100, GRID.width, 0)])
    np.testing.assert_array_equal(data, expected)
    with rasterio.open(tmp_path / "probs.tif") as ds:
        assert ds.count == 7 and ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        p = ds.read(1)
        assert p[0, 100] == round(254 / 7) and p[0, 0] == 255
    assert json.loads((tmp_path / "mask.tif.json").read_text()) == a_sidecar().to_dict()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["mask.tif", "mask.tif.json", "probs.tif"]


def test_refuses_to_overwrite_and_cleans_up_on_error(tmp_path):
    out = tmp_path / "mask.tif"
    _write(out)
    with pytest.raises(InputError, match="already exists"):
        MaskWriter(out, GRID, "7class")
    out2 = tmp_path / "other.tif"
    with pytest.raises(RuntimeError):
        with MaskWriter(out2, GRID, "cloud") as w:
            w.write(_codes(600, GRID.width, 0))
            raise RuntimeError("boom")
    assert not out2.exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["mask.tif", "mask.tif.json"]


def test_incomplete_output_is_refused(tmp_path):
    out = tmp_path / "mask.tif"
    with pytest.raises(RuntimeError, match="rows written"):
        with MaskWriter(out, GRID, "7class") as w:
            w.write(_codes(100, GRID.width, 0))
            w.finish(a_sidecar())
    assert list(tmp_path.iterdir()) == []
