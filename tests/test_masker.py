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
