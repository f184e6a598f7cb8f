"""HLS v2 S30 / L30 granules as a folder of per-band COGs (LP DAAC's distribution).

Always-on tier: small granules written here with rasterio in the real naming
(``HLS.S30.T10SEG.2023001T185751.v2.0/HLS.S30.T10SEG.2023001T185751.v2.0.B01.tif``...), the real
dtypes (int16 bands with -9999 no data, uint8 Fmask with 255 fill), the angle bands, and a
``.cmr.xml`` of the real ECHO10 shape and attribute names (checked against a real L30 cmr.xml).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from stac_fixtures import field, hls, save, write_cog
from typer.testing import CliRunner

from cloudmask_cli.cli import app
from cloudmask_cli.errors import InputError
from cloudmask_cli.products import detect, open_product
from cloudmask_cli.products import hls as hls_reader

runner = CliRunner()

N = 40  # pixels a side, 30 m
EPSG = 32610
ORIGIN = (499980.0, 4200000.0)
S30 = "HLS.S30.T10SEG.2023001T185751.v2.0"
L30 = "HLS.L30.T10SEG.2023003T184601.v2.0"
THERMAL_DN = {"B10": 2500, "B11": 2350}  # 25.00 and 23.50 degC


def band_dn(i: int) -> np.ndarray:
    dn = (field((N, N), 400 + 150 * i, seed=i) // 2).astype(np.int16)  # a cloud blob, < 10000
    dn[5, 7 + i] = -9999  # a no-data pixel of this band only
    return dn


def fmask_values() -> np.ndarray:
    fm = np.full((N, N), 64, np.uint8)  # low aerosol, clear
    fm[12:20, 20:30] = 2  # cloud (bit 1): valid data all the same
    fm[:, -3:] = 255  # fill at the east edge
    return fm


CMR = """<?xml version="1.0" encoding="UTF-8"?>
<Granule>
<GranuleUR>{gid}</GranuleUR>
<Collection><DataSetId>{dataset}</DataSetId></Collection>
<DataGranule><ProducerGranuleId>{producer}</ProducerGranuleId><DayNightFlag>DAY</DayNightFlag>
<LocalVersionId>2.0</LocalVersionId></DataGranule>
<Temporal><RangeDateTime><BeginningDateTime>{begin}</BeginningDateTime>
<EndingDateTime>{begin}</EndingDateTime></RangeDateTime></Temporal>
<Platforms><Platform><ShortName>{platform}</ShortName>
<Instruments><Instrument><ShortName>{instrument}</ShortName></Instrument></Instruments>
</Platform></Platforms>
<AdditionalAttributes>{attributes}</AdditionalAttributes>
<DataFormat>Cloud Optimized GeoTIFF (COG)</DataFormat>
</Granule>
"""
ATTRIBUTES = {"CLOUD_COVERAGE": "12", "MGRS_TILE_ID": "10SEG", "SPATIAL_COVERAGE": "100",
              "SPATIAL_RESOLUTION": "30.0", "ADD_OFFSET": "0", "REF_SCALE_FACTOR": "0.0001",
              "THERM_SCALE_FACTOR": "0.01", "ANG_SCALE_FACTOR": "0.01", "FILLVALUE": "-9999",
              "QA_FILLVALUE": "255", "NCOLS": str(N), "NROWS": str(N),
              "MEAN_SUN_AZIMUTH_ANGLE": "160.5", "MEAN_SUN_ZENITH_ANGLE": "61.25"}  # fmt: skip


def cmr_xml(gid: str, begin: str, platform: str, **extra: str) -> str:
    attrs = "".join(
        f"<AdditionalAttribute><Name>{k}</Name><Values><Value>{v}</Value></Values>"
        "</AdditionalAttribute>"
        for k, v in {**ATTRIBUTES, **extra}.items()
    )
    kind = gid.split(".")[1]
    return CMR.format(
        gid=gid, producer=gid.removesuffix(".v2.0"), begin=begin, platform=platform,
        instrument="MSI" if kind == "S30" else "OLI", attributes=attrs,
        dataset=f"HLS {'Sentinel-2 Multi-spectral Instrument' if kind == 'S30' else 'Landsat Operational Land Imager'} Surface Reflectance ... v2.0",
    )  # fmt: skip


def write_granule(parent: Path, gid: str = S30, *, cmr: bool = True, platform: str = "",
                  omit: str | None = None, shifted: str | None = None) -> Path:  # fmt: skip
    """A granule folder; ``omit`` a layer's file, ``shifted`` one layer 30 m east."""
    kind = gid.split(".")[1]
    folder = parent / gid
    folder.mkdir(parents=True)
    layers = [*hls_reader.BANDS[kind], "Fmask", "SAA", "SZA", "VAA", "VZA"]
    for i, layer in enumerate(layers):
        if layer == omit:
            continue
        origin = (ORIGIN[0] + 30, ORIGIN[1]) if layer == shifted else ORIGIN
        if layer == "Fmask":
            data, nodata = fmask_values(), 255
        elif layer in ("SAA", "SZA", "VAA", "VZA"):
            data, nodata = np.full((N, N), 4500, np.uint16), 40000
        elif kind == "L30" and layer in THERMAL_DN:
            data, nodata = np.full((N, N), THERMAL_DN[layer], np.int16), -9999
            data[5, 7 + i] = -9999
        else:
            data, nodata = band_dn(i), -9999
        write_cog(folder / f"{gid}.{layer}.tif", data, 30, nodata=nodata, origin=origin, epsg=EPSG)
    if cmr:
        begin = "2023-01-01T18:57:51.524000Z" if kind == "S30" else "2023-01-03T18:46:01.1Z"
        plat = platform or ("Sentinel-2A" if kind == "S30" else "LANDSAT-8")
        (folder / f"{gid}.cmr.xml").write_text(cmr_xml(gid, begin, plat))
    return folder


