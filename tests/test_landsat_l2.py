"""Landsat Collection 2 Level-2 (L2SP): surface reflectance, surface temperature, QA fill.

Always-on tier: small L2SP products written here with rasterio in USGS's file naming
(``<id>_SR_B<n>.TIF``, ``<id>_ST_B10.TIF``, ``<id>_QA_PIXEL.TIF``, ``<id>_MTL.txt|json``) and the
real MTL group layout (checked against the real LC09 L2SP MTL in ../shared/data), including the
Level-1 record and TOA rescaling a real Level-2 MTL carries beside its own coefficients.
Real-data tier: the real L2SP MTLs (txt, xml, json) with rasters of the file names they list.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import require
from product_writers import to_json
from rasterio.windows import Window
from typer.testing import CliRunner

from cloudmask_cli.cli import app
from cloudmask_cli.demo import landsat as demo
from cloudmask_cli.demo.landsat import Num, tif, to_odl, write_product
from cloudmask_cli.errors import InputError
from cloudmask_cli.products import landsat, open_product
from cloudmask_cli.products.mtl import read_mtl

runner = CliRunner()

SR_MULT, SR_ADD = 2.75e-05, -0.2  # the values every real C2 L2 MTL carries
ST_MULT, ST_ADD = 0.00341802, 149.0
CLEAR_QA = 21824  # QA_PIXEL of a clear land pixel
# spacecraft id -> (SPACECRAFT_ID, SENSOR_ID, reflective band numbers, thermal band number)
MISSIONS = {
    "LC08": ("LANDSAT_8", "OLI_TIRS", ["1", "2", "3", "4", "5", "6", "7"], "10"),
    "LC09": ("LANDSAT_9", "OLI_TIRS", ["1", "2", "3", "4", "5", "6", "7"], "10"),
    "LE07": ("LANDSAT_7", "ETM", ["1", "2", "3", "4", "5", "7"], "6"),
    "LT05": ("LANDSAT_5", "TM", ["1", "2", "3", "4", "5", "7"], "6"),
    "LT04": ("LANDSAT_4", "TM", ["1", "2", "3", "4", "5", "7"], "6"),
}
SIZE = 40


def product_id(spacecraft: str) -> str:
    return f"{spacecraft}_L2SP_191031_20220322_20220324_02_T1"


def sr_dn(index: int) -> np.ndarray:
    """A distinct uint16 pattern per band inside the valid SR range (7273-43636)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return (8000 + 331 * y + 97 * x + 1500 * index).astype(np.uint16)


def st_dn() -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return (38000 + 211 * y + 53 * x).astype(np.uint16)  # 278.9 .. 310 K


def fills() -> tuple[np.ndarray, np.ndarray]:
    """(DN 0 in every band, QA_PIXEL fill bit set though the bands hold numbers)."""
    dn0 = np.zeros((SIZE, SIZE), bool)
    dn0[:4, :] = True
    qa_only = np.zeros((SIZE, SIZE), bool)
    qa_only[-3:, -5:] = True
    return dn0, qa_only


