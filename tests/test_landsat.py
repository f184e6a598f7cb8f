"""Landsat Level-1 reader, MTL parser and demo products.

Always-on tier: tiny products written by `cloudmask_cli.demo.landsat` in the real formats.
Real-data tier: the products, MTL variants and calibration oracles in ../shared/data.
"""

from __future__ import annotations

import io
import math
import re
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import require
from product_writers import write_landsat
from rasterio.io import MemoryFile
from rasterio.windows import Window

from cloudmask_cli.demo import landsat as demo
from cloudmask_cli.errors import InputError
from cloudmask_cli.products import landsat
from cloudmask_cli.products.mtl import parse_mtl, read_mtl
from cloudmask_cli.scene import BandSource, Scene
from cloudmask_cli.sensors import get_sensor

SPACECRAFT = ["LC08", "LC09", "LE07"]


def read_all(scene: Scene) -> np.ndarray:
    return scene.read(Window(0, 0, scene.shape[1], scene.shape[0]))


def band(scene: Scene, name: str) -> np.ndarray:
    i = scene.band_names.index(name)
    return scene.read(Window(0, 0, scene.shape[1], scene.shape[0]), bands=[i])[0]


def file_of(product: Path, suffix: str) -> Path:
    return product / f"{product.name}_{suffix}"


def edit_mtl(product: Path, edit) -> None:
    mtl = file_of(product, "MTL.txt")
    mtl.write_text(edit(mtl.read_text()))


def write_tif(path: Path, array: np.ndarray) -> None:
    """Overwrite a product raster's pixels, keeping its grid and type.

    Written in memory, then over the file: GDAL counts a Landsat band's ``*_MTL.txt`` among
    the band's own files, so re-creating the band in place would delete the MTL with it.
    """
    with rasterio.open(path) as src:
        profile = src.profile
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(array.astype(profile["dtype"]), 1)
        path.write_bytes(mem.read())


# -- generated products: formats and containers ---------------------------------------------
@pytest.mark.parametrize("spacecraft", SPACECRAFT)
def test_every_format_and_container_gives_identical_values(tmp_path, spacecraft):
    variants = [("txt", False), ("xml", False), ("json", False), ("txt", True), ("json", True)]
    results = []
    for fmt, tar in variants:
        product = write_landsat(
            tmp_path / f"{fmt}{tar}", spacecraft=spacecraft, mtl_format=fmt, tar=tar, size=48
        )
        assert landsat.identify(product)
        scene = landsat.open(product)
        assert scene.sensor.name == landsat.SENSORS[scene.metadata["spacecraft"]]
        results.append(read_all(scene))
        scene.close()
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)  # NaN in the same places too
    assert np.isfinite(results[0]).mean() > 0.4


def test_collection1_reads_like_collection2(tmp_path):
    c2 = landsat.open(demo.write_landsat(tmp_path / "c2", size=48))
    c1 = landsat.open(demo.write_landsat(tmp_path / "c1", collection=1, tar=True, size=48))
    assert c1.metadata["collection"] == 1 and c2.metadata["collection"] == 2
    assert "BQA" in c1.masks[0].path and "QA_PIXEL" in c2.masks[0].path
    np.testing.assert_array_equal(read_all(c1), read_all(c2))


@pytest.mark.parametrize("spacecraft", ["LC08", "LC09", "LE07", "LT05"])
def test_bands_types_and_values_are_sane(tmp_path, spacecraft):
    scene = landsat.open(demo.write_landsat(tmp_path, spacecraft=spacecraft, size=60))
    assert scene.band_names == get_sensor(landsat.SENSORS[scene.metadata["spacecraft"]]).band_names
    data = read_all(scene)
    for src, values in zip(scene.bands, data, strict=True):
        v = values[np.isfinite(values)]
        if src.band.type == "brightness_temperature":
            assert 240 < v.min() and v.max() < 320, src.band.name  # kelvin
        else:
            assert -0.05 < v.min() and v.max() < 1.3, src.band.name
    # clouds: bright in the blue band and cold in the thermal one
    blue = data[scene.band_names.index("B2" if spacecraft[:2] == "LC" else "B1")]
    thermal = data[[b.band.type for b in scene.bands].index("brightness_temperature")]
    ok = np.isfinite(blue) & np.isfinite(thermal)
    assert np.corrcoef(blue[ok], thermal[ok])[0, 1] < -0.5


