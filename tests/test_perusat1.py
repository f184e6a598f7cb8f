"""PerúSat-1 DIMAP V2: sensor YAML, demo delivery, reader, and the real delivery in ../shared."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import require
from rasterio.enums import Resampling
from rasterio.windows import Window

from cloudmask_cli.demo import perusat1 as demo
from cloudmask_cli.errors import InputError
from cloudmask_cli.products import perusat1
from cloudmask_cli.sensors import get_sensor, parse_sensor

REAL = "products/perusat1/DS_PER1_201703071506576_PS1_W077S12_002239"
REAL_MS = "VOL_PER1_ORT_001_000041/IMG_PER1_ORT_MS_000041/DIM_PER1_20170307150657_ORT_MS_000041.XML"
REAL_P = "VOL_PER1_ORT_001_000041/IMG_PER1_ORT_P_000041/DIM_PER1_20170307150657_ORT_P_000041.XML"
MS_NAMES = ["blue", "green", "red", "nir"]


# -- helpers ----------------------------------------------------------------------------------
def expected_reflectance(dn: np.ndarray, gain: float, bias: float, esun: float, when, elev):
    """The textbook formula, written out independently of the reader."""
    doy = when.timetuple().tm_yday
    d = 1 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4)))
    radiance = dn / gain + bias
    rho = math.pi * radiance * d**2 / (esun * math.sin(math.radians(elev)))
    return np.where(dn == 0, np.nan, rho)


def demo_expected(dn: np.ndarray, band_id: str, bias: float | None = None) -> np.ndarray:
    b = demo.BIASES[band_id] if bias is None else bias
    return expected_reflectance(
        dn.astype(np.float64),
        demo.GAINS[band_id],
        b,
        demo.SOLAR_IRRADIANCE[band_id],
        demo.ACQUIRED,
        demo.SUN_ELEVATION,
    )


def product_dir(root: Path, kind: str = "MS") -> Path:
    return next(root.glob(f"VOL_*/IMG_PER1_ORT_{kind}_*"))


def dim_of(root: Path, kind: str = "MS") -> Path:
    return next(product_dir(root, kind).glob("DIM_*.XML"))


def tif_of(root: Path, kind: str = "MS") -> Path:
    return next(product_dir(root, kind).glob("IMG_*.TIF"))


def full(scene) -> np.ndarray:
    return scene.read(Window(0, 0, scene.shape[1], scene.shape[0]))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def delivery(tmp_path_factory) -> Path:
    """A generated MS + P delivery, shared read-only by the tests of this module."""
    return demo.write_perusat1(tmp_path_factory.mktemp("per1"), size=128, seed=3, pan=True)


@pytest.fixture
def fresh(tmp_path) -> Path:
    """A generated MS delivery a test may break."""
    return demo.write_perusat1(tmp_path, size=64, seed=1)


# -- sensor YAML ------------------------------------------------------------------------------
def test_bundled_sensor_definition():
    s = get_sensor("perusat1_naomi")
    assert s.band_names == [*MS_NAMES, "pan"]
    assert [b.source for b in s.bands] == ["B0", "B1", "B2", "B3", "PAN"]
    assert [b.wavelength for b in s.bands] == [
        (450, 520),
        (530, 590),
        (630, 700),
        (752, 885),
        (450, 750),
    ]
    assert [b.resolution for b in s.bands] == [2.8] * 4 + [0.7]
    assert all(b.scale == "metadata" and b.offset == "metadata" for b in s.bands)
    assert s.band("pan").panchromatic and not s.band("nir").panchromatic
    assert s.nodata == 0


def test_earth_sun_distance_formula():
    from datetime import date

    assert perusat1.earth_sun_distance(date(2021, 1, 4)) == pytest.approx(0.98328, abs=1e-5)
    assert perusat1.earth_sun_distance(date(2021, 7, 5)) == pytest.approx(1.0167, abs=1e-4)
    # 7 March (DOY 66): ephemerides say 0.9923 AU; the formula is good to ~5e-4 AU
    assert perusat1.earth_sun_distance(date(2017, 3, 7)) == pytest.approx(0.9923, abs=5e-4)


# -- detection --------------------------------------------------------------------------------
def test_identify_by_content(delivery, tmp_path):
    assert perusat1.identify(delivery)
    assert perusat1.identify(delivery / "VOL_PER1_ORT_001_000001")
    assert perusat1.identify(product_dir(delivery))
    assert perusat1.identify(dim_of(delivery))
    assert not perusat1.identify(tif_of(delivery))
    assert not perusat1.identify(tmp_path)
    # a DIMAP of another mission, even under a PerúSat-like name, is not ours
    other = tmp_path / "DIM_PER1_fake.XML"
    text = dim_of(delivery).read_text()
    other.write_text(text.replace("<MISSION>PER<", "<MISSION>PHR<").replace("PER1_ORTHO", "PHR"))
    assert not perusat1.identify(other)
    (tmp_path / "DIM_x.XML").write_text("<root><MISSION>PER</MISSION></root>")
    assert not perusat1.identify(tmp_path / "DIM_x.XML")


def test_product_detection_picks_perusat1(delivery):
    from cloudmask_cli.products import detect

    assert detect(delivery) is perusat1
    assert detect(dim_of(delivery, "P")) is perusat1


# -- generated products: radiometry -----------------------------------------------------------
def test_round_trip_known_dn_to_reflectance(fresh):
    tif = tif_of(fresh)
    known = np.array([[0, 1], [1000, 4095]], dtype=np.uint16)
    with rasterio.open(tif, "r+") as ds:
        for i in range(1, 5):
            ds.write(known, i, window=Window(40, 30, 2, 2))
    with rasterio.open(tif) as ds:
        dn = ds.read()
    scene = perusat1.open(fresh)
    assert scene.band_names == MS_NAMES
    assert scene.shape == (64, 64) and scene.grid.resolution == 2.8
    values = full(scene)
    for i, band_id in enumerate(demo.MS_IDS):
        np.testing.assert_allclose(values[i], demo_expected(dn[i], band_id), rtol=2e-6)
        got = values[i, 30:32, 40:42]
        want = demo_expected(known, band_id)
        assert np.isnan(got[0, 0]) and np.isnan(want[0, 0])  # DN 0 is no data
        np.testing.assert_allclose(got, want, rtol=2e-6)
    # blue, DN 1000: pi * d^2 * (1000 / 6.02) / (1982.7 * sin 63.4 deg), d on 15 January
    d = 1 - 0.01672 * math.cos(math.radians(0.9856 * 11))
    rho = math.pi * d**2 * (1000 / 6.02) / (1982.7 * math.sin(math.radians(63.4)))
    assert values[0, 31, 40] == pytest.approx(rho, rel=2e-6)


def test_bias_is_added_to_radiance(fresh):
    edit(dim_of(fresh), "<BIAS>0.0</BIAS>", "<BIAS>2.5</BIAS>")  # the first is B0
    with rasterio.open(tif_of(fresh)) as ds:
        dn = ds.read(1)
    blue = full(perusat1.open(fresh))[0]
    np.testing.assert_allclose(blue, demo_expected(dn, "B0", bias=2.5), rtol=2e-6)
    assert perusat1.open(fresh).metadata["biases"]["blue"] == 2.5


def test_radiometry_and_metadata(delivery):
    scene = perusat1.open(delivery)
    md = scene.metadata
    assert md["level"] == "ORTHO" and md["processing"] == "MS"
    assert md["spacecraft"] == "PER1" and md["instrument"] == "NAOMI"
    assert md["datetime"] == "2019-01-15T15:12:30.250000Z"
    assert md["sun_elevation"] == demo.SUN_ELEVATION and md["sun_azimuth"] == demo.SUN_AZIMUTH
    assert md["gains"] == dict(zip(MS_NAMES, [6.02, 5.77, 7.88, 10.3], strict=True))
    assert md["solar_irradiance"]["nir"] == 1094.7
    assert md["earth_sun_distance"] == pytest.approx(perusat1.earth_sun_distance(demo.ACQUIRED))
    rad = scene.bands[0].radiometry
    assert "DN / 6.02" in rad.formula and "sin(63.4 deg)" in rad.formula
    assert scene.bands[0].nodata == (0.0,)
    info = scene.info()
    assert info["grid"]["crs"] == "EPSG:32718" and info["sensor"] == "perusat1_naomi"
    assert info["bands"][3]["wavelength"] == [752.0, 885.0]


def test_generated_scene_looks_real(delivery):
    scene = perusat1.open(delivery)
    values = full(scene)
    valid = np.isfinite(values).all(axis=0)
    assert 0.6 < valid.mean() < 0.95  # the slanted no-data wedges
    assert np.isnan(values[:, 0, 0]).all()
    v = values[:, valid]
    assert 0 < v.min() and v.max() < 1.3
    assert (v.min(axis=0) > 0.4).mean() > 0.01  # bright, flat clouds
    assert (v[3] < 0.03).mean() > 0.05  # dark sea in the NIR
    assert scene.valid_fraction() == pytest.approx(valid.mean(), abs=0.05)


def test_generator_is_deterministic_and_fast(tmp_path):
    start = time.perf_counter()
    a = demo.write_perusat1(tmp_path / "a", seed=7)
    assert time.perf_counter() - start < 5
    b = demo.write_perusat1(tmp_path / "b", seed=7)
    with rasterio.open(tif_of(a)) as x, rasterio.open(tif_of(b)) as y:
        assert x.count == 4 and x.dtypes[0] == "uint16" and x.overviews(1)
        assert np.array_equal(x.read(), y.read())
        assert x.read().max() <= demo.SATURATED
    clear = demo.write_perusat1(tmp_path / "c", seed=7, clouds=False)
    assert np.nanmax(full(perusat1.open(clear))) < np.nanmax(full(perusat1.open(a)))


# -- generated products: layout variants ------------------------------------------------------
def test_band_order_from_tiff_description(tmp_path):
    plain = perusat1.open(demo.write_perusat1(tmp_path / "a", size=64))
    rgb = perusat1.open(demo.write_perusat1(tmp_path / "b", size=64, rgb_order=True))
    assert [b.index for b in rgb.bands] == [3, 2, 1, 4]
    assert "B2 B1 B0 B3 (TIFF ImageDescription)" in rgb.metadata["band_order"].values()
    np.testing.assert_array_equal(full(plain), full(rgb))


def test_tiled_image_is_mosaicked(tmp_path):
    single = perusat1.open(demo.write_perusat1(tmp_path / "a", size=96))
    tiled = perusat1.open(demo.write_perusat1(tmp_path / "b", size=96, tiles=3))
    assert tiled.bands[0].path.endswith(".XML")  # GDAL's DIMAP driver joins the tiles
    np.testing.assert_array_equal(full(single), full(tiled))


def test_pan_product(delivery):
    pan = perusat1.open(dim_of(delivery, "P"))
    assert pan.band_names == ["pan"] and pan.metadata["processing"] == "P"
    assert pan.grid.resolution == 0.7 and pan.shape == (512, 512)
    assert pan.bands[0].band.wavelength == (450.0, 750.0)
    with rasterio.open(tif_of(delivery, "P")) as ds:
        dn = ds.read(1)
    np.testing.assert_allclose(full(pan)[0], demo_expected(dn, "PAN"), rtol=2e-6)
    # the same ground at 2.8 m: four times fewer pixels each way
    assert pan.with_resolution(2.8).shape == (128, 128)


def test_sensor_yaml_selects_products(delivery):
    bundled = get_sensor("perusat1_naomi")
    assert perusat1.open(delivery, sensor=bundled).band_names == MS_NAMES
    pan_only = parse_sensor(
        {"name": "per1-pan", "bands": [{"name": "p", "type": "reflectance",
         "wavelength": [450, 750], "source": "P", "scale": "metadata", "offset": "metadata"}]},
        "pan.yaml",
    )  # fmt: skip
    scene = perusat1.open(delivery, sensor=pan_only)
    assert scene.band_names == ["p"] and scene.grid.resolution == 0.7
    both = parse_sensor(
        {"name": "per1-all", "bands": [dict(vars(b), wavelength=list(b.wavelength))
         for b in bundled.bands]},
        "all.yaml",
    )  # fmt: skip
    scene = perusat1.open(delivery, sensor=both)
    assert scene.band_names == [*MS_NAMES, "pan"]
    assert scene.grid.resolution == 2.8  # the finest multispectral band, not the pan band
    values = full(scene)
    assert values.shape == (5, 128, 128)
    ms_mean = values[:3].mean(axis=0)
    valid = np.isfinite(ms_mean) & np.isfinite(values[4])
    assert np.corrcoef(ms_mean[valid], values[4][valid])[0, 1] > 0.95


def test_pan_sharpened_product(tmp_path):
    scene = perusat1.open(demo.write_perusat1(tmp_path, size=64, spectral="PMS"))
    assert scene.metadata["processing"] == "PMS" and scene.band_names == MS_NAMES
    assert scene.grid.resolution == 0.7 and scene.shape == (64, 64)


def test_open_product_entry_point(delivery):
    from cloudmask_cli.products import open_product

    scene = open_product(delivery, resolution=5.6)
    assert scene.shape == (64, 64) and scene.band_names == MS_NAMES
    values = full(scene)
    assert np.isfinite(values).any() and np.nanmax(values) < 1.3


# -- bad input --------------------------------------------------------------------------------
def test_missing_gain_names_the_xml_and_band(fresh):
    dim = dim_of(fresh)
    edit(dim, "<GAIN>7.88</GAIN>", "")  # B2
    with pytest.raises(InputError) as err:
        perusat1.open(fresh)
    assert err.value.path == str(dim)
    assert "band B2" in err.value.problem and "GAIN" in err.value.problem


def test_empty_image_file(fresh):
    tif = tif_of(fresh)
    tif.write_bytes(b"")
    with pytest.raises(InputError) as err:
        perusat1.open(fresh)
    assert err.value.path == str(tif) and err.value.problem == "empty file (0 bytes)"


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("<SUN_ELEVATION>63.4</SUN_ELEVATION>", "", "SUN_ELEVATION"),
        ("<VALUE>1094.7</VALUE>", "", "band B3: no VALUE in <Band_Solar_Irradiance>"),
        ("<BIAS>0.0</BIAS>", "<BIAS>n/a</BIAS>", "not a number"),
        ("<NBANDS>4</NBANDS>", "<NBANDS>3</NBANDS>", "NBANDS is 3"),
        ("<START>2019", "<START>sometime", "acquisition time"),
        ("EPSG::32718", "EPSG::99999", "unknown CRS"),
        ("</Dimap_Document>", "", "not a readable XML file"),
    ],
)
def test_bad_metadata_names_the_xml(fresh, old, new, needle):
    dim = dim_of(fresh)
    edit(dim, old, new)
    with pytest.raises(InputError) as err:
        perusat1.open(fresh)
    assert err.value.path == str(dim) and needle in err.value.problem


def test_image_contradicting_the_xml(fresh):
    tif = tif_of(fresh)
    edit(dim_of(fresh), "<NCOLS>64</NCOLS>", "<NCOLS>65</NCOLS>")
    with pytest.raises(InputError, match="is 64x64 pixels but"):
        perusat1.open(fresh)
    edit(dim_of(fresh), "<NCOLS>65</NCOLS>", "<NCOLS>64</NCOLS>")
    with rasterio.open(tif, "r+") as ds:
        ds.transform = Affine(2.8, 0, demo.ORIGIN[0] + 50, 0, -2.8, demo.ORIGIN[1])
    with pytest.raises(InputError, match="contradicts") as err:
        perusat1.open(fresh)
    assert err.value.path == str(tif)


def test_missing_image_and_unknown_folders(fresh, tmp_path):
    tif = tif_of(fresh)
    tif.unlink()
    with pytest.raises(InputError, match="image file missing") as err:
        perusat1.open(fresh)
    assert err.value.path == str(tif)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no PerúSat-1 DIMAP"):
        perusat1.open(empty)


def test_ambiguous_or_absent_bands(fresh):
    twin = product_dir(fresh).with_name("IMG_PER1_ORT_MS_000002")
    shutil.copytree(product_dir(fresh), twin)
    with pytest.raises(InputError, match="holds 2 MS products"):
        perusat1.open(fresh)
    shutil.rmtree(twin)
    swir = parse_sensor(
        {"name": "x", "bands": [{"name": "swir", "type": "reflectance",
         "wavelength": [1500, 1700], "source": "B5"}]},
        "x.yaml",
    )  # fmt: skip
    with pytest.raises(InputError, match="'swir' \\(BAND_ID B5\\) is in none") as err:
        perusat1.open(fresh, sensor=swir)
    assert err.value.path == str(fresh)


# -- the real delivery (../shared) ------------------------------------------------------------
@pytest.fixture(scope="module")
def real(shared_data) -> Path:
    return require(shared_data / REAL)


@pytest.mark.realdata
def test_real_dimap_coefficients(real):
    ms = perusat1.parse_dimap(real / REAL_MS)
    assert ms.spectral_processing == "MS" and ms.level == "ORTHO"
    assert ms.spacecraft == "PER1" and ms.instrument == "NAOMI"
    assert (ms.width, ms.height) == (10498, 11192) and ms.xdim == 2.8
    assert ms.crs.to_epsg() == 32718
    assert (ms.ulx, ms.uly) == (297706.48, 8634977.57)
    assert ms.band_ids == ("B0", "B1", "B2", "B3")
    assert [b.gain for b in ms.bands] == [5.975202615, 5.741597026, 7.85915805, 10.27482194]
    assert [b.bias for b in ms.bands] == [0, 0, 0, 0]
    assert [b.solar_irradiance for b in ms.bands] == [
        1982.671954,
        1826.087443,
        1540.494123,
        1094.747446,
    ]
    assert (ms.sun_elevation, ms.sun_azimuth) == (56.9, 81.0)
    assert ms.acquired.isoformat() == "2017-03-07T15:06:57.951630+00:00"
    assert ms.nodata == 0
    assert ms.data_files[0].name == "IMG_PER1_20170307150657_ORT_MS_000041.TIF"
    pan = perusat1.parse_dimap(real / REAL_P)
    assert pan.spectral_processing == "P" and pan.band_ids == ("PAN",)
    assert (pan.width, pan.height, pan.xdim) == (41992, 44768, 0.7)
    assert (pan.bands[0].gain, pan.bands[0].solar_irradiance) == (10.40868299, 1706.514896)


@pytest.mark.realdata
def test_real_spectral_ranges_match_the_yaml(real):
    sensor = get_sensor("perusat1_naomi")
    for dim in (REAL_MS, REAL_P):
        for band in perusat1.parse_dimap(real / dim).bands:
            yaml_band = next(b for b in sensor.bands if b.source == band.band_id)
            assert band.wavelength == yaml_band.wavelength


@pytest.mark.realdata
def test_real_delivery_identified_but_images_are_empty(real):
    assert perusat1.identify(real) and perusat1.identify(real / REAL_MS)
    with pytest.raises(InputError) as err:
        perusat1.open(real)
    assert err.value.path.endswith("IMG_PER1_20170307150657_ORT_MS_000041.TIF")
    assert err.value.problem == "empty file (0 bytes)"
    with pytest.raises(InputError) as err:
        perusat1.open(real / REAL_P)
    assert err.value.path.endswith("IMG_PER1_20170307150657_ORT_P_000041.TIF")


@pytest.mark.realdata
def test_real_size_image_read_coarsely_through_overviews(real, tmp_path):
    """The real DIM over a raster of its size and CRS, written sparse: a coarse read must be
    quick and come from the overviews. To tell which level GDAL decoded, the marked square
    holds one DN in the overview and another at full resolution (overviews left stale)."""
    dim = tmp_path / REAL.split("/")[-1] / REAL_MS
    dim.parent.mkdir(parents=True)
    shutil.copy(real / REAL_MS, dim)  # into tmp_path only, never into the repository
    meta = perusat1.parse_dimap(dim)
    profile = {
        "driver": "GTiff",
        "width": meta.width,
        "height": meta.height,
        "count": 4,
        "dtype": "uint16",
        "crs": "EPSG:32718",
        "transform": Affine(2.8, 0, meta.ulx, 0, -2.8, meta.uly),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "sparse_ok": True,
    }
    square = Window(4096, 4096, 2048, 2048)
    coarse_dn = np.array([800, 900, 1000, 1100], dtype=np.uint16)
    with rasterio.open(meta.data_files[0], "w", **profile) as ds:
        ds.write(np.broadcast_to(coarse_dn[:, None, None], (4, 2048, 2048)), window=square)
    # GDAL builds overviews of a mostly empty file ~10x faster with threads on
    with rasterio.Env(GDAL_NUM_THREADS="2"), rasterio.open(meta.data_files[0], "r+") as ds:
        ds.build_overviews([64], Resampling.nearest)
        ds.write(np.broadcast_to(coarse_dn[:, None, None] + 500, (4, 2048, 2048)), window=square)

    scene = perusat1.open(dim.parents[2])
    assert scene.shape == (11192, 10498) and scene.grid.resolution == 2.8
    assert scene.crs.to_epsg() == 32718
    start = time.perf_counter()
    coarse = scene.with_resolution(2.8 * 64)
    values = coarse.read(Window(0, 0, 160, 170))
    assert time.perf_counter() - start < 5
    sharp = scene.read(Window(5000, 5000, 4, 4))
    for i, band in enumerate(meta.bands):
        want = [
            expected_reflectance(
                np.array(dn, dtype=np.float64),
                band.gain,
                band.bias,
                band.solar_irradiance,
                meta.acquired,
                meta.sun_elevation,
            )
            for dn in (coarse_dn[i], coarse_dn[i] + 500)
        ]
        assert values[i, 80, 80] == pytest.approx(want[0], rel=1e-5)  # from the overview
        assert sharp[i, 0, 0] == pytest.approx(want[1], rel=1e-5)  # full resolution
        assert np.isnan(values[i, 10, 10])  # unwritten blocks: DN 0, no data