def mtl_tree(spacecraft: str, omit: str | None = None) -> dict:
    """An L2SP MTL in the real layout; ``omit`` drops one Level-2 key (a broken MTL)."""
    sc_id, sensor_id, refl, thermal = MISSIONS[spacecraft]
    pid = product_id(spacecraft)
    l1 = pid.replace("L2SP", "L1TP").replace("20220324", "20220322", 1)
    st = f"ST_B{thermal}"
    contents = {
        "ORIGIN": "Image courtesy of the U.S. Geological Survey",
        "DIGITAL_OBJECT_IDENTIFIER": "https://doi.org/10.5066/P9OGBGM6",
        "LANDSAT_PRODUCT_ID": pid,
        "PROCESSING_LEVEL": "L2SP",
        "COLLECTION_NUMBER": Num("02"),
        "COLLECTION_CATEGORY": "T1",
        "OUTPUT_FORMAT": "GEOTIFF",
        **{f"FILE_NAME_BAND_{b}": f"{pid}_SR_B{b}.TIF" for b in refl},
        f"FILE_NAME_BAND_{st}": f"{pid}_{st}.TIF",
        "FILE_NAME_QUALITY_L1_PIXEL": f"{pid}_QA_PIXEL.TIF",
        "FILE_NAME_METADATA_ODL": f"{pid}_MTL.txt",
    }
    sr = {f"REFLECTANCE_MULT_BAND_{b}": Num("2.75e-05") for b in refl}
    sr |= {f"REFLECTANCE_ADD_BAND_{b}": Num("-0.2") for b in refl}
    every = [*refl, "8", "9", thermal, "11"] if sc_id in ("LANDSAT_8", "LANDSAT_9") else refl
    tree = {"LANDSAT_METADATA_FILE": {
        "PRODUCT_CONTENTS": contents,
        "IMAGE_ATTRIBUTES": {
            "SPACECRAFT_ID": sc_id, "SENSOR_ID": sensor_id, "WRS_PATH": Num("191"),
            "WRS_ROW": Num("31"), "DATE_ACQUIRED": Num("2022-03-22"),
            "SCENE_CENTER_TIME": "09:53:21.7130210Z", "CLOUD_COVER": Num("0.30"),
            "SUN_AZIMUTH": Num("149.29129302"), "SUN_ELEVATION": Num("44.67055861"),
            "EARTH_SUN_DISTANCE": Num("0.9963259"),
        },
        "LEVEL2_PROCESSING_RECORD": {
            "LANDSAT_PRODUCT_ID": pid, "PROCESSING_LEVEL": "L2SP",
            "DATE_PRODUCT_GENERATED": Num("2022-03-24T04:50:21Z"),
            "PROCESSING_SOFTWARE_VERSION": "LPGS_15.6.0",
            "ALGORITHM_SOURCE_SURFACE_REFLECTANCE": "LaSRC_1.5.0",
        },
        "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS": sr,
        "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS": {
            f"TEMPERATURE_MULT_BAND_{st}": Num("0.00341802"),
            f"TEMPERATURE_ADD_BAND_{st}": Num("149.0"),
        },
        # the Level-1 product this one was made from: its files are not in the product, and
        # its TOA rescaling must never be applied to surface-reflectance DN
        "LEVEL1_PROCESSING_RECORD": {
            "LANDSAT_SCENE_ID": "LC91910312022081LGN00", "LANDSAT_PRODUCT_ID": l1,
            "PROCESSING_LEVEL": "L1TP", "DATE_PRODUCT_GENERATED": Num("2022-03-22T19:33:12Z"),
            **{f"FILE_NAME_BAND_{b}": f"{l1}_B{b}.TIF" for b in every},
            "FILE_NAME_QUALITY_L1_PIXEL": f"{l1}_QA_PIXEL.TIF",
        },
        "LEVEL1_RADIOMETRIC_RESCALING": {
            **{f"REFLECTANCE_MULT_BAND_{b}": Num("2.0000E-05") for b in refl},
            **{f"REFLECTANCE_ADD_BAND_{b}": Num("-0.100000") for b in refl},
            f"RADIANCE_MULT_BAND_{thermal}": Num("3.8000E-04"),
            f"RADIANCE_ADD_BAND_{thermal}": Num("0.10000"),
        },
        "LEVEL1_THERMAL_CONSTANTS": {
            f"K1_CONSTANT_BAND_{thermal}": Num("799.0284"),
            f"K2_CONSTANT_BAND_{thermal}": Num("1329.2405"),
        },
    }}  # fmt: skip
    if omit is not None:
        for name, group in tree["LANDSAT_METADATA_FILE"].items():
            if name.startswith("LEVEL2"):  # the Level-1 key of the same name stays
                group.pop(omit, None)
    return tree


def write_l2sp(folder: Path, spacecraft: str = "LC08", *, fmt: str = "txt", tar: bool = False,
               omit: str | None = None) -> Path:  # fmt: skip
    """A small L2SP product (folder or tar) in USGS's naming; returns its path."""
    _, _, refl, thermal = MISSIONS[spacecraft]
    pid = product_id(spacecraft)
    dn0, qa_only = fills()
    files = {}
    for i, b in enumerate(refl):
        files[f"{pid}_SR_B{b}.TIF"] = tif(np.where(dn0, 0, sr_dn(i)).astype(np.uint16))
    files[f"{pid}_ST_B{thermal}.TIF"] = tif(np.where(dn0, 0, st_dn()).astype(np.uint16))
    qa = np.full((SIZE, SIZE), CLEAR_QA, np.uint16)
    qa[dn0 | qa_only] = 1
    files[f"{pid}_QA_PIXEL.TIF"] = tif(qa)
    tree = mtl_tree(spacecraft, omit)
    files[f"{pid}_MTL.{fmt}"] = (to_odl(tree) if fmt == "txt" else to_json(tree)).encode()
    return write_product(folder, pid, files, tar)


def read_all(scene) -> np.ndarray:
    return scene.read(Window(0, 0, scene.shape[1], scene.shape[0]))


