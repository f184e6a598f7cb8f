"""Sentinel-2 reader: generated SAFE products (always on) and the real products in ../shared."""

from __future__ import annotations

import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import require
from product_writers import write_sentinel2
from rasterio.enums import Resampling
from rasterio.windows import Window

from cloudmask_cli.errors import InputError
from cloudmask_cli.products import sentinel2 as s2
from cloudmask_cli.scene import Scene

SIZE = 240  # 10 m pixels: 20 m bands are 120 px, 60 m bands 40 px


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory):
    """Write each kind of demo product once per module; tests that damage one take a copy."""
    cache: dict[tuple, Path] = {}

    def get(**kw: object) -> Path:
        key = tuple(sorted(kw.items()))
        if key not in cache:
            cache[key] = write_sentinel2(tmp_path_factory.mktemp("s2"), size_10m=SIZE, **kw)
        return cache[key]

    return get


def copy_of(product: Path, tmp_path: Path) -> Path:
    dest = tmp_path / product.name
    if product.is_dir():
        shutil.copytree(product, dest)
    else:
        shutil.copy(product, dest)
    return dest


def full(scene: Scene) -> np.ndarray:
    return scene.read(Window(0, 0, scene.shape[1], scene.shape[0]))


def band_file(scene: Scene, name: str) -> str:
    return next(b.path for b in scene.bands if b.band.name == name)


def expected_reflectance(path: str, offset: float, quantification: float) -> np.ndarray:
    """(DN + offset) / quantification from the band file itself, NaN where DN is 0."""
    with rasterio.open(path) as ds:
        dn = ds.read(1)
    out = (dn.astype(np.float32) + np.float32(offset)) / np.float32(quantification)
    out[dn == 0] = np.nan
    return out


def at_native(scene: Scene, name: str) -> np.ndarray:
    """One band read by the Scene on a grid of the band's own resolution."""
    src = next(b for b in scene.bands if b.band.name == name)
    one = scene.select([name]).with_resolution(src.resolution)
    return full(one)[0]


