"""GeoTIFF/VRT stack + sensor YAML (``products/stack.py``) and sensor YAML validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from cloudmask_cli.errors import InputError
from cloudmask_cli.products import open_product, stack
from cloudmask_cli.sensors import bundled_sensors, get_sensor, load_sensor_file

ORIGIN = Affine(10, 0, 500_000, 0, -10, 4_000_000)

THREE_BANDS = """\
name: my-sensor
nodata: 0
bands:
  - {name: blue, type: reflectance, wavelength: [452, 512], scale: 0.0001, offset: -0.1}
  - {name: red, type: reflectance, wavelength: [636, 673], scale: 0.0001}
  - {name: nir, type: reflectance, wavelength: [851, 879]}
"""


def write_stack(path: Path, data: np.ndarray, crs: str | None = "EPSG:32631", **extra) -> Path:
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": ORIGIN,
        **extra,
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def dn_stack(seed: int = 0, shape: tuple[int, int] = (40, 60)) -> np.ndarray:
    data = np.random.default_rng(seed).integers(1, 10000, (3, *shape)).astype(np.uint16)
    data[:, 0, :5] = 0  # a few no-data pixels
    return data


def full(scene) -> np.ndarray:
    return scene.read(Window(0, 0, scene.shape[1], scene.shape[0]))


# -- the stack reader -------------------------------------------------------------------------
def test_stack_values_follow_the_yaml(tmp_path):
    data = dn_stack()
    tif = write_stack(tmp_path / "s.tif", data)
    sensor = load_sensor_file(write_yaml(tmp_path / "my.yaml", THREE_BANDS))
    scene = stack.open(tif, sensor=sensor)
    assert scene.band_names == ["blue", "red", "nir"]
    assert scene.shape == (40, 60) and scene.grid.resolution == 10
    assert scene.crs.to_epsg() == 32631 and scene.metadata["level"] == "stack"
    values = full(scene)
    expect = data.astype(np.float64)
    expect[0] = expect[0] * 0.0001 - 0.1
    expect[1] = expect[1] * 0.0001  # offset defaults to 0
    # band 3 has no scale or offset: the documented defaults 1 and 0 leave DN as they are
    expect[:, data[0] == 0] = np.nan  # nodata: 0 in the YAML, per band
    np.testing.assert_allclose(values, expect, rtol=1e-6, atol=1e-7)  # float32 values
    assert [b.radiometry.scale for b in scene.bands] == [0.0001, 0.0001, 1.0]


def test_stack_through_open_product_and_coarser_grid(tmp_path):
    data = dn_stack(shape=(40, 60))
    data[:] = 1000
    data[:, :20, :20] = 3000
    tif = write_stack(tmp_path / "s.tif", data)
    yaml_path = write_yaml(tmp_path / "my.yaml", THREE_BANDS)
    scene = open_product(tif, sensor=yaml_path, resolution=20)
    assert scene.shape == (20, 30)
    values = full(scene)
    assert values[1, 0, 0] == pytest.approx(0.3) and values[1, 15, 20] == pytest.approx(0.1)


def test_nodata_from_the_file_or_the_yaml(tmp_path):
    data = dn_stack()
    data[:, 5, 5] = 7
    tif = write_stack(tmp_path / "s.tif", data, nodata=7)
    no_nodata = THREE_BANDS.replace("nodata: 0\n", "")
    scene = stack.open(tif, load_sensor_file(write_yaml(tmp_path / "a.yaml", no_nodata)))
    values = full(scene)
    assert np.isnan(values[:, 5, 5]).all() and np.isfinite(values[:, 0, 0]).all()
    scene = stack.open(tif, load_sensor_file(write_yaml(tmp_path / "b.yaml", THREE_BANDS)))
    values = full(scene)  # the YAML's nodata wins over the file's
    assert np.isnan(values[:, 0, 0]).all() and np.isfinite(values[:, 5, 5]).all()


def test_stack_needs_a_sensor(tmp_path):
    tif = write_stack(tmp_path / "s.tif", dn_stack())
    assert stack.identify(tif) and not stack.identify(tmp_path)
    with pytest.raises(InputError, match="needs --sensor") as err:
        stack.open(tif)
    assert err.value.path == str(tif)


def test_band_count_mismatch_names_the_tif(tmp_path):
    tif = write_stack(tmp_path / "s.tif", dn_stack()[:2])
    sensor = load_sensor_file(write_yaml(tmp_path / "my.yaml", THREE_BANDS))
    with pytest.raises(InputError, match="has 2 bands but sensor my-sensor describes 3") as err:
        stack.open(tif, sensor)
    assert err.value.path == str(tif)


def test_metadata_scale_on_a_stack_names_the_yaml(tmp_path):
    tif = write_stack(tmp_path / "s.tif", dn_stack())
    yaml_path = write_yaml(tmp_path / "my.yaml", THREE_BANDS.replace("scale: 0.0001}", "}"))
    # no scale is fine (defaults to 1); "metadata" is not: a stack has none
    assert stack.open(tif, load_sensor_file(yaml_path)).bands[1].radiometry.scale == 1.0
    text = THREE_BANDS.replace("scale: 0.0001}", "scale: metadata}")
    yaml_path = write_yaml(tmp_path / "meta.yaml", text)
    with pytest.raises(InputError, match="band 'red': a stack has no metadata") as err:
        stack.open(tif, load_sensor_file(yaml_path))
    assert err.value.path == str(yaml_path)


def test_stack_without_crs_or_unreadable(tmp_path):
    sensor = load_sensor_file(write_yaml(tmp_path / "my.yaml", THREE_BANDS))
    plain = write_stack(tmp_path / "plain.tif", dn_stack(), crs=None)
    with pytest.raises(InputError, match="has no CRS") as err:
        stack.open(plain, sensor)
    assert err.value.path == str(plain)
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(InputError, match="cannot read raster") as err:
        stack.open(junk, sensor)
    assert err.value.path == str(junk)


def test_vrt_stack(tmp_path):
    data = dn_stack()
    write_stack(tmp_path / "s.tif", data)
    vrt = tmp_path / "s.vrt"
    bands = "".join(
        f'<VRTRasterBand dataType="UInt16" band="{i}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="1">s.tif</SourceFilename>'
        f"<SourceBand>{i}</SourceBand></SimpleSource></VRTRasterBand>"
        for i in (1, 2, 3)
    )
    vrt.write_text(
        f'<VRTDataset rasterXSize="60" rasterYSize="40"><SRS>EPSG:32631</SRS>'
        f"<GeoTransform>500000, 10, 0, 4000000, 0, -10</GeoTransform>{bands}</VRTDataset>"
    )
    sensor = load_sensor_file(write_yaml(tmp_path / "my.yaml", THREE_BANDS))
    np.testing.assert_array_equal(
        full(stack.open(vrt, sensor)), full(stack.open(tmp_path / "s.tif", sensor))
    )


# -- sensor YAML validation -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("wavelength: [636, 673], ", "", "band 'red': missing 'wavelength: [min_nm, max_nm]'"),
        ("type: reflectance, wavelength: [851", "type: infrared, wavelength: [851", "unknown type"),
        ("name: red", "name: blue", "duplicate band name 'blue'"),
        ("{name: red, ", "{", "band 2: missing 'name'"),
        ("wavelength: [636, 673]", "wavelength: [673, 636]", "must satisfy 300 < min <= max"),
        ("wavelength: [636, 673]", "wavelength: 650", "wavelength must be [min_nm, max_nm]"),
        ("scale: 0.0001}", "scale: lots}", "scale must be a number or 'metadata'"),
        ("name: my-sensor\n", "", "missing 'name'"),
        ("bands:", "bends:", "missing 'bands'"),
        ("nodata: 0\n", "nodata: 0\n  oops: [\n", "not valid YAML"),
    ],
)
def test_yaml_errors_name_the_yaml(tmp_path, old, new, needle):
    assert old in THREE_BANDS
    path = write_yaml(tmp_path / "bad.yaml", THREE_BANDS.replace(old, new, 1))
    with pytest.raises(InputError) as err:
        load_sensor_file(path)
    assert err.value.path == str(path)
    assert needle in err.value.problem
    assert "\n" not in str(err.value)


def test_sar_and_dem_bands_take_no_wavelength(tmp_path):
    text = "name: s1\nbands:\n  - {name: VV, type: sar_vv, wavelength: [500, 600]}\n"
    path = write_yaml(tmp_path / "s1.yaml", text)
    with pytest.raises(InputError, match="a sar_vv band has no wavelength"):
        load_sensor_file(path)
    ok = write_yaml(tmp_path / "ok.yaml", "name: d\nbands:\n  - {name: h, type: dem}\n")
    assert load_sensor_file(ok).bands[0].wavelength is None


def test_sensor_lookup(tmp_path):
    sensors = bundled_sensors()
    assert {"sentinel2_msi", "perusat1_naomi", "sentinel1_sar", "dem"} <= set(sensors)
    assert get_sensor("perusat1_naomi") == sensors["perusat1_naomi"]
    path = write_yaml(tmp_path / "mine.yaml", THREE_BANDS + "vendor: acme\n")
    mine = get_sensor(path)
    assert mine.name == "my-sensor" and mine.nodata == 0 and mine.extra == {"vendor": "acme"}
    with pytest.raises(InputError, match="unknown sensor"):
        get_sensor("hubble")
    with pytest.raises(InputError, match="sensor definition not found"):
        get_sensor(tmp_path / "absent.yaml")


def test_an_unknown_band_key_is_an_error_not_dropped(tmp_path):
    """A typo in a band's keys used to be dropped silently (wavelenght: the band then had none)."""
    text = THREE_BANDS.replace("wavelength: [636, 673]", "wavelenght: [636, 673]", 1)
    path = write_yaml(tmp_path / "typo.yaml", text)
    with pytest.raises(InputError, match=r"unknown key\(s\) \['wavelenght'\] in band 'red'"):
        load_sensor_file(path)


def test_bundled_band_descriptions_are_whole():
    """A comma in an unquoted flow-mapping description split it into a stray key."""
    from cloudmask_cli.sensors import get_sensor

    l7 = get_sensor("landsat7_etm")
    assert l7.band("B6_VCID_1").description == "thermal, low gain (60 m acquired)"