# -- values -------------------------------------------------------------------------------
@pytest.mark.parametrize("spacecraft", sorted(MISSIONS))
@pytest.mark.parametrize(("fmt", "tar"), [("txt", False), ("json", True)])
def test_l2sp_values_are_surface_reflectance_and_kelvin(tmp_path, spacecraft, fmt, tar):
    product = write_l2sp(tmp_path, spacecraft, fmt=fmt, tar=tar)
    assert landsat.identify(product)
    scene = open_product(product)  # detection picks the Landsat reader
    _, _, refl, thermal = MISSIONS[spacecraft]
    names = [f"B{b}" for b in refl] + [f"B{thermal}"]
    assert scene.band_names == sorted(names, key=lambda n: int(n[1:]))  # the sensor's order
    assert scene.metadata["level"] == "L2SP" and "L2SP" in scene.product_type
    assert scene.metadata["values"].startswith("surface reflectance")
    assert scene.metadata["processing_date"].startswith("2022-03-24")  # the L2 record's
    assert scene.grid.resolution == 30 and scene.shape == (SIZE, SIZE)
    x = read_all(scene)
    dn0, qa_only = fills()
    ok = ~(dn0 | qa_only)
    x = {name: x[scene.band_names.index(name)] for name in names}
    for i, b in enumerate(refl):
        want = sr_dn(i).astype(np.float32) * np.float32(SR_MULT) + np.float32(SR_ADD)
        np.testing.assert_allclose(x[f"B{b}"][ok], want[ok], rtol=0, atol=1e-6)
    # one pixel by hand: (8000 + 331 * 4) * 2.75e-5 - 0.2
    assert x["B1"][4, 0] == pytest.approx((8000 + 331 * 4) * 2.75e-05 - 0.2, abs=1e-6)
    kelvin = x[f"B{thermal}"]
    want = st_dn().astype(np.float32) * np.float32(ST_MULT) + np.float32(ST_ADD)
    np.testing.assert_allclose(kelvin[ok], want[ok], rtol=0, atol=1e-3)
    assert 270 < np.nanmin(kelvin) and np.nanmax(kelvin) < 320
    st = scene.bands[scene.band_names.index(f"B{thermal}")]
    assert st.band.type == "brightness_temperature"  # the model's thermal input, in kelvin
    assert "surface temperature" in st.radiometry.formula and st.path.endswith(f"ST_B{thermal}.TIF")
    # DN 0 and the QA_PIXEL fill bit are no data in every band
    stack = np.stack(list(x.values()))
    assert np.isnan(stack[:, dn0]).all() and np.isnan(stack[:, qa_only]).all()
    assert np.isfinite(stack[:, ok]).all()
    scene.close()


def test_level1_record_in_a_level2_mtl_is_never_used(tmp_path):
    # A real L2SP MTL names the Level-1 product's B8..B11 files and TOA rescaling too; none
    # of them is in the product, and taking them would mix TOA coefficients with SR DN.
    scene = open_product(write_l2sp(tmp_path, "LC09"))
    assert "B8" not in scene.band_names and "B11" not in scene.band_names
    for src in scene.bands:
        assert "_L2SP_" in src.path, src.path
        if src.band.type == "reflectance":
            assert (src.radiometry.scale, src.radiometry.offset) == (SR_MULT, SR_ADD)
            assert src.radiometry.divisor == 1.0  # no sun-elevation division: already surface
    assert "QA_PIXEL" in scene.masks[0].path and "_L2SP_" in scene.masks[0].path