def read_all(scene) -> np.ndarray:
    return scene.read(Window(0, 0, scene.shape[1], scene.shape[0]))


# -- detection and values ---------------------------------------------------------------------
def test_s30_folder_values_are_dn_times_1e4_with_no_data(tmp_path):
    folder = write_granule(tmp_path)
    assert detect(folder) is hls_reader
    scene = open_product(folder)
    assert scene.sensor.name == "sentinel2_msi"
    assert scene.band_names == list(hls_reader.BANDS["S30"])  # the sensor's order, B8A after B08
    assert scene.grid.resolution == 30 and scene.shape == (N, N)  # harmonised: all 30 m
    assert scene.crs.to_epsg() == EPSG
    assert scene.metadata["level"].startswith("surface reflectance (HLS v2.0 S30")
    assert scene.metadata["datetime"] == "2023-01-01T18:57:51.524000Z"  # the cmr.xml's
    assert scene.metadata["platform"] == "Sentinel-2A" and scene.metadata["tile"] == "10SEG"
    assert scene.metadata["product_id"] == S30 and scene.metadata["sun_zenith"] == 61.25
    values = read_all(scene)
    fill = fmask_values() == 255
    assert np.isnan(values[:, fill]).all()  # Fmask fill: no data in every band
    for i, name in enumerate(scene.band_names):
        dn = band_dn(i)
        ok = (dn != -9999) & ~fill
        np.testing.assert_allclose(values[i][ok], dn[ok] * 1e-4, rtol=1e-6)
        assert np.isnan(values[i][dn == -9999]).all()  # that band only
        assert np.isfinite(values[(i + 1) % len(values), 5, 7 + i]), name
    cloud = fmask_values() == 2
    assert np.isfinite(values[:, cloud]).all()  # HLS's own cloud flag is not a data mask


def test_l30_thermal_bands_in_kelvin_from_hundredths_of_a_degree(tmp_path):
    folder = write_granule(tmp_path, L30, platform="LANDSAT-9")
    scene = open_product(folder)
    assert scene.sensor.name == "landsat9_oli2_tirs2"  # the cmr.xml's platform
    assert scene.band_names == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9", "B10", "B11"]
    assert "B8" not in scene.band_names  # no panchromatic band in HLS
    values = read_all(scene)
    fill = fmask_values() == 255
    b10, b11 = scene.band_names.index("B10"), scene.band_names.index("B11")
    for idx, name in ((b10, "B10"), (b11, "B11")):
        v = values[idx]
        ok = np.isfinite(v)
        np.testing.assert_allclose(v[ok], THERMAL_DN[name] * 0.01 + 273.15, rtol=1e-6)
        assert ok.sum() == (~fill).sum() - 1  # Fmask fill and its one -9999 pixel
        assert scene.bands[idx].band.type == "brightness_temperature"
    np.testing.assert_allclose(values[0][~fill & (band_dn(0) != -9999)],
                               band_dn(0)[~fill & (band_dn(0) != -9999)] * 1e-4, rtol=1e-6)  # fmt: skip
    assert "TOA brightness temperature" in scene.metadata["values"]
    assert "(degC) + 273.15" in scene.bands[b10].radiometry.formula


def test_l30_without_cmr_xml_landsat8_and_time_from_the_name(tmp_path):
    folder = write_granule(tmp_path, L30, cmr=False)
    scene = open_product(folder)
    assert scene.sensor.name == "landsat8_oli_tirs"
    assert scene.metadata["datetime"] == "2023-01-03T18:46:01Z"  # 2023 day 003
    assert scene.metadata["cmr_xml"] is None
    assert "HLS v2 convention" in scene.bands[0].radiometry.formula
    assert scene.bands[0].radiometry.scale == 1e-4


def test_a_band_file_inside_is_the_granule(tmp_path):
    folder = write_granule(tmp_path)
    band = folder / f"{S30}.B04.tif"
    assert detect(band) is hls_reader
    scene = open_product(band)
    assert scene.product == str(folder) and len(scene.bands) == 13
    # with --sensor a .tif would be a plain stack; an HLS band file stays a granule
    assert open_product(band, sensor="sentinel2_msi").product == str(folder)


