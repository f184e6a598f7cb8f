"""Synthetic bright ground: soil spectra, labels, what it leaves alone, config, real data."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, require
from test_synthetic import S2, SAR_DEM, band, clear_scene, labels, landsat8_bands, reflective

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.training.augment import BandSampling, choose_bands
from cloudmask_cli.training.config import parse_config
from cloudmask_cli.training.ground import BrightGround, brighten_ground, soil_reflectance
from cloudmask_cli.training.synthetic import cloud_reflectance

IDX = {c: i for i, c in enumerate(CLASSES)}
L8 = landsat8_bands()


def test_soil_spectrum_rises_into_the_swir_unlike_cloud() -> None:
    for sandiness in (0.0, 0.5, 1.0):
        soil = soil_reflectance(S2, 0.4, sandiness)
        blue, red, swir1 = (soil[band(S2, n)] for n in ("B02", "B04", "B11"))
        assert blue < red < swir1
        assert soil[band(S2, "B12")] < swir1  # a little lower at 2.2 um
        assert soil[band(S2, "B10")] < 0.01  # the cirrus band sees no surface
    cloud = cloud_reflectance(S2, 0.6, 2.0, ice=False)
    assert cloud[band(S2, "B11")] < cloud[band(S2, "B02")]  # the opposite slope
    # Rayleigh path reflectance brightens the blue far more than the SWIR
    hazy = soil_reflectance(S2, 0.4, 0.0, haze=0.08)
    clear = soil_reflectance(S2, 0.4, 0.0)
    assert hazy[band(S2, "B02")] - clear[band(S2, "B02")] > 0.05
    assert hazy[band(S2, "B11")] - clear[band(S2, "B11")] < 0.002


def test_clear_land_becomes_bright_warm_land() -> None:
    rng = np.random.default_rng(0)
    x = clear_scene(L8, rng)
    poss = labels(classes=("land", "water", "snow", "cloud_shadow"))  # Biome's "clear"
    y, p = brighten_ground(x, L8, poss, level=0.45, sandiness=0.5, contrast=0.5, warming=10.0)
    b2, b4, b6 = (band(L8, n) for n in ("B2", "B4", "B6"))
    assert np.median(y[b2]) > 2 * np.median(x[b2])  # much brighter in the visible
    assert np.median(y[b6]) > np.median(y[b4]) > 0  # rising towards the SWIR
    for t in (band(L8, "B10"), band(L8, "B11")):
        assert np.allclose(y[t], x[t] + 10.0)
    want = np.zeros(len(CLASSES), bool)
    want[IDX["land"]] = True
    assert (p == want[:, None, None]).all()  # bare ground: not water, snow nor shadow
    # texture kept: the pattern of the original brightness survives (compressed)
    orig = x[reflective(L8)].mean(axis=0).ravel()
    new = y[reflective(L8)].mean(axis=0).ravel()
    assert np.corrcoef(orig, new)[0, 1] > 0.9


def test_only_clear_land_is_rewritten() -> None:
    rng = np.random.default_rng(1)
    x = clear_scene(L8, rng, size=64)
    poss = labels(size=64)
    poss[:, :8] = False
    poss[IDX["water"], :8] = True  # strictly water: stays water
    poss[:, 8:16] = False  # unlabelled: left alone
    poss[IDX["land"], 16:24] = poss[IDX["cloud_shadow"], 16:24] = True  # land or shadow: land
    x[:, 60:, 60:] = np.nan
    weight = np.ones((64, 64), np.float32)
    weight[:, 40:50] = 0.0  # outside the patches
    y, p = brighten_ground(x, L8, poss, level=0.4, sandiness=1.0, weight=weight)
    for rows in (slice(0, 8), slice(8, 16)):
        np.testing.assert_array_equal(y[:, rows], x[:, rows])
        np.testing.assert_array_equal(p[:, rows], poss[:, rows])
    np.testing.assert_array_equal(y[:, 24:, 40:50], x[:, 24:, 40:50])
    assert np.isnan(y[:, 60:, 60:]).all() and (p[:, 60:, 60:] == poss[:, 60:, 60:]).all()
    assert p[IDX["land"], 16:24].all() and not p[IDX["cloud_shadow"], 16:24, :40].any()
    assert p[IDX["cloud_shadow"], 16:24, 40:50].all()  # weight 0: left as it was
    assert (y[:, 16:24] != x[:, 16:24]).any()


def test_partial_weight_blends() -> None:
    rng = np.random.default_rng(2)
    x = clear_scene(S2, rng, size=32)
    half = np.full((32, 32), 0.5, np.float32)
    full, _ = brighten_ground(x, S2, labels(32), level=0.5, sandiness=0.0, weight=None)
    mid, _ = brighten_ground(x, S2, labels(32), level=0.5, sandiness=0.0, weight=half)
    r = reflective(S2)
    np.testing.assert_allclose(mid[r], 0.5 * (x[r] + full[r]), rtol=1e-5, atol=1e-6)


def test_cloudy_crops_and_sar_dem_are_left_alone() -> None:
    rng = np.random.default_rng(3)
    bands = S2 + SAR_DEM
    x = clear_scene(bands, rng, size=64)
    aug = BrightGround(p=1.0)
    y, p = aug(x, bands, labels(64), np.random.default_rng(0))
    sar_dem = [i for i, b in enumerate(bands) if b.type not in ("reflectance",)]
    np.testing.assert_array_equal(y[sar_dem], x[sar_dem])
    assert (y[reflective(bands)] != x[reflective(bands)]).any()
    cloudy = labels(64)
    cloudy[:, :10] = False
    cloudy[IDX["thick_cloud"], :10] = True  # 16 % cloud: real haze would keep its old ground
    y, p = aug(x, bands, cloudy, np.random.default_rng(0))
    assert y is x and p is cloudy


def test_stream_and_determinism() -> None:
    x = clear_scene(L8, np.random.default_rng(4), size=64)
    poss = labels(64)
    aug = BrightGround(p=0.5)
    a = [aug(x, L8, poss, np.random.default_rng(s)) for s in range(8)]
    b = [aug(x, L8, poss, np.random.default_rng(s)) for s in range(8)]
    fired = [not np.array_equal(ya, x) for ya, _ in a]
    assert any(fired) and not all(fired)
    for (ya, pa), (yb, pb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(pa, pb)
    # the same number of draws whether it fires or not (what follows stays aligned)
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    BrightGround(p=0.0)(x, L8, poss, r1)
    BrightGround(p=1.0)(x, L8, poss, r2)
    assert r1.random() == r2.random()


def test_config() -> None:
    g = BrightGround.from_config({"p": 0.3, "level": [0.3, 0.5], "warming": 5})
    assert g.p == 0.3 and g.level == (0.3, 0.5) and g.warming == (5.0, 5.0)
    for bad, msg in (
        ({"colour": 1}, "unknown key"),
        ({"level": [0.6, 0.2]}, "level"),
        ({"p": 2.0}, "p must be"),
        ({"haze": "x"}, "haze"),
    ):
        with pytest.raises(ValueError, match=msg):
            BrightGround.from_config(bad)
    base = {"datasets": [{"kind": "stored", "path": "x"}]}
    assert parse_config({**base, "ground": {"p": 0.4}}).ground == {"p": 0.4}
    from cloudmask_cli.errors import InputError

    with pytest.raises(InputError, match="ground: bright ground: unknown key"):
        parse_config({**base, "ground": {"bogus": 1}})


def test_keep_thermal_adds_the_thermal_bands() -> None:
    therm = {i for i, b in enumerate(L8) if b.type == "brightness_temperature"}
    plain = BandSampling(keep_all=0.0)
    keep = BandSampling(keep_all=0.0, keep_thermal=1.0)
    with_plain = sum(
        therm <= set(choose_bands(L8, np.random.default_rng(s), plain)) for s in range(200)
    )
    with_keep = sum(
        therm <= set(choose_bands(L8, np.random.default_rng(s), keep)) for s in range(200)
    )
    assert with_keep == 200 and with_plain < 150
    # disabled: the random stream is the one configs without it always had
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    choose_bands(L8, r1, plain)
    choose_bands(L8, r2, BandSampling(keep_all=0.0, keep_thermal=0.0))
    assert r1.random() == r2.random()


def test_real_biome_patch() -> None:
    root = require(DATA / "labelled" / "landsat8-biome-patches")
    from cloudmask_cli.training.adapters import open_dataset
    from cloudmask_cli.training.labels import load_scheme, possible_from_bits

    samples = {s.id: s for s in open_dataset("biome-patches", str(root), "train", {})}
    s = samples["Forest_03_0209"]  # dark vegetation, a few small clouds
    x, lab = s.read()
    poss = possible_from_bits(load_scheme(s.scheme).bits(lab))
    y, p = brighten_ground(x, s.bands, poss, level=0.4, sandiness=0.3, warming=8.0)
    cloud = poss[[IDX["thin_cloud"], IDX["thick_cloud"]]].any(axis=0)
    rewritten = ~cloud & poss[IDX["land"]] & np.isfinite(x).all(axis=0)
    assert rewritten.mean() > 0.5 and cloud.any()
    np.testing.assert_array_equal(y[:, cloud], x[:, cloud])
    red, swir = (band(s.bands, n) for n in ("B4", "B6"))
    assert np.median(y[red][rewritten]) > 0.15 > np.median(x[red][rewritten])
    assert np.median(y[swir][rewritten]) > np.median(y[red][rewritten])
    assert p[IDX["land"]][rewritten].all() and not p[IDX["water"]][rewritten].any()