@pytest.mark.parametrize(
    ("omit", "key"),
    [
        ("REFLECTANCE_MULT_BAND_4", "REFLECTANCE_MULT_BAND_4 in group LEVEL2_SURFACE_REFLECTANCE"),
        ("TEMPERATURE_ADD_BAND_ST_B10", "TEMPERATURE_ADD_BAND_ST_B10 in group LEVEL2_SURFACE_TEMP"),
    ],
)
def test_level2_mtl_without_a_coefficient_is_one_line_error(tmp_path, omit, key):
    # the Level-1 REFLECTANCE_MULT_BAND_4 beside it is not a fallback: never guessed
    product = write_l2sp(tmp_path, "LC08", omit=omit)
    with pytest.raises(InputError, match=f"_MTL.txt: missing MTL key {key}"):
        open_product(product)
    res = runner.invoke(app, ["info", str(product)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "_MTL.txt" in lines[0] and omit in lines[0], lines


def test_other_level2_levels_and_collections_are_refused(tmp_path):
    product = write_l2sp(tmp_path / "a", "LC08")
    mtl = product / f"{product.name}_MTL.txt"
    mtl.write_text(
        mtl.read_text().replace('PROCESSING_LEVEL = "L2SP"', 'PROCESSING_LEVEL = "L2XX"')
    )
    with pytest.raises(InputError, match="PROCESSING_LEVEL L2XX"):
        open_product(product)
    product = write_l2sp(tmp_path / "b", "LC08")
    mtl = product / f"{product.name}_MTL.txt"
    mtl.write_text(mtl.read_text().replace("COLLECTION_NUMBER = 02", "COLLECTION_NUMBER = 01"))
    with pytest.raises(InputError, match="only Collection 2 Level-2"):
        open_product(product)


# -- the CLI ------------------------------------------------------------------------------
def test_info_says_which_level_it_read(tmp_path):
    l2 = write_l2sp(tmp_path / "l2", "LC08")
    l1 = demo.write_landsat(tmp_path / "l1", spacecraft="LC08", size=24)
    res = runner.invoke(app, ["info", str(l2)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "level: L2SP" in res.output
    assert "values: surface reflectance, surface temperature (K)" in res.output
    assert "Collection 2 L2SP" in res.output and "SR_B" not in res.output.split("level")[0]
    res = runner.invoke(app, ["info", str(l1)], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "level: L1TP" in res.output
    assert "values: top-of-atmosphere reflectance" in res.output
    data = json.loads(runner.invoke(app, ["info", str(l2), "--json"]).output)
    assert data["level"] == "L2SP"
    assert data["bands"][0]["radiometry"] == {
        "scale": SR_MULT, "offset": SR_ADD,
        "formula": "REFLECTANCE_MULT_BAND_1 * DN + REFLECTANCE_ADD_BAND_1 (surface reflectance)",
    }  # fmt: skip


def test_run_on_l2sp_writes_a_mask(tmp_path, tiny_weights):
    product = write_l2sp(tmp_path / "p", "LC09", tar=True)
    out = tmp_path / "mask.tif"
    res = runner.invoke(app, ["run", str(product), "-o", str(out), "--weights", str(tiny_weights),
                              "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert (ds.width, ds.height, ds.res) == (SIZE, SIZE, (30.0, 30.0))
        codes = ds.read(1)
    dn0, qa_only = fills()
    assert (codes[dn0 | qa_only] == 255).all()
    assert (codes[~(dn0 | qa_only)] != 255).all()
    side = json.loads((tmp_path / "mask.tif.json").read_text())
    assert "L2SP" in side["product_type"]
    assert "surface reflectance" in side["radiometry"]["B4"]["formula"]
    assert "surface temperature" in side["radiometry"]["B10"]["formula"]


# -- real data ----------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.parametrize("suffix", ["txt", "xml", "json"])
def test_real_l2sp_mtl_with_its_listed_files(shared_data, tmp_path, suffix):
    """The real LC09 L2SP MTL (each encoding), read in place beside small rasters named as it
    lists them: its own coefficients, never the Level-1 ones it also carries."""
    folder = require(shared_data / "products" / "landsat" / "mtl-variants")
    mtl_file = require(folder / f"LC09_L2SP_191031_20220322_20220324_02_T1_MTL.{suffix}")
    mtl = read_mtl(mtl_file)
    product = tmp_path / mtl.product_id
    product.mkdir()
    (product / mtl_file.name).symlink_to(mtl_file)
    refl = ["1", "2", "3", "4", "5", "6", "7"]
    for i, b in enumerate(refl):
        (product / mtl.band_file(b)).write_bytes(tif(sr_dn(i)))
    (product / mtl.band_file("ST_B10")).write_bytes(tif(st_dn()))
    (product / mtl.qa_file()).write_bytes(tif(np.full((SIZE, SIZE), CLEAR_QA, np.uint16)))
    scene = open_product(product)
    assert scene.metadata["level"] == "L2SP" and scene.metadata["spacecraft"] == "LANDSAT_9"
    assert scene.band_names == [f"B{b}" for b in refl] + ["B10"]
    x = read_all(scene)
    np.testing.assert_allclose(x[3], sr_dn(3) * 2.75e-05 - 0.2, atol=1e-6)
    np.testing.assert_allclose(x[-1], st_dn() * 0.00341802 + 149.0, atol=1e-3)
    assert scene.metadata["processing_software"] == "LPGS_15.6.0"
    assert scene.metadata["processing_date"].startswith("2022-03-24")