def test_pan_band_is_flagged_and_not_the_default_resolution(tmp_path):
    for spacecraft in ("LC08", "LE07"):
        scene = landsat.open(demo.write_landsat(tmp_path / spacecraft, spacecraft=spacecraft))
        pan = scene.bands[scene.band_names.index("B8")]
        assert pan.band.panchromatic and scene.native_resolution(pan) == 15
        assert scene.grid.resolution == 30 and scene.shape == (120, 120)
    fine = scene.with_resolution(15)
    assert fine.shape == (240, 240) and np.isfinite(band(fine, "B8")).any()


def test_metadata(tmp_path):
    scene = landsat.open(demo.write_landsat(tmp_path, spacecraft="LC09", tar=True))
    meta = scene.metadata
    assert meta["level"] == "L1TP" and meta["collection"] == 2
    assert meta["spacecraft"] == "LANDSAT_9" and meta["sensor_id"] == "OLI_TIRS"
    assert meta["datetime"].startswith("2022-02-09T09:50:14.767075")
    assert (meta["wrs_path"], meta["wrs_row"]) == (112, 81)
    assert meta["sun_elevation"] == pytest.approx(demo.SUN_ELEVATION)
    assert meta["sun_azimuth"] == pytest.approx(demo.SUN_AZIMUTH)
    assert meta["earth_sun_distance"] == pytest.approx(demo.EARTH_SUN_DISTANCE)
    assert meta["processing_software"] and meta["processing_date"]
    assert scene.crs.to_epsg() == demo.EPSG
    assert "Collection 2 L1TP" in scene.product_type
    info = scene.info()
    assert info["bands"][9]["radiometry"]["k1"] == pytest.approx(799.0284)


# -- radiometry: known DN -> known values ---------------------------------------------------
def test_known_dn_gives_known_reflectance_and_brightness_temperature(tmp_path):
    product = demo.write_landsat(tmp_path, spacecraft="LC08", size=40)
    fill = rasterio.open(file_of(product, "QA_PIXEL.TIF")).read(1) & 1 == 1
    write_tif(file_of(product, "B4.TIF"), np.full((40, 40), 10000))
    write_tif(file_of(product, "B10.TIF"), np.full((40, 40), 30000))
    scene = landsat.open(product)
    # By hand, with the MTL's numbers: REFLECTANCE_MULT_BAND_4 = 2.0E-05, ADD = -0.1,
    # SUN_ELEVATION = 48.5; RADIANCE_MULT_BAND_10 = 3.342E-04, ADD = 0.1, K1 = 774.8853,
    # K2 = 1321.0789.
    rho = (2.0e-05 * 10000 - 0.1) / math.sin(math.radians(48.5))
    radiance = 3.342e-04 * 30000 + 0.1
    bt = 1321.0789 / math.log(774.8853 / radiance + 1)
    assert rho == pytest.approx(0.1335192, abs=1e-6) and bt == pytest.approx(303.655, abs=1e-3)
    red, tirs = band(scene, "B4"), band(scene, "B10")
    np.testing.assert_allclose(red[~fill], rho, rtol=1e-6)
    np.testing.assert_allclose(tirs[~fill], bt, rtol=1e-6)
    assert np.isnan(red[fill]).all() and np.isnan(tirs[fill]).all()


