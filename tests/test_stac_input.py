"""STAC items as products (products/stac.py): band matching, radiometry, validity, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.windows import Window
from stac_fixtures import earth_search_s2, hls, landsat_l2, planetary_s2, save
from typer.testing import CliRunner

from cloudmask_cli.cli import app
from cloudmask_cli.errors import InputError
from cloudmask_cli.products import open_product

runner = CliRunner()
S2_NAMES = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _mean(scene, band: str) -> tuple[float, float]:
    """(physical value the scene reads, raw DN in the file) at one window of a native-res band."""
    i = scene.band_names.index(band)
    with rasterio.open(scene.bands[i].path) as ds:
        dn = ds.read(1, window=Window(10, 10, 4, 4)).astype(np.float64)
    return float(np.nanmean(scene.read(Window(10, 10, 4, 4), bands=[i]))), float(dn.mean())


# layout -> (sensor, bands, level, band checked, DN -> the physical value expected)
LAYOUTS = {
    # Earth Search legacy L2A, boa_offset_applied true: the +1000 is gone from the DN
    "earth-search-l2a": ("sentinel2_msi", S2_NAMES, "L2A", "B04", lambda dn: dn / 1e4),
    # Earth Search L1C: the JP2 keep the +1000 and raster:bands says -0.1
    "earth-search-l1c": ("sentinel2_msi", S2_NAMES, "L1C", "B04", lambda dn: dn / 1e4 - 0.1),
    # Planetary Computer: no raster:bands; baseline 05.09 -> (DN - 1000) / 10000
    "planetary-s2-l2a": ("sentinel2_msi", S2_NAMES, "L2A", "B04", lambda dn: (dn - 1000) / 1e4),
    "planetary-landsat-c2-l2": ("landsat9_oli2_tirs2", ["B1", "B2", "B3", "B4", "B5", "B6",
                                "B7", "B10"], "L2SP", "B4", lambda dn: dn * 2.75e-5 - 0.2),
    "earth-search-landsat-c2-l2": ("landsat9_oli2_tirs2", ["B1", "B2", "B3", "B4", "B5", "B6",
                                   "B7", "B10"], "L2SP", "B10", lambda dn: dn * 0.00341802 + 149),
    "hls-s30": ("sentinel2_msi", [*S2_NAMES[:10], "B10", "B11", "B12"], "HLS v2 S30", "B04",
                lambda dn: dn / 1e4),
    "hls-l30": ("landsat8_oli_tirs", ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9", "B10",
                "B11"], "HLS v2 L30", "B10", lambda dn: dn / 100 + 273.15),
}  # fmt: skip


def _item(kind: str, folder: Path) -> dict:
    return {
        "earth-search-l2a": lambda: earth_search_s2(folder),
        "earth-search-l1c": lambda: earth_search_s2(folder, level="L1C", applied=None),
        "planetary-s2-l2a": lambda: planetary_s2(folder),
        "planetary-landsat-c2-l2": lambda: landsat_l2(folder),
        "earth-search-landsat-c2-l2": lambda: landsat_l2(folder, raster_bands=False),
        "hls-s30": lambda: hls(folder, "S30"),
        "hls-l30": lambda: hls(folder, "L30"),
    }[kind]()


@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_known_layouts_give_bands_radiometry_and_values(tmp_path, kind):
    sensor, bands, level, band, expected = LAYOUTS[kind]
    path = save(_item(kind, tmp_path / "data"), tmp_path / "item.json")
    res = runner.invoke(app, ["info", str(path), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["sensor"] == sensor and info["level"] == level
    assert [b["name"] for b in info["bands"]] == bands
    assert info["product_id"] == json.loads(path.read_text())["id"]
    scene = open_product(path)
    got, dn = _mean(scene, band)
    assert got == pytest.approx(expected(dn), rel=1e-5)
    # the -jp2 twins on s3:// are never chosen (they would need the network)
    assert all(not b.path.startswith("/vsis3/") for b in scene.bands)


def test_no_data_from_scl_qa_pixel_and_fmask(tmp_path):
    es = open_product(save(earth_search_s2(tmp_path / "es"), tmp_path / "es.json"))
    left = es.read(Window(0, 0, 20, 20))  # SCL 0 on the 5 leftmost 20 m pixels = 10 px at 10 m
    assert np.isnan(left[:, :, :10]).all() and np.isfinite(left[:, :, 10:]).all()
    ls = open_product(save(landsat_l2(tmp_path / "ls"), tmp_path / "ls.json"))
    top = ls.read(Window(0, 0, 10, 10))  # QA_PIXEL fill on the top 3 rows
    assert np.isnan(top[:, :3]).all() and np.isfinite(top[:, 3:]).all()
    h = open_product(save(hls(tmp_path / "h"), tmp_path / "h.json"))
    full = h.read(Window(0, 0, h.shape[1], h.shape[0]))
    assert np.isnan(full[:, -2:]).all() and np.isnan(full[:, :, -2:]).all()  # -9999, Fmask 255
    assert np.isfinite(full[:, :-2, :-2]).all()


def test_run_on_an_item_writes_mask_sidecar_and_stac_item(tmp_path, tiny_weights):
    item = save(earth_search_s2(tmp_path / "data", keys=["blue", "green", "red", "nir", "scl"]),
                tmp_path / "item.json")  # fmt: skip
    out = tmp_path / "out" / "mask.tif"
    out.parent.mkdir()
    res = runner.invoke(app, ["run", str(item), "-o", str(out), "--weights", str(tiny_weights),
                              "--device", "cpu", "--stac"])  # fmt: skip
    assert res.exit_code == 0, res.output
    side = json.loads((out.parent / "mask.tif.json").read_text())
    assert side["product_id"] == "S2A_39QTA_20230628_0_L2A"
    assert side["bands"] == ["B02", "B03", "B04", "B08"]
    with rasterio.open(out) as ds:
        codes = ds.read(1)
        assert ds.crs.to_epsg() == 32639 and codes.shape == (120, 120)
    assert (codes[:, :10] == 255).all() and (codes[:, 10:] != 255).all()
    stac_item = pystac.Item.from_file(str(out.parent / "mask.stac.json"))
    assert stac_item.datetime.isoformat().startswith("2023-06-28T07:24:41")
    assert stac_item.get_single_link("derived_from").href == item.as_uri()


def _error(item: dict, tmp_path: Path, *extra: str) -> str:
    path = save(item, tmp_path / "item.json")
    res = runner.invoke(app, ["run", str(path), "-o", str(tmp_path / "m.tif"), *extra])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert not (tmp_path / "m.tif").exists() and not (tmp_path / "m.tif.json").exists()
    return line


def test_sentinel2_offset_that_cannot_be_established_is_refused(tmp_path):
    line = _error(planetary_s2(tmp_path / "a", baseline=None), tmp_path)
    assert "s2:processing_baseline" in line and "asset 'B01'" in line
    # earthsearch:boa_offset_applied false on a 04.00+ item: known to be wrong, not guessed
    line = _error(earth_search_s2(tmp_path / "b", baseline="04.00", applied=False), tmp_path)
    assert "boa_offset_applied" in line
    # raster:bands offset -0.1 on a baseline 03.01 item (no +1000 then): contradictory
    line = _error(earth_search_s2(tmp_path / "c", baseline="03.01", applied=None), tmp_path)
    assert "contradicts processing baseline 03.01" in line


def test_baseline_before_04_has_no_offset(tmp_path):
    item = planetary_s2(tmp_path / "d", baseline="03.01")
    scene = open_product(save(item, tmp_path / "i.json"))
    got, dn = _mean(scene, "B04")
    assert got == pytest.approx(dn / 1e4, rel=1e-5)


def test_item_without_radiometry_convention_is_refused(tmp_path):
    item = landsat_l2(tmp_path / "l", raster_bands=False)
    item["collection"] = "my-landsat"
    item["properties"].pop("landsat:correction")
    line = _error(item, tmp_path)
    assert "no raster:bands scale/offset" in line and "'coastal'" in line


@pytest.mark.parametrize(
    "href, problem",
    [("ftp://example.org/B02.tif", "href scheme 'ftp'"),
     ("/vsicurl/http://example.org/B02.tif", "GDAL virtual file system"),
     ("file://otherhost/data/B02.tif", "another host")],
)  # fmt: skip
def test_asset_hrefs_with_other_schemes_are_refused(tmp_path, href, problem):
    item = earth_search_s2(tmp_path / "e", keys=["blue", "green", "red", "nir"])
    item["assets"]["blue"]["href"] = href
    line = _error(item, tmp_path)
    assert "asset 'blue'" in line and problem in line, line


def test_missing_asset_file_is_one_line_naming_the_asset(tmp_path):
    item = earth_search_s2(tmp_path / "f", keys=["blue", "green", "red", "nir"])
    (tmp_path / "f" / "B04.tif").unlink()
    line = _error(item, tmp_path)
    assert "asset 'red'" in line and "cannot be read" in line


def test_not_an_item_and_unreadable_json(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    res = runner.invoke(app, ["info", str(tmp_path / "c.json")])
    assert res.exit_code == 2 and "not a recognised product" in res.output
    with pytest.raises(InputError, match="cannot read a STAC item"):
        from cloudmask_cli.products.stac import read_item

        (tmp_path / "bad.json").write_text("{not json")
        read_item(tmp_path / "bad.json")
