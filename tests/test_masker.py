"""`CloudMasker`: one model for many products, the same masks as the one-call API and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

import cloudmask_cli
from cloudmask_cli.demo.sentinel2 import write_sentinel2
from cloudmask_cli.errors import InputError
from cloudmask_cli.masker import CloudMasker


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("products")
    return [write_sentinel2(root / str(seed), level="L1C", size_10m=120, seed=seed)
            for seed in (1, 2)]  # fmt: skip


def test_one_masker_loads_the_model_once_for_many_products(tmp_path, products, tiny_weights):
    masker = CloudMasker(tiny_weights, device="cpu")
    engines = set()
    for i, product in enumerate(products):
        side = masker.run(product, tmp_path / f"{i}.tif", resolution=60)
        engines.add(id(masker.engine))
        assert side["model"]["name"] == "tiny-test" and side["device"] == "cpu"
    assert len(engines) == 1
    # the one-call API makes its own masker and writes the same mask
    cloudmask_cli.run(products[0], tmp_path / "again.tif", weights=tiny_weights, device="cpu",
                      resolution=60)  # fmt: skip
    with rasterio.open(tmp_path / "0.tif") as a, rasterio.open(tmp_path / "again.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))
    # and `mask` returns those codes as an array
    codes = masker.mask(products[0], resolution=60)
    with rasterio.open(tmp_path / "0.tif") as a:
        assert np.array_equal(codes.values, a.read(1))
    assert codes.attrs["model"] == "tiny-test"


def test_bad_input_fails_before_the_model_is_loaded(tmp_path, products) -> None:
    masker = CloudMasker(tmp_path / "no-such-weights.safetensors", device="cpu")
    with pytest.raises(InputError, match="nothing.SAFE"):
        masker.run(tmp_path / "nothing.SAFE", tmp_path / "m.tif")
    (tmp_path / "taken.tif").write_bytes(b"")
    with pytest.raises(InputError, match="taken.tif"):
        masker.run(products[0], tmp_path / "taken.tif")
    assert masker._engine is None, "no weights read for input that was never masked"
    assert not (tmp_path / "m.tif").exists()


# -- a DataArray is read where it lies in memory ------------------------------------------------
RGBN = {"name": "rgbn", "bands": [
    {"name": "blue", "type": "reflectance", "wavelength": [452, 512], "scale": 1e-4},
    {"name": "green", "type": "reflectance", "wavelength": [533, 590], "scale": 1e-4},
    {"name": "red", "type": "reflectance", "wavelength": [636, 673], "scale": 1e-4},
    {"name": "nir", "type": "reflectance", "wavelength": [851, 879], "scale": 1e-4}]}  # fmt: skip


@pytest.fixture()
def stack(tmp_path):
    """The same uint16 DN as a GeoTIFF stack and as a DataArray (0 = no data in a corner)."""
    import rioxarray  # noqa: F401
    import xarray as xr
    import yaml
    from rasterio.transform import from_origin

    rng = np.random.default_rng(7)
    dn = rng.integers(200, 6000, (4, 90, 70)).astype(np.uint16)
    dn[:, :12, :9] = 0
    transform = from_origin(4e5, 5e6, 30, 30)
    tif = tmp_path / "stack.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=70, height=90, count=4, dtype="uint16",
                       crs="EPSG:32633", transform=transform, nodata=0) as ds:  # fmt: skip
        ds.write(dn)
    da = xr.DataArray(dn, dims=("band", "y", "x"), coords={
        "band": ["blue", "green", "red", "nir"],
        "y": 5e6 - 15 - 30 * np.arange(90), "x": 4e5 + 15 + 30 * np.arange(70)})  # fmt: skip
    da = da.rio.write_crs("EPSG:32633").rio.write_nodata(0)
    sensor = tmp_path / "rgbn.yaml"
    sensor.write_text(yaml.safe_dump(RGBN))
    return tif, da, sensor


def test_a_dataarray_scene_reads_as_its_geotiff_does(stack) -> None:
    from rasterio.windows import Window

    from cloudmask_cli.masker import _scene_from_xarray
    from cloudmask_cli.products import open_product
    from cloudmask_cli.sensors import get_sensor

    tif, da, sensor = stack
    in_memory = _scene_from_xarray(da, get_sensor(sensor))
    on_disk = open_product(tif, sensor=sensor)
    assert in_memory.shape == on_disk.shape and in_memory.bounds == on_disk.bounds
    # at its own resolution: the same values, bit for bit, for any window (edges included)
    for win in (Window(0, 0, 70, 90), Window(5, 7, 33, 41), Window(60, 80, 30, 30)):
        a, b = in_memory.read(win), on_disk.read(win)
        assert np.array_equal(a, b, equal_nan=True)
    # on coarser and finer grids: resampled by GDAL from the array in place; close to the file
    # path (its no-data ring and edge kernel differ a little) away from the no-data corner
    for res in (60, 15):
        a = in_memory.with_resolution(res).read(
            Window(0, 0, *in_memory.with_resolution(res).shape[::-1])
        )
        b = on_disk.with_resolution(res).read(
            Window(0, 0, *on_disk.with_resolution(res).shape[::-1])
        )
        inner = (slice(None), slice(a.shape[1] // 4, -2), slice(a.shape[2] // 4, -2))
        assert a.shape == b.shape and np.allclose(a[inner], b[inner], atol=0.02), res
        assert np.isnan(a[:, 0, 0]).all()


def test_a_dataarray_masks_as_its_geotiff(stack, tiny_weights) -> None:
    tif, da, sensor = stack
    masker = CloudMasker(tiny_weights, device="cpu")
    from_memory = masker.mask(da, sensor=sensor)
    from_file = masker.mask(tif, sensor=sensor)
    assert np.array_equal(from_memory.values, from_file.values)
    assert from_memory.rio.transform() == from_file.rio.transform()
    # rows stored south to north (a y coordinate that rises) are the same image
    flipped = da.isel(y=slice(None, None, -1))
    assert np.array_equal(masker.mask(flipped, sensor=sensor).values, from_file.values)