def one_line_error(excinfo: pytest.ExceptionInfo[InputError], *fragments: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# -- identification ----------------------------------------------------------------------------
def test_identify_looks_at_content_not_names(products, tmp_path):
    safe = products()
    assert s2.identify(safe)
    assert s2.identify(safe / "MTD_MSIL1C.xml")
    assert s2.identify(products(zipped=True))
    renamed = tmp_path / "my-download"
    shutil.copytree(safe, renamed)
    assert s2.identify(renamed)  # no ".SAFE" in the name: the MTD inside decides
    other = tmp_path / "not-a-product"
    other.mkdir()
    (other / "readme.txt").write_text("hello")
    assert not s2.identify(other)
    plain_zip = tmp_path / "S2A_MSIL1C_looks_like_one.zip"
    with zipfile.ZipFile(plain_zip, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert not s2.identify(plain_zip)  # the name says Sentinel-2, the content does not
    assert s2.identify(renamed / "MTD_MSIL1C.xml")


# -- radiometry --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("level", "baseline", "zipped", "offset"),
    [
        ("L1C", "05.10", False, -1000.0),
        ("L1C", "04.00", True, -1000.0),
        ("L1C", "02.09", False, 0.0),
        ("L1C", "02.09", True, 0.0),
        ("L2A", "05.10", False, -1000.0),
        ("L2A", "04.00", True, -1000.0),
        ("L2A", "02.09", False, 0.0),
    ],
)
def test_known_dn_give_known_reflectance(products, level, baseline, zipped, offset):
    scene = s2.open(products(level=level, baseline=baseline, zipped=zipped))
    meta = scene.metadata
    assert (meta["level"], meta["baseline"], meta["tile"]) == (level, baseline, "31TCJ")
    assert meta["quantification"] == 10000.0
    assert set(meta["offsets"].values()) == {offset}
    assert meta["spacecraft"] == "Sentinel-2A" and meta["datetime"].startswith("20")
    assert meta["sun_zenith"] == pytest.approx(42.3) and meta["sun_azimuth"] == pytest.approx(158.7)
    expected_bands = 13 if level == "L1C" else 12  # L2A has no B10
    assert len(scene.bands) == expected_bands
    for name in ("B04", "B11", "B01"):  # one band per native resolution: 10, 20, 60 m
        want = expected_reflectance(band_file(scene, name), offset, 10000.0)
        got = at_native(scene, name)
        np.testing.assert_array_equal(got, want)  # bit for bit, NaN where DN is 0
    if zipped:
        assert all(b.path.startswith("/vsizip/") for b in scene.bands)  # read in place


def test_reflectance_is_plausible_and_dn_follow_the_baseline(products):
    """The same demo scene at 02.09 and 05.10: DN differ by 1000, reflectance is the same, except
    where the surface is darker than 0 (noise over dark water): 02.09 clips those DN to 1, which
    is why ESA added the offset."""
    old, new = s2.open(products(baseline="02.09")), s2.open(products(baseline="05.10"))
    with rasterio.open(band_file(old, "B04")) as a, rasterio.open(band_file(new, "B04")) as b:
        dn_old, dn_new = a.read(1).astype(int), b.read(1).astype(int)
    assert ((dn_old == 0) == (dn_new == 0)).all()
    kept = dn_old > 1
    assert (dn_new[kept] - dn_old[kept] == 1000).all()
    assert (dn_new[dn_old == 1] <= 1001).all()
    x_old, x_new = at_native(old, "B04"), at_native(new, "B04")
    np.testing.assert_allclose(x_old[kept], x_new[kept], rtol=0, atol=1e-7)
    x = full(new)
    assert np.nanmin(x) > -0.05 and np.nanmax(x) < 1.0


def test_offsets_before_04_are_used_when_the_metadata_gives_them(products, tmp_path):
    product = copy_of(products(baseline="02.09"), tmp_path)
    mtd = product / "MTD_MSIL1C.xml"
    offsets = "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-500</RADIO_ADD_OFFSET>' for i in range(13))
    text = mtd.read_text().replace(
        "<Reflectance_Conversion>",
        f"<Radiometric_Offset_List>{offsets}</Radiometric_Offset_List><Reflectance_Conversion>",
    )
    mtd.write_text(text)
    scene = s2.open(product)
    assert scene.metadata["offsets"]["B04"] == -500.0
    want = expected_reflectance(band_file(scene, "B04"), -500.0, 10000.0)
    np.testing.assert_array_equal(at_native(scene, "B04"), want)


@pytest.mark.parametrize(("level", "tag"), [("L1C", "RADIO_ADD_OFFSET"), ("L2A", "BOA_ADD_OFFSET")])
def test_baseline_04_without_offsets_is_refused(products, level, tag):
    product = products(level=level, baseline="04.00", with_offsets=False)
    with pytest.raises(InputError) as err:
        s2.open(product)
    one_line_error(err, f"MTD_MSI{level}.xml", tag, "04.00")


def test_parse_product_metadata_maps_band_ids_to_names():
    """bandId 8 is B8A, not B09: offsets follow Spectral_Information, not a guess."""
    xml = (
        '<n1:Level-2A_User_Product xmlns:n1="x"><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>'
        "<BOA_QUANTIFICATION_VALUE>10000</BOA_QUANTIFICATION_VALUE>"
        + "".join(f'<BOA_ADD_OFFSET band_id="{i}">{-1000 - i}</BOA_ADD_OFFSET>' for i in range(13))
        + '<Spectral_Information bandId="8" physicalBand="B8A"/>'
        '<Spectral_Information bandId="1" physicalBand="B2"/>'
        "</n1:Level-2A_User_Product>"
    )
    meta = s2.parse_product_metadata(xml.encode(), "MTD_MSIL2A.xml")
    assert meta.level == "L2A" and meta.baseline_tuple == (4, 0)
    assert list(meta.offsets) == list(s2.BAND_ORDER)
    assert meta.offsets["B8A"] == -1008 and meta.offsets["B09"] == -1009
    assert meta.radiometry("B02").offset == -1001 and meta.radiometry("B02").divisor == 10000


# -- grid, resolutions, no data --------------------------------------------------------------
def test_grid_and_resolutions(products):
    scene = s2.open(products())
    assert scene.crs.to_epsg() == 32631
    assert scene.grid.resolution == 10 and scene.shape == (SIZE, SIZE)
    assert scene.bounds == (300000.0, 4900020.0 - SIZE * 10, 300000.0 + SIZE * 10, 4900020.0)
    for res, n in ((20, SIZE // 2), (60, SIZE // 6)):
        coarse = scene.with_resolution(res)
        assert coarse.shape == (n, n)
        assert full(coarse).shape == (len(scene.bands), n, n)


def test_coarse_reads_use_the_jp2_resolution_levels(products):
    """At 60 m the 10 m band is averaged from its 20 m JPEG 2000 level, not fully decoded."""
    scene = s2.open(products())
    one = scene.select(["B04"])
    with rasterio.open(one.bands[0].path) as ds:
        assert ds.overviews(1) == [2], "band files carry JPEG 2000 resolution levels"
    with rasterio.open(one.bands[0].path, overview_level=0) as level:  # the 20 m level
        assert level.shape == (SIZE // 2, SIZE // 2)
        dn = level.read(1, out_shape=(SIZE // 6, SIZE // 6), resampling=Resampling.average)
    from_level = (dn.astype(np.float32) - 1000) / 10000
    coarse = full(one.with_resolution(60))[0]
    both = np.isfinite(coarse) & (dn > 0)
    assert both.mean() > 0.8
    np.testing.assert_array_equal(coarse[both], from_level[both])
    assert np.isnan(coarse[dn == 0]).all()
    # ...which is close to the exact 6x6 mean of the 10 m pixels (the wavelet is not a box)
    blocks = at_native(scene, "B04").reshape(SIZE // 6, 6, SIZE // 6, 6)
    inside = np.isfinite(blocks).all(axis=(1, 3)) & both
    assert np.median(np.abs(coarse - blocks.mean(axis=(1, 3)))[inside]) < 0.003


def test_no_data_wedge_is_nan_in_every_band_and_resolution(products):
    scene = s2.open(products())
    for res in (10, 20, 60):
        x = full(scene.with_resolution(res))
        assert np.isnan(x[:, -1, -1]).all(), "the lower-right corner is beyond the swath edge"
        assert np.isfinite(x[:, 0, 0]).all()
        invalid = np.isnan(x).all(axis=0)
        assert 0.03 < invalid.mean() < 0.3
    assert 0.7 < scene.valid_fraction() < 0.97


def test_msk_qualit_marks_its_band_only(products):
    """From 04.00 the product's quality masks apply: B12's defective column is NaN in B12 only."""
    scene = s2.open(products(baseline="05.10"))
    b12 = next(b for b in scene.bands if b.band.name == "B12")
    assert len(b12.masks) == 1 and b12.masks[0].index == s2.QUALIT_INVALID
    assert "MSK_QUALIT_B12.jp2" in b12.masks[0].path
    with rasterio.open(b12.masks[0].path) as ds:
        assert ds.count == 8 and ds.dtypes[0] == "uint8"
        defective = ds.read(5).astype(bool)
        nodata = ds.read(6).astype(bool)
    cols = np.flatnonzero(defective.any(axis=0))
    assert len(cols) == 1
    x20 = full(scene.select(["B11", "B12"]).with_resolution(20))
    valid_rows = ~nodata[:, cols[0]]
    assert np.isnan(x20[1][valid_rows, cols[0]]).all()
    assert np.isfinite(x20[0][valid_rows, cols[0]]).all()
    with rasterio.open(band_file(scene, "B12")) as ds:
        assert (ds.read(1)[valid_rows, cols[0]] > 0).all(), "the DN alone would not show it"


def test_old_baselines_use_dn_zero_only(products):
    scene = s2.open(products(baseline="02.09"))
    assert all(not b.masks for b in scene.bands)
    assert all(b.nodata == (0,) for b in scene.bands)


# -- L2A resolution folders --------------------------------------------------------------------
def test_l2a_reads_each_band_from_its_finest_file(products):
    scene = s2.open(products(level="L2A"))
    folder = {b.band.name: Path(b.path).parent.name for b in scene.bands}
    assert folder["B02"] == folder["B08"] == "R10m"
    assert folder["B01"] == folder["B05"] == folder["B12"] == "R20m"
    assert folder["B09"] == "R60m"
    assert "B10" not in folder and scene.metadata["absent_bands"] == []


def test_l2a_trimmed_to_coarser_folders_opens_at_their_resolution(products, tmp_path):
    """Like the shared T29UNU: R10m band files gone, so B02-B04 come from R20m, B08 is absent."""
    product = copy_of(products(level="L2A"), tmp_path)
    for f in product.glob("GRANULE/*/IMG_DATA/R10m/*_B*_10m.jp2"):
        f.unlink()
    scene = s2.open(product)
    assert scene.metadata["absent_bands"] == ["B08"]
    assert scene.grid.resolution == 20 and scene.shape == (SIZE // 2, SIZE // 2)
    assert "R20m" in band_file(scene, "B02")


def test_l2a_hole_in_a_resolution_folder_is_an_error(products, tmp_path):
    product = copy_of(products(level="L2A"), tmp_path)
    (victim,) = product.glob("GRANULE/*/IMG_DATA/R10m/*_B03_10m.jp2")
    victim.unlink()
    with pytest.raises(InputError) as err:
        s2.open(product)
    one_line_error(err, str(victim), "missing")


# -- old OPER naming ---------------------------------------------------------------------------
def test_old_oper_naming(products):
    product = products(old_naming=True, baseline="02.01")
    assert product.name.startswith("S2A_OPER_PRD_MSIL1C_")
    (mtd,) = product.glob("S2A_OPER_MTD_SAFL1C_*.xml")
    assert s2.identify(product) and s2.identify(mtd)
    scene = s2.open(product)
    assert scene.metadata["baseline"] == "02.01" and scene.metadata["tile"] == "31TCJ"
    assert all("S2A_OPER_MSI_L1C_TL_" in Path(b.path).name for b in scene.bands)
    want = expected_reflectance(band_file(scene, "B8A"), 0.0, 10000.0)
    np.testing.assert_array_equal(at_native(scene, "B8A"), want)
    assert scene.metadata["sun_zenith"] == pytest.approx(42.3)


def test_multi_tile_oper_product_asks_for_one_granule(products, tmp_path):
    product = copy_of(products(old_naming=True, baseline="02.01"), tmp_path)
    (mtd,) = product.glob("S2A_OPER_MTD_SAFL1C_*.xml")
    text = mtd.read_text()
    start, end = text.index("<Granules "), text.index("</Granules>") + len("</Granules>")
    second = text[start:end].replace("T31TCJ", "T31TDJ")  # a neighbouring tile, listed too
    mtd.write_text(text[:end] + second + text[end:])
    with pytest.raises(InputError) as err:
        s2.open(product)
    one_line_error(err, mtd.name, "2 tiles", "31TCJ", "GRANULE/")
    (granule,) = (product / "GRANULE").iterdir()
    assert s2.identify(granule)
    scene = s2.open(granule)
    assert scene.metadata["tile"] == "31TCJ" and len(scene.bands) == 13


# -- bad input ---------------------------------------------------------------------------------
def test_missing_band_file(products, tmp_path):
    product = copy_of(products(), tmp_path)
    (victim,) = product.glob("GRANULE/*/IMG_DATA/*_B05.jp2")
    victim.unlink()
    with pytest.raises(InputError) as err:
        s2.open(product)
    one_line_error(err, str(victim), "B05", "missing")


def test_one_byte_placeholder_is_refused_before_any_decoding(products, tmp_path):
    product = copy_of(products(), tmp_path)
    (victim,) = product.glob("GRANULE/*/IMG_DATA/*_B03.jp2")
    victim.write_bytes(b"\x00")
    with pytest.raises(InputError) as err:
        s2.open(product)
    one_line_error(err, str(victim), "1 byte")


def codestream_to_end_of_file(data: bytes) -> bytes:
    """Rewrite the jp2c box length as 0 ("runs to the end of the file"), as ESA's files have."""
    offset = 0
    while data[offset + 4 : offset + 8] != b"jp2c":
        offset += int.from_bytes(data[offset : offset + 4], "big")
    return data[:offset] + b"\x00\x00\x00\x00" + data[offset + 4 :]


@pytest.mark.parametrize(("band", "esa_layout"), [("B8A", False), ("B02", False), ("B02", True)])
def test_truncated_jp2_is_refused(products, tmp_path, band, esa_layout):
    """GDAL would decode a cut codestream without raising; the reader checks the JP2 boxes and,
    when the codestream box runs to the end of the file, its end-of-codestream marker."""
    product = copy_of(products(), tmp_path)
    (victim,) = product.glob(f"GRANULE/*/IMG_DATA/*_{band}.jp2")
    data = victim.read_bytes()
    if esa_layout:
        data = codestream_to_end_of_file(data)
        victim.write_bytes(data)
        s2.open(product)  # complete: still fine
    victim.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError) as err:
        s2.open(product)
    one_line_error(err, str(victim), "truncated")


def test_truncated_jp2_inside_a_zip_is_refused(products, tmp_path):
    folder = copy_of(products(), tmp_path / "unzipped")
    (victim,) = folder.glob("GRANULE/*/QI_DATA/MSK_QUALIT_B04.jp2")
    victim.write_bytes(victim.read_bytes()[:-100])
    archive = tmp_path / f"{folder.stem}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            zf.write(f, f"{folder.name}/{f.relative_to(folder).as_posix()}")
    with pytest.raises(InputError) as err:
        s2.open(archive)
    one_line_error(err, "/vsizip/", "MSK_QUALIT_B04.jp2", "truncated")


def test_metadata_that_is_not_xml(products, tmp_path):
    product = copy_of(products(), tmp_path)
    (product / "MTD_MSIL1C.xml").write_text("<n1:Level-1C_User_Product><General_Info>")
    with pytest.raises(InputError) as err:
        s2.open(product)
    one_line_error(err, "MTD_MSIL1C.xml", "not valid XML")


def test_zip_that_is_not_a_safe(tmp_path):
    archive = tmp_path / "S2B_MSIL2A_20230101T000000_N0509_R001_T31TCJ_20230101T000000.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("holiday.jpg", b"\xff\xd8\xff")
    with pytest.raises(InputError) as err:
        s2.open(archive)
    one_line_error(err, archive.name, "no Sentinel-2 SAFE")
    broken = tmp_path / "cut-download.zip"
    broken.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InputError) as err:
        s2.open(broken)
    one_line_error(err, broken.name, "not a readable zip")


def test_band_file_off_the_tile_grid(products, tmp_path):
    product = copy_of(products(), tmp_path)
    mtd_tl = next(product.glob("GRANULE/*/MTD_TL.xml"))
    mtd_tl.write_text(mtd_tl.read_text().replace("<ULX>300000</ULX>", "<ULX>309780</ULX>"))
    with pytest.raises(InputError) as err:
        s2.open(product)
    one_line_error(err, "_B01.jp2", "covers", "MTD_TL.xml")


# -- the demo product --------------------------------------------------------------------------
def test_demo_is_fast(tmp_path):
    start = time.process_time()
    write_sentinel2(tmp_path, size_10m=240, seed=3)
    assert time.process_time() - start < 2.0


def test_demo_has_clouds_shadows_water_and_no_data(products):
    scene = s2.open(products())
    x = full(scene)
    band = {n: x[i] for i, n in enumerate(scene.band_names)}
    cirrus = band["B10"] > 0.03
    assert 0.02 < np.mean(cirrus) < 0.5, "clouds are visible in B10"
    assert (band["B02"][cirrus] > 0.25).mean() > 0.9, "...and bright in the visible"
    assert (band["B08"][cirrus] > 0.35).mean() > 0.9, "...and in the NIR"
    clear = np.isfinite(band["B10"]) & (band["B10"] < 0.01)
    water = clear & (band["B08"] < 0.04) & (band["B04"] > band["B08"])
    assert water.mean() > 0.005, "a lake: darker in NIR than in red"
    shadow = clear & ~water & (band["B08"] < 0.15)
    assert shadow.mean() > 0.005, "cloud shadows: dark land"
    quiet = s2.open(write_sentinel2(products().parent / "quiet", size_10m=SIZE, clouds=False))
    assert np.nanmax(full(quiet.select(["B10"]))) < 0.01


def test_demo_sizes_and_impossible_requests(tmp_path):
    scene = s2.open(write_sentinel2(tmp_path, size_10m=100))  # rounded to whole 60 m pixels
    assert scene.shape == (102, 102) and scene.with_resolution(60).shape == (17, 17)
    with pytest.raises(ValueError):
        write_sentinel2(tmp_path, size_10m=5)
    with pytest.raises(ValueError):
        write_sentinel2(tmp_path, level="L2A", old_naming=True)
    with pytest.raises(ValueError):
        write_sentinel2(tmp_path, level="L1B")


# -- real products (../shared/data) ------------------------------------------------------------
def real(shared_data: Path, name: str) -> Path:
    return require(shared_data / "products" / "sentinel2" / name)


T29UNU = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
T18LTM = "S2A_MSIL1C_20220125T151701_N0400_R125_T18LTM_20220125T190036.SAFE"
T48LWP = "S2A_MSIL1C_20210713T032051_N0301_R032_T48LWP_20210713T054224.zip"
T53JQJ = "S2A_MSIL1C_20201031T004711_N0209_R102_T53JQJ_20201031T022859.zip"
T56JMM = "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip"


@pytest.mark.realdata
def test_real_t29unu_l2a_at_60m(shared_data):
    """Only R60m spectral bands are shared. ESA's R60m set has 11 bands: B08 exists only in
    R10m (absent here) and L2A has no B10. The MTD_TL says 40.4 % of the tile is no data."""
    scene = s2.open(real(shared_data, T29UNU))
    meta = scene.metadata
    assert (meta["level"], meta["baseline"], meta["tile"]) == ("L2A", "04.00", "29UNU")
    assert scene.band_names == ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09",
                                "B11", "B12"]  # fmt: skip
    assert meta["absent_bands"] == ["B08"]
    assert set(meta["offsets"].values()) == {-1000.0}
    assert meta["sun_zenith"] == pytest.approx(57.8206, abs=1e-3)
    assert meta["sun_azimuth"] == pytest.approx(172.8402, abs=1e-3)
    assert scene.grid.resolution == 60 and scene.shape == (1830, 1830)
    assert scene.crs.to_epsg() == 32629
    assert all(len(b.masks) == 1 and "MSK_QUALIT" in b.masks[0].path for b in scene.bands)
    assert scene.valid_fraction() == pytest.approx(1 - 0.404194, abs=0.02)
    x = scene.read(Window(0, 0, 700, 700))  # the valid, cloudy north-west of the tile
    assert np.isfinite(x).mean() > 0.9
    for i, name in enumerate(scene.band_names):
        lo, mid, hi = np.nanpercentile(x[i], [1, 50, 99])
        assert -0.1 <= lo and 0 < mid < 1 and hi < 2.5, (name, lo, mid, hi)  # L2A over cloud > 1


@pytest.mark.realdata
def test_real_t18ltm_placeholders_are_refused(shared_data):
    """Real metadata, real B01/B09/B10, but B02 and most others are 1-byte placeholders."""
    product = real(shared_data, T18LTM)
    assert s2.identify(product)
    with pytest.raises(InputError) as err:
        s2.open(product)
    one_line_error(err, "T18LTM_20220125T151701_B02.jp2", "1 byte")


@pytest.mark.realdata
@pytest.mark.parametrize(("name", "baseline"), [(T48LWP, "03.01"), (T53JQJ, "02.09")])
def test_real_zips_open_in_place(shared_data, name, baseline):
    """20x20-pixel band files (T48LWP's are GeoTIFFs named .jp2) with the real metadata."""
    scene = s2.open(real(shared_data, name))
    assert scene.metadata["baseline"] == baseline and scene.metadata["level"] == "L1C"
    assert set(scene.metadata["offsets"].values()) == {0.0}  # no offsets before 04.00
    assert len(scene.bands) == 13 and scene.shape == (20, 20) and scene.grid.resolution == 5490
    assert all(b.path.startswith("/vsizip/") for b in scene.bands)
    x = full(scene)
    assert 0.4 < np.isfinite(x).all(axis=0).mean() < 0.9
    assert np.nanmin(x) > 0 and np.nanmax(x) < 1.5


@pytest.mark.realdata
def test_real_t56jmm_null_granule_folder_is_ignored(shared_data):
    """The zip holds an empty ``GRANULE/L1C_T56JMM_A015757_null/`` folder beside the real granule.
    The metadata lists only the real granule, which has pixels (439x439, a swath edge in the
    east), so the null folder is ignored and the scene is read, not declared empty.

    The band files were recompressed lossily when the product was shrunk: B02/B03/B04 keep DN 0
    beyond the swath edge, but B06/B07/B8A/B11 carry DN 5 there, so only the clean bands show
    the edge; the DN are what the product says and are not second-guessed.
    """
    product = real(shared_data, T56JMM)
    with zipfile.ZipFile(product) as zf:
        assert any(n.endswith("_null/") for n in zf.namelist())
    scene = s2.open(product)
    assert scene.metadata["baseline"] == "02.06"
    assert scene.metadata["granule"] == "L1C_T56JMM_A015757_20180629T000241"
    assert scene.shape == (439, 439)
    visible = scene.select(["B02", "B03", "B04"])
    assert 0.65 < visible.valid_fraction() < 0.8


@pytest.mark.realdata
def test_real_products_identify(shared_data):
    for name in (T29UNU, T18LTM, T48LWP, T53JQJ, T56JMM):
        assert s2.identify(real(shared_data, name)), name
    assert not s2.identify(require(shared_data / "products" / "calibration-oracles"))


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("stem", "offset"),
    [
        ("S2B_MSIL1C_20200406T101559_N0209_R065_T32UPC_20200406T130159", 0.0),
        ("S2B_MSIL1C_20220615T101559_N0400_R065_T32UPC_20220615T122549", -1000.0),
    ],
)
def test_calibration_oracles(shared_data, stem, offset):
    """Our formula on the oracle's DN stack against the oracle's TOA stack.

    What the oracle is: 13 bands in ESA bandId order (B01..B08, B8A, B09, B10, B11, B12: band 11
    holds the ~0.001 cirrus values), ``(DN + RADIO_ADD_OFFSET) / QUANTIFICATION_VALUE`` with the
    offset and quantification of its ``_MTD.xml``, computed in float32; no sun-distance (U) or
    sun-angle correction, and DN 0 is written as reflectance 0 (our reader gives NaN there).
    Equal to the last bit.
    """
    folder = shared_data / "products" / "calibration-oracles"
    mtd = require(folder / f"{stem}_MTD.xml")
    meta = s2.parse_product_metadata(mtd.read_bytes(), str(mtd))
    assert meta.level == "L1C" and meta.quantification == 10000.0
    assert set(meta.offsets.values()) == ({offset} if offset else set())
    with rasterio.open(require(folder / f"{stem}.tif")) as ds:
        dn = ds.read()
    with rasterio.open(require(folder / f"{stem}_toa.tif")) as ds:
        oracle = ds.read()
    assert dn.shape[0] == len(s2.BAND_ORDER) == oracle.shape[0]
    for i, band in enumerate(s2.BAND_ORDER):
        ours = meta.radiometry(band).apply(dn[i])
        np.testing.assert_array_equal(ours, oracle[i], err_msg=band)
