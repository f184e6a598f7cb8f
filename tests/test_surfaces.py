"""Synthetic snow and water: spectra that pass the field's snow and water tests (and that cloud
and shadow do not), labels, what is left alone, config, through the training dataset."""

from __future__ import annotations

import numpy as np
import pytest
from test_synthetic import S2, SAR_DEM, band, clear_scene, labels, landsat8_bands

from cloudmask_cli import spectral
from cloudmask_cli.classes import CLASSES
from cloudmask_cli.errors import InputError
from cloudmask_cli.training.config import parse_config
from cloudmask_cli.training.surfaces import (
    SnowAndWater,
    rewrite_surface,
    snow_reflectance,
    water_reflectance,
)
from cloudmask_cli.training.synthetic import cloud_reflectance

IDX = {c: i for i, c in enumerate(CLASSES)}
L8 = landsat8_bands()
REFL = [b for b in S2 if b.type == "reflectance"]


def _planes(values: np.ndarray, bands, size: int = 4) -> np.ndarray:
    return np.broadcast_to(values[:, None, None], (len(bands), size, size)).astype(np.float32)


@pytest.mark.parametrize("age", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("level", [0.4, 0.9])
def test_snow_passes_the_snow_test_and_cloud_does_not(level: float, age: float) -> None:
    snow = snow_reflectance(REFL, level, age, haze=0.05)
    assert spectral.snow(_planes(snow, REFL), REFL).all()  # NDSI, NIR, green, cirrus
    assert not spectral.water(_planes(snow, REFL), REFL).any()
    cloud = cloud_reflectance(REFL, level, 2.0, ice=False)
    assert not spectral.snow(_planes(cloud, REFL), REFL).any()  # bright at 1.6 um


@pytest.mark.parametrize("turbidity", [0.0, 0.5, 1.0])
def test_water_passes_the_water_test_and_a_shadow_on_soil_does_not(turbidity: float) -> None:
    water = water_reflectance(REFL, turbidity, haze=0.03)
    assert spectral.water(_planes(water, REFL), REFL).all()  # Fmask, NDWI, MNDWI
    assert not spectral.snow(_planes(water, REFL), REFL).any()
    # dim soil in a shadow keeps the soil's rising spectrum: dark, but not water
    from cloudmask_cli.training.ground import soil_reflectance

    shadowed = 0.25 * soil_reflectance(REFL, 0.3, 0.5)
    assert not spectral.water(_planes(shadowed, REFL), REFL).any()


def test_a_patch_becomes_snow_with_soft_edges_labelled_both() -> None:
    rng = np.random.default_rng(0)
    x = clear_scene(L8, rng, size=64)
    poss = labels(64, classes=("land", "water", "snow", "cloud_shadow"))  # Biome's "clear"
    weight = np.zeros((64, 64), np.float32)
    weight[:, 32:] = 1.0
    weight[:, 30:32] = 0.3  # an edge
    refl = [b for b in L8 if b.type == "reflectance"]
    y, p = rewrite_surface(
        x, L8, poss, "snow", snow_reflectance(refl, 0.8, 0.5), 0.4, 260.0, weight
    )
    assert np.array_equal(y[:, :, :30], x[:, :, :30]) and np.array_equal(
        p[:, :, :30], poss[:, :, :30]
    )
    only_snow = np.zeros(len(CLASSES), bool)
    only_snow[IDX["snow"]] = True
    assert (p[:, :, 32:] == only_snow[:, None, None]).all()
    assert (p[:, :, 30:32] == poss[:, :, 30:32]).all()  # the edge allows old and new: both
    b3, b6 = band(L8, "B3"), band(L8, "B6")
    assert np.median(y[b3, :, 32:]) > 0.5 and np.median(y[b6, :, 32:]) < 0.2
    for t in (band(L8, "B10"), band(L8, "B11")):
        assert abs(np.median(y[t, :, 32:]) - 260.0) < 1.0  # snow is below 0 degC


def test_water_darkens_sar_and_cools_the_thermal() -> None:
    rng = np.random.default_rng(1)
    bands = (*L8, *SAR_DEM)
    x = np.concatenate([clear_scene(L8, rng, size=32), clear_scene(SAR_DEM, rng, size=32)])
    x[len(L8) + 0] = -8.0  # VV over land
    x[len(L8) + 3] = 123.0  # elevation
    refl = [b for b in L8 if b.type == "reflectance"]
    y, p = rewrite_surface(x, bands, labels(32), "water", water_reflectance(refl, 0.2), 0.05, -3.0)
    assert p[IDX["water"]].all() and not p[IDX["land"]].any()
    assert np.allclose(y[len(L8) + 0], -20.0)  # calm water: low backscatter
    assert np.array_equal(y[len(L8) + 2 :], x[len(L8) + 2 :])  # incidence angle, DEM untouched
    t = band(L8, "B10")
    assert np.allclose(y[t], x[t] - 3.0)


def test_cloud_and_strict_labels_are_left_alone() -> None:
    rng = np.random.default_rng(2)
    x = clear_scene(S2, rng, size=32)
    poss = labels(32)
    poss[:, :4] = False
    poss[IDX["thick_cloud"], :4] = True  # a real cloud stays
    x[:, 8:10] = np.nan  # no data stays
    y, p = rewrite_surface(x, S2, poss, "snow", snow_reflectance(REFL, 0.8, 0.2), 0.4, 260.0)
    assert np.array_equal(p[:, :4], poss[:, :4]) and np.array_equal(y[:, :4], x[:, :4])
    assert np.isnan(y[:, 8:10]).all()
    assert p[IDX["snow"], 12:].all()


def test_augmentation_fires_on_clear_crops_only_and_keeps_the_random_stream() -> None:
    aug = SnowAndWater(p=1.0, snow=0.5)
    x = clear_scene(S2, np.random.default_rng(3), size=64)
    changed = 0
    for seed in range(8):
        y, p = aug(x, S2, labels(64), np.random.default_rng(seed))
        changed += int(p[IDX["snow"]].any() or p[IDX["water"]].any())
        assert np.isfinite(y).all()
    assert changed == 8
    # RGB + NIR only: nothing tells snow from cloud, so only water is drawn
    rgbn = [band(S2, n) for n in ("B02", "B03", "B04", "B08")]
    kinds = set()
    for seed in range(12):
        _, p = aug(x[rgbn], [S2[i] for i in rgbn], labels(64), np.random.default_rng(seed))
        kinds |= {c for c in ("snow", "water") if p[IDX[c]].any()}
    assert kinds == {"water"}
    cloudy = labels(64, classes=("thick_cloud",))
    y, p = aug(x, S2, cloudy, np.random.default_rng(0))
    assert y is x and p is cloudy
    # fired or not, the same number of draws: what follows in the stream is unchanged
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    SnowAndWater(p=1.0)(x, S2, labels(64), a)
    SnowAndWater(p=0.0)(x, S2, labels(64), b)
    assert a.random() == b.random()


def test_config_section() -> None:
    base = {"datasets": [{"name": "a", "kind": "training", "path": "."}]}
    assert parse_config({**base, "surfaces": {"p": 0.3}}).surfaces == {"p": 0.3}
    with pytest.raises(InputError, match="surfaces: snow and water: unknown key"):
        parse_config({**base, "surfaces": {"bogus": 1}})
    with pytest.raises(InputError, match="snow must be in"):
        parse_config({**base, "surfaces": {"snow": 2}})


def test_real_biome_patch_through_the_training_dataset() -> None:
    """A real clear Biome patch, drawn by the training dataset with snow and water on: the
    crops come out with snow or water labels whose pixels pass the snow or water rule."""
    from conftest import DATA, require

    from cloudmask_cli.training.adapters import open_dataset
    from cloudmask_cli.training.augment import Augmentation, BandSampling
    from cloudmask_cli.training.datasets import TrainingDataset

    root = require(DATA / "labelled" / "landsat8-biome-patches")
    s = {s.id: s for s in open_dataset("biome-patches", str(root), "train", {})}["Wetlands_01_0416"]
    ds = TrainingDataset(
        [s], 128, BandSampling(enabled=False), Augmentation(), seed=1,
        surfaces=SnowAndWater(p=1.0, snow=0.5),
    )  # fmt: skip
    seen = set()
    for draw in range(6):
        item = ds[(draw, 0)]
        x, poss = item["x"].numpy(), item["possible"].numpy()
        for surface, rule in (("snow", spectral.snow), ("water", spectral.water)):
            sure = poss[IDX[surface]] & (poss.sum(axis=0) == 1)
            if sure.sum() > 100:
                seen.add(surface)
                assert rule(x, s.bands)[sure].mean() > 0.9, (draw, surface)
    assert seen == {"snow", "water"}


def test_a_crop_without_reflective_bands_is_left_alone() -> None:
    # band sampling can feed the thermal band alone: nothing to draw a surface in (it crashed)
    therm = [b for b in L8 if b.type == "brightness_temperature"]
    x = np.full((len(therm), 16, 16), 290.0, np.float32)
    for seed in range(6):
        y, p = SnowAndWater(p=1.0)(x, therm, labels(16), np.random.default_rng(seed))
        assert np.array_equal(y, x) and np.array_equal(p, labels(16))