def test_same_values_as_the_stac_item_of_the_granule(tmp_path):
    """The folder reader and the STAC reader of one granule (HLS CMR-STAC shape) agree."""
    from cloudmask_cli.products import stac

    for kind in ("S30", "L30"):
        item = save(hls(tmp_path / kind, kind), tmp_path / f"{kind}.json")
        via_stac, via_folder = open_product(item), open_product(tmp_path / kind)
        assert detect(item) is stac and detect(tmp_path / kind) is hls_reader
        assert via_stac.band_names == via_folder.band_names
        assert via_stac.sensor.name == via_folder.sensor.name
        np.testing.assert_array_equal(read_all(via_stac), read_all(via_folder))


# -- one-line errors ---------------------------------------------------------------------------
def one_line_error(product: Path) -> str:
    res = runner.invoke(app, ["info", str(product)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_missing_band_is_a_one_line_error(tmp_path):
    folder = write_granule(tmp_path, omit="B8A")
    with pytest.raises(InputError, match=r"HLS S30 granule without band B8A \(no .*\.B8A\.tif\)"):
        open_product(folder)
    assert "B8A" in one_line_error(folder)
    l30 = write_granule(tmp_path / "l", L30, omit="B10")
    assert "without band B10" in one_line_error(l30)


def test_a_band_on_another_grid_is_a_one_line_error(tmp_path):
    folder = write_granule(tmp_path, shifted="B05")
    line = one_line_error(folder)
    assert f"{S30}.B05.tif: is on another grid" in line and f"than {S30}.B01.tif" in line
    folder = write_granule(tmp_path / "f", shifted="Fmask")
    assert "Fmask.tif: is on another grid" in one_line_error(folder)


def test_other_bad_granules_are_one_line_errors(tmp_path):
    # a band of another dtype: the -9999 / 1e-4 convention would not apply
    folder = write_granule(tmp_path / "a")
    write_cog(folder / f"{S30}.B02.tif", np.full((N, N), 500, np.uint16), 30, origin=ORIGIN,
              epsg=EPSG)  # fmt: skip
    assert "B02.tif: is uint16, not int16" in one_line_error(folder)
    # a cmr.xml of another granule
    folder = write_granule(tmp_path / "b")
    (folder / f"{S30}.cmr.xml").write_text(cmr_xml(L30, "2023-01-03T18:46:01Z", "LANDSAT-8"))
    assert f"describes granule {L30}, not {S30}" in one_line_error(folder)
    # two granules' files in one folder
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for gid in (S30, L30):
        src = write_granule(tmp_path / "c", gid)
        for f in src.iterdir():
            shutil.copy(f, mixed / f.name)
    assert "holds 2 HLS granules" in one_line_error(mixed)


# -- the CLI ------------------------------------------------------------------------------------
def test_info_prints_the_granule(tmp_path):
    folder = write_granule(tmp_path, L30)
    res = runner.invoke(app, ["info", str(folder)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "product_type: HLS v2.0 L30 granule (Landsat OLI/TIRS" in res.output
    assert "level: surface reflectance (HLS v2.0 L30" in res.output
    assert "datetime: 2023-01-03T18:46:01.100000Z" in res.output
    assert f"product_id: {L30}" in res.output and "@ 30 m" in res.output
    data = json.loads(runner.invoke(app, ["info", str(folder), "--json"]).output)
    assert data["sensor"] == "landsat8_oli_tirs"
    assert data["bands"][0]["radiometry"]["scale"] == 1e-4
    assert data["bands"][-1]["radiometry"]["offset"] == 273.15
    assert data["valid_fraction"] == pytest.approx((N - 3) / N, abs=0.01)


def test_run_on_an_s30_granule_writes_a_mask(tmp_path, tiny_weights):
    folder = write_granule(tmp_path / "p")
    out = tmp_path / "mask.tif"
    res = runner.invoke(app, ["run", str(folder), "-o", str(out), "--weights", str(tiny_weights),
                              "--device", "cpu", "--stac"])  # fmt: skip
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert (ds.width, ds.height, ds.res) == (N, N, (30.0, 30.0))
        assert ds.crs.to_epsg() == EPSG
        codes = ds.read(1)
    fill = fmask_values() == 255
    assert (codes[fill] == 255).all() and (codes[~fill] != 255).all()
    side = json.loads((tmp_path / "mask.tif.json").read_text())
    assert side["product_id"] == S30 and "HLS v2.0 S30" in side["product_type"]
    assert side["datetime"] == "2023-01-01T18:57:51.524000Z"
    assert "surface reflectance" in side["radiometry"]["B04"]["formula"]
    item = json.loads((tmp_path / "mask.stac.json").read_text())
    assert item["properties"]["datetime"].startswith("2023-01-01T18:57:51")
