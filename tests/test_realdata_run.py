"""Tier 2: the bundled model on the real T29UNU L2A tile at 60 m, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from conftest import require
from typer.testing import CliRunner

from cloudmask_cli.cli import app

T29UNU = "products/sentinel2/S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"


@pytest.mark.realdata
def test_bundled_model_on_t29unu_at_60m(shared_data, tmp_path):
    safe = require(shared_data / T29UNU)
    out = tmp_path / "t29unu.tif"
    res = CliRunner().invoke(
        app, ["run", str(safe), "-o", str(out), "--resolution", "60", "--style", "7class",
              "--device", "cpu", "--probabilities", str(tmp_path / "p.tif")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        assert (ds.width, ds.height) == (1830, 1830) and ds.crs.to_epsg() == 32629
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        codes = ds.read(1)
    side = json.loads((tmp_path / "t29unu.tif.json").read_text())
    # ~40 % of the tile is outside the swath (no data), the rest is very cloudy Ireland
    assert 0.55 < side["valid_fraction"] < 0.65
    assert side["radiometric_offsets"], "the L2A BOA offsets were applied and are recorded"
    # agreement with ESA's scene classification (a weak reference) on cloud / not cloud:
    # the bundled model reached 0.904 when it was published on 2026-11-27 (it calls more haze
    # thin cloud than SCL does; 0.934, 0.941, 0.935, 0.939, 0.946 and 0.86 for earlier ones)
    with rasterio.open(next(safe.glob("GRANULE/*/IMG_DATA/R60m/*_SCL_60m.jp2"))) as ds:
        scl = ds.read(1)
    valid = codes != 255
    assert abs(valid.mean() - (scl > 0).mean()) < 0.01, "no-data edge matches ESA's"
    both = valid & (scl > 0)
    agree = (np.isin(codes, (3, 4)) == np.isin(scl, (8, 9, 10)))[both].mean()
    assert agree > 0.9, agree
    # the lakes: SCL's water is water (the spectral tests), SCL's shadow still shadow; the
    # network alone called 0.0 % of the lakes water (benchmarks/quality/README.md)
    water_r = (codes == 1)[both & (scl == 6)].mean()
    shadow_r = (codes == 5)[both & (scl == 3)].mean()
    assert water_r > 0.6 and shadow_r > 0.6, (water_r, shadow_r)
    assert side["spectral_tests"] is True