@pytest.mark.parametrize("spacecraft", ["LE07", "LT05"])
def test_dn_follow_the_mtl_formulas_pixel_by_pixel(tmp_path, spacecraft):
    product = demo.write_landsat(tmp_path, spacecraft=spacecraft, size=40)
    scene = landsat.open(product)
    text = file_of(product, "MTL.txt").read_text()

    def key(name: str) -> float:
        return float(re.search(rf"^\s*{name} = (\S+)$", text, re.M).group(1))

    sun = math.sin(math.radians(key("SUN_ELEVATION")))
    for src in scene.bands:
        if src.band.panchromatic:
            continue  # 15 m: averaged onto the 30 m grid, checked elsewhere
        k = src.band.source[1:]
        dn = rasterio.open(src.path).read(1).astype(np.float64)
        if src.band.type == "brightness_temperature":
            radiance = key(f"RADIANCE_MULT_BAND_{k}") * dn + key(f"RADIANCE_ADD_BAND_{k}")
            with np.errstate(divide="ignore", invalid="ignore"):
                want = key(f"K2_CONSTANT_BAND_{k}") / np.log(
                    key(f"K1_CONSTANT_BAND_{k}") / radiance + 1
                )
        else:
            want = (key(f"REFLECTANCE_MULT_BAND_{k}") * dn + key(f"REFLECTANCE_ADD_BAND_{k}")) / sun
        got = band(scene, src.band.name)
        ok = np.isfinite(got)
        assert ok.mean() > 0.4
        np.testing.assert_allclose(got[ok], want[ok], rtol=2e-6)
        assert (dn[~ok] == 0).all() or spacecraft == "LE07"  # L7: the gap masks add NaN


# -- invalid pixels -------------------------------------------------------------------------
def test_qa_pixel_fill_bit_masks_every_band(tmp_path):
    product = demo.write_landsat(tmp_path, spacecraft="LC08", size=40)
    qa_path = file_of(product, "QA_PIXEL.TIF")
    qa = rasterio.open(qa_path).read(1)
    assert ((qa & 1) == 1).any() and ((qa & 1) == 0).any()
    # Flag a block of valid pixels as fill in QA_PIXEL only: the DN there are not 0.
    block = (slice(18, 24), slice(18, 24))
    assert (qa[block] & 1 == 0).all()
    qa[block] = 1
    write_tif(qa_path, qa)
    scene = landsat.open(product)
    data = read_all(scene)
    fill = (qa & 1) == 1
    assert np.isnan(data[:, fill]).all()
    native = [i for i, n in enumerate(scene.band_names) if n != "B8"]
    assert np.isfinite(data[native][:, ~fill]).all()
    # the 15 m pan band is averaged down to 30 m: its pixels touching DN-0 fill are dropped too
    pan = data[scene.band_names.index("B8")]
    assert np.isfinite(pan[~fill]).mean() > 0.8


def test_dn_zero_is_nodata_in_its_band_only(tmp_path):
    product = demo.write_landsat(tmp_path, spacecraft="LC08", size=40)
    b3 = rasterio.open(file_of(product, "B3.TIF")).read(1)
    b3[20, 20] = 0
    write_tif(file_of(product, "B3.TIF"), b3)
    scene = landsat.open(product)
    assert np.isnan(band(scene, "B3")[20, 20]) and np.isfinite(band(scene, "B4")[20, 20])


def test_landsat7_gap_masks_are_per_band(tmp_path):
    product = demo.write_landsat(tmp_path, spacecraft="LE07", size=60)
    scene = landsat.open(product)
    gm = {s.band.name: s.masks for s in scene.bands}
    assert all(len(m) == 1 and "_GM_" in m[0].path for m in gm.values())
    # Every generated gap pixel is NaN in its band.
    for src in scene.bands:
        if not src.band.panchromatic:
            gaps = rasterio.open(file_of(product, f"GM_{src.band.source}.TIF")).read(1) == 0
            assert np.isnan(band(scene, src.band.name)[gaps]).all()
    # A gap flagged in GM_B3 alone blanks B3 there and leaves the other bands valid.
    before = read_all(scene)
    valid = np.isfinite(before).all(axis=0)
    whole = np.lib.stride_tricks.sliding_window_view(valid, (4, 4)).all(axis=(2, 3))
    r, c = np.argwhere(whole)[0]  # a 4 x 4 block valid in every band
    block = (slice(r, r + 4), slice(c, c + 4))
    gm3 = rasterio.open(file_of(product, "GM_B3.TIF")).read(1)
    gm3[block] = 0
    write_tif(file_of(product, "GM_B3.TIF"), gm3)
    after = read_all(landsat.open(product))
    i = scene.band_names.index("B3")
    assert np.isnan(after[i][block]).all()
    others = [k for k in range(len(scene.bands)) if k != i]
    np.testing.assert_array_equal(after[others], before[others])


# -- bad input ------------------------------------------------------------------------------
def raises(product: Path, *needles: str) -> InputError:
    with pytest.raises(InputError) as info:
        landsat.open(product)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return info.value


@pytest.mark.parametrize(
    "key", ["REFLECTANCE_MULT_BAND_4", "SUN_ELEVATION", "K1_CONSTANT_BAND_10", "SPACECRAFT_ID"]
)
def test_mtl_without_a_needed_key(tmp_path, key):
    product = demo.write_landsat(tmp_path, size=24)
    edit_mtl(product, lambda t: re.sub(rf"^\s*{key} = .*\n", "", t, flags=re.M))
    raises(product, "_MTL.txt", key)


def test_mtl_with_no_band_files(tmp_path):
    product = demo.write_landsat(tmp_path, size=24)
    edit_mtl(product, lambda t: re.sub(r"^\s*FILE_NAME_BAND_\d+ = .*\n", "", t, flags=re.M))
    raises(product, "_MTL.txt", "FILE_NAME_BAND")


def test_mtl_not_a_number(tmp_path):
    product = demo.write_landsat(tmp_path, size=24)
    edit_mtl(
        product,
        lambda t: re.sub(r"(REFLECTANCE_ADD_BAND_2 = ).*", r"\1x", t),
    )
    raises(product, "_MTL.txt", "REFLECTANCE_ADD_BAND_2")


def test_broken_json_mtl(tmp_path):
    product = write_landsat(tmp_path, mtl_format="json", size=24)
    mtl = file_of(product, "MTL.json")
    mtl.write_text(mtl.read_text()[:-200])
    raises(product, str(mtl), "JSON")


def test_missing_band_file(tmp_path):
    product = demo.write_landsat(tmp_path, size=24)
    file_of(product, "B5.TIF").unlink()
    raises(product, str(file_of(product, "B5.TIF")), "missing")


def test_missing_band_file_in_tar(tmp_path):
    product = demo.write_landsat(tmp_path / "src", size=24)
    archive = tmp_path / f"{product.name}.tar"
    with tarfile.open(archive, "w") as tf:
        for f in sorted(product.iterdir()):
            if not f.name.endswith("_B5.TIF"):
                tf.add(f, arcname=f.name)
    raises(archive, f"{archive}:{product.name}_B5.TIF", "missing")


def test_missing_qa_band(tmp_path):
    product = demo.write_landsat(tmp_path, size=24)
    file_of(product, "QA_PIXEL.TIF").unlink()
    raises(product, "QA_PIXEL.TIF", "missing")


@pytest.mark.parametrize("tar", [False, True])
def test_truncated_tif(tmp_path, tar):
    product = demo.write_landsat(tmp_path / "src", size=60)
    b4 = file_of(product, "B4.TIF")
    data = b4.read_bytes()
    b4.write_bytes(data[: len(data) // 2])
    target = product
    if tar:
        target = tmp_path / f"{product.name}.tar"
        with tarfile.open(target, "w") as tf:
            for f in sorted(product.iterdir()):
                tf.add(f, arcname=f.name)
    raises(target, "_B4.TIF", "truncated")


def test_tiny_placeholder_tif(tmp_path):
    product = demo.write_landsat(tmp_path, size=24)
    file_of(product, "B6.TIF").write_bytes(b"I")
    raises(product, "_B6.TIF", "cannot read raster")


def test_tar_that_is_not_a_landsat_product(tmp_path):
    archive = tmp_path / "something.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("readme_MTL.txt")
        payload = b"GROUP = SOMETHING_ELSE\n  A = 1\nEND_GROUP = SOMETHING_ELSE\nEND\n"
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
        info = tarfile.TarInfo("image.tif")
        tf.addfile(info, io.BytesIO(b""))
    assert not landsat.identify(archive)
    raises(archive, str(archive), "not a Landsat")
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    assert not landsat.identify(empty)
    raises(empty, str(empty), "no *_MTL.txt")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x00\x01 not a tar at all" * 10)
    assert not landsat.identify(garbage)
    raises(garbage, str(garbage), "tar")


def test_not_a_product_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert not landsat.identify(tmp_path)
    assert not landsat.identify(tmp_path / "notes.txt")
    raises(tmp_path, str(tmp_path), "no *_MTL.txt")


def test_level2_label_without_level2_metadata_and_unknown_spacecraft_are_refused(tmp_path):
    # a Level-1 MTL relabelled L2SP: its TOA coefficients are never taken for Level-2 ones
    product = demo.write_landsat(tmp_path / "a", size=24)
    edit_mtl(product, lambda t: t.replace('PROCESSING_LEVEL = "L1TP"', 'PROCESSING_LEVEL = "L2SP"'))
    raises(product, "_MTL.txt", "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
    product = demo.write_landsat(tmp_path / "b", size=24)
    edit_mtl(product, lambda t: t.replace('"LANDSAT_8"', '"LANDSAT_3"'))
    raises(product, "_MTL.txt", "LANDSAT_3")


def test_sensor_override_must_match_the_product(tmp_path):
    product = demo.write_landsat(tmp_path, spacecraft="LC08", size=24)
    with pytest.raises(InputError, match="B6_VCID_1"):
        landsat.open(product, sensor=get_sensor("landsat7_etm"))


# -- MTL parser -----------------------------------------------------------------------------
def test_mtl_encodings_parse_to_the_same_values(tmp_path):
    parsed = []
    for fmt in ("txt", "xml", "json"):
        product = write_landsat(tmp_path / fmt, spacecraft="LE07", mtl_format=fmt, size=24)
        parsed.append(read_mtl(file_of(product, f"MTL.{fmt}")))
    for mtl in parsed:
        summary = mtl.summary()
        summary.pop("mtl")
        want = parsed[0].summary()
        want.pop("mtl")
        assert summary == want
        assert mtl.reflectance("4") == parsed[0].reflectance("4")
        assert mtl.radiance("6_VCID_2") == (3.7205e-02, 3.1628)
        assert mtl.thermal("6_VCID_1") == (666.09, 1282.71)


def test_mtl_odl_values_and_errors():
    mtl = parse_mtl(
        'GROUP = L1_METADATA_FILE\n  GROUP = A\n    SPACECRAFT_ID = "LANDSAT_8"\n'
        '    DATA_TYPE = "L1T"\n  END_GROUP = A\nEND_GROUP = L1_METADATA_FILE\nEND\n',
        "x_MTL.txt",
    )
    assert mtl.level == "L1T" and mtl.collection == 0 and mtl.spacecraft == "LANDSAT_8"
    with pytest.raises(InputError, match="x_MTL.txt: missing MTL key SUN_ELEVATION"):
        mtl.number("SUN_ELEVATION")
    with pytest.raises(InputError, match="line 2"):
        parse_mtl("GROUP = A\nthis is not odl\n", "y_MTL.txt")
    with pytest.raises(InputError, match="XML"):
        parse_mtl("<A><B>1</B>", "z_MTL.xml")


# -- demo ---------------------------------------------------------------------------------
def test_demo_is_deterministic_and_fast(tmp_path):
    start = time.perf_counter()
    one = demo.write_landsat(tmp_path / "1", spacecraft="LE07", tar=True)
    elapsed = time.perf_counter() - start
    two = demo.write_landsat(tmp_path / "2", spacecraft="LE07", tar=True)
    assert one.read_bytes() == two.read_bytes()
    assert elapsed < 4.0  # ~0.3 s; generous for a loaded 2-core CI machine
    names = tarfile.open(one).getnames()
    pid = demo.product_id("LE07")
    assert f"{pid}_B6_VCID_1.TIF" in names and f"{pid}_GM_B8.TIF" in names
    assert f"{pid}_QA_PIXEL.TIF" in names and f"{pid}_MTL.txt" in names
    assert re.fullmatch(r"LE07_L1TP_\d{6}_\d{8}_\d{8}_02_T1", pid)


def test_demo_rasters_look_like_the_real_ones(tmp_path):
    product = demo.write_landsat(tmp_path, spacecraft="LE07", size=40)
    with rasterio.open(file_of(product, "B1.TIF")) as ds:
        assert ds.dtypes[0] == "uint8" and ds.crs.is_projected and ds.res == (30, 30)
    with rasterio.open(file_of(product, "B8.TIF")) as ds:
        assert ds.res == (15, 15) and ds.shape == (80, 80)
    gm = rasterio.open(file_of(product, "GM_B1.TIF")).read(1)
    assert set(np.unique(gm)) == {0, 1}
    product = demo.write_landsat(tmp_path / "c", spacecraft="LC09", size=40)
    with rasterio.open(file_of(product, "B10.TIF")) as ds:
        assert ds.dtypes[0] == "uint16"
    assert read_mtl(file_of(product, "MTL.txt")).groups["LEVEL1_THERMAL_CONSTANTS"]


# == real data =============================================================================
REAL_PRODUCTS = [
    "LC08_L1GT_089074_20220506_20220512_02_T2",
    "LC08_L1TP_090084_20160121_20200907_02_T1",
    "LE07_L1TP_107068_20220310_20220405_02_T1",
    "LC09_L1TP_112081_20220209_20220209_02_T1.tar",
]


@pytest.mark.realdata
@pytest.mark.parametrize("name", REAL_PRODUCTS)
def test_real_products_open_with_sane_values(shared_data, name):
    product = require(shared_data / "products" / "landsat" / name)
    assert landsat.identify(product)
    scene = landsat.open(product)
    meta = scene.metadata
    assert meta["collection"] == 2 and meta["level"] == name.split("_")[1]
    assert (
        meta["spacecraft"]
        == {"LC08": "LANDSAT_8", "LC09": "LANDSAT_9", "LE07": "LANDSAT_7"}[name[:4]]
    )
    assert (meta["wrs_path"], meta["wrs_row"]) == (int(name[10:13]), int(name[13:16]))
    assert 0 < meta["sun_elevation"] < 90 and 0.98 < meta["earth_sun_distance"] < 1.02
    assert len(scene.masks) == 1 and "QA_PIXEL" in scene.masks[0].path
    data = read_all(scene)
    for src, values in zip(scene.bands, data, strict=True):
        v = values[np.isfinite(values)]
        assert v.size > 0.2 * values.size, src.band.name
        if src.band.type == "brightness_temperature":
            assert 180 < v.min() and v.max() < 340, (src.band.name, v.min(), v.max())
        else:
            assert -0.1 <= v.min() and v.max() < 1.7, (src.band.name, v.min(), v.max())
            assert 0 < np.median(v) < 1, src.band.name
    assert 0.2 < scene.valid_fraction() <= 1
    scene.close()


@pytest.mark.realdata
def test_real_tar_is_read_in_place(shared_data):
    archive = require(
        shared_data / "products" / "landsat" / "LC09_L1TP_112081_20220209_20220209_02_T1.tar"
    )
    scene = landsat.open(archive)
    assert all(b.path.startswith("/vsitar/") for b in scene.bands)
    assert scene.metadata["mtl"].endswith("_MTL.txt")  # txt preferred over the xml beside it
    assert scene.sensor.name == "landsat9_oli2_tirs2" and len(scene.bands) == 11


@pytest.mark.realdata
def test_real_landsat7_gap_masks_are_honoured(shared_data):
    product = require(
        shared_data / "products" / "landsat" / "LE07_L1TP_107068_20220310_20220405_02_T1"
    )
    scene = landsat.open(product)
    data = read_all(scene)
    extra = 0
    for src, values in zip(scene.bands, data, strict=True):
        assert len(src.masks) == 1 and f"_GM_{src.band.source}.TIF" in src.masks[0].path
        # The gap mask read exactly as the Scene reads it: nearest sample on the working grid.
        with rasterio.open(src.masks[0].path) as gm_ds, rasterio.open(src.path) as dn_ds:
            win = rasterio.windows.from_bounds(*scene.grid.bounds, transform=gm_ds.transform)
            gm = gm_ds.read(1, window=win, out_shape=scene.shape)
            win = rasterio.windows.from_bounds(*scene.grid.bounds, transform=dn_ds.transform)
            dn = dn_ds.read(1, window=win, out_shape=scene.shape)
        assert np.isnan(values[gm == 0]).all(), src.band.name
        extra += int(((gm == 0) & (dn > 0)).sum())
    assert extra > 0  # real gap pixels with a non-zero DN: the masks do matter


@pytest.mark.realdata
def test_every_real_mtl_variant_parses(shared_data):
    folder = require(shared_data / "products" / "landsat" / "mtl-variants")
    files = sorted(folder.glob("*_MTL.*"))
    assert len(files) == 15
    for f in files:
        mtl = read_mtl(f)
        sensor = get_sensor(landsat.SENSORS[mtl.spacecraft])
        assert mtl.collection == (0 if f.name.startswith("LC8") else int(f.name[35:37]))
        assert mtl.level in f.name or mtl.level == "L1T"
        night = mtl.sun_elevation <= 0  # LC08_L1GT_119160 RT: a night acquisition
        listed = 0
        for b in sensor.bands:
            key = b.source[1:]
            if mtl.band_file(key) is None:
                continue
            listed += 1
            if mtl.is_level2:  # surface values (test_landsat_l2.py reads these products)
                rad = landsat.radiometry(mtl, b)
                assert (rad.scale, rad.offset, rad.divisor) in [
                    (2.75e-05, -0.2, 1.0),
                    (0.00341802, 149.0, 1.0),
                ]
            elif b.type == "brightness_temperature":
                rad = landsat.radiometry(mtl, b)
                assert 400 < rad.k1 < 800 and 1100 < rad.k2 < 1400 and rad.scale > 0
            elif night:
                # No TOA reflectance without sun: refused with the key named, never guessed.
                with pytest.raises(InputError, match="SUN_ELEVATION"):
                    landsat.radiometry(mtl, b)
                assert mtl.reflectance(key)[0] > 0
            else:
                rad = landsat.radiometry(mtl, b)
                assert 0 < rad.scale < 0.01 and -0.2 < rad.offset < 0 and 0 < rad.divisor <= 1
        assert listed >= 7, f.name
        assert mtl.qa_file() is not None


@pytest.mark.realdata
def test_real_level2_mtl_keeps_both_rescalings_apart(shared_data):
    # reading the product itself: test_landsat_l2.py::test_real_l2sp_mtl_with_its_listed_files
    folder = require(shared_data / "products" / "landsat" / "mtl-variants")
    for f in sorted(folder.glob("LC09_L2SP_*_MTL.*")):
        mtl = read_mtl(f)
        assert mtl.is_level2 and mtl.level == "L2SP"
        assert mtl.surface_reflectance("4") == (2.75e-05, -0.2)
        assert mtl.reflectance("4") == (2.0e-05, -0.1)  # the Level-1 TOA rescaling beside it
        assert mtl.surface_temperature("ST_B10") == (0.00341802, 149.0)
        # the product's own files, not the Level-1 product's it also lists
        assert mtl.band_file("4").endswith("_L2SP_191031_20220322_20220324_02_T1_SR_B4.TIF")
        assert mtl.band_file("8") is None and mtl.band_file("ST_B10").endswith("_ST_B10.TIF")
        assert "_L2SP_" in mtl.qa_file()


# Calibration oracles: a DN stack, its real Collection 1 MTL, and the same stack converted to
# TOA by another tool. The oracle's bands, found by inspecting them: Landsat 8 B1-B7, B9
# (cirrus), B10, B11 (no pan); Landsat 7 B1-B5, B6_VCID_1, B6_VCID_2, B7 (no pan); Landsat 5
# B1-B7. Reflectance is sun-elevation corrected TOA reflectance (unitless) and thermal bands
# are brightness temperatures in kelvin (values ~280-300).
ORACLES = {
    "LC08_L1TP_193024_20200509_20200509_01_RT": ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9",
                                                 "B10", "B11"],
    "LE07_L1TP_193024_20100420_20161215_01_T1": ["B1", "B2", "B3", "B4", "B5", "B6_VCID_1",
                                                 "B6_VCID_2", "B7"],
    "LT05_L1TP_193024_20050516_20161127_01_T1": ["B1", "B2", "B3", "B4", "B5", "B6", "B7"],
}  # fmt: skip


@pytest.mark.realdata
@pytest.mark.parametrize("stem", sorted(ORACLES))
def test_calibration_against_oracles(shared_data, stem):
    folder = shared_data / "products" / "calibration-oracles"
    stack = require(folder / f"{stem}.tif")
    oracle = rasterio.open(require(folder / f"{stem}_toa.tif")).read()
    mtl = read_mtl(require(folder / f"{stem}_MTL.txt"))
    assert mtl.collection == 1
    sensor = get_sensor(landsat.SENSORS[mtl.spacecraft])
    with rasterio.open(stack) as ds:
        crs, bounds, count = ds.crs, tuple(ds.bounds), ds.count
    names = ORACLES[stem]
    assert count == len(names) == oracle.shape[0]
    sources = [
        BandSource(
            band=sensor.band(n),
            path=str(stack),
            index=i + 1,
            radiometry=landsat.radiometry(mtl, sensor.band(n)),
            nodata=(0,),
        )
        for i, n in enumerate(names)
    ]
    scene = Scene(sensor=sensor, bands=sources, crs=crs, bounds=bounds, resolution=30)
    ours = read_all(scene)
    for i, src in enumerate(sources):
        if src.band.type == "brightness_temperature":
            assert oracle[i].min() > 250  # kelvin, not degrees Celsius
            np.testing.assert_allclose(ours[i], oracle[i], atol=1e-3, err_msg=src.band.name)
        else:
            np.testing.assert_allclose(ours[i], oracle[i], atol=2e-6, err_msg=src.band.name)


def test_detection_picks_the_landsat_reader(tmp_path):
    for module in ("sentinel2", "perusat1"):  # detect() tries every reader
        pytest.importorskip(f"cloudmask_cli.products.{module}", reason="reader not written yet")
    from cloudmask_cli.products import detect, open_product

    for tar in (False, True):
        product = demo.write_landsat(tmp_path / str(tar), spacecraft="LC09", tar=tar, size=24)
        assert detect(product) is landsat
        assert open_product(product).sensor.name == "landsat9_oli2_tirs2"
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w"):
        pass
    with pytest.raises(InputError, match="other.tar"):
        detect(other)
