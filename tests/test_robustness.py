"""Input perturbations (evaluation) and radiometric jitter (training augmentation)."""

from __future__ import annotations

import numpy as np
import pytest

from cloudmask_cli.errors import InputError
from cloudmask_cli.training.adapters.common import sensor_bands
from cloudmask_cli.training.augment import Augmentation, jitter_radiometry
from cloudmask_cli.training.config import parse_config
from cloudmask_cli.training.robustness import PERTURBATIONS, get_perturbation

L8 = sensor_bands("landsat8_oli_tirs", ["B2", "B3", "B4", "B5", "B6", "B7", "B9", "B10"])


def image(n: int = 8) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.uniform(0.05, 0.5, (n, 6, 6)).astype(np.float32)


def test_gain_and_offset_touch_reflectance_only() -> None:
    x = image()
    thermal = [i for i, b in enumerate(L8) if b.type != "reflectance"]
    assert thermal == [7]
    y, fed = get_perturbation("gain0.8")(x, L8, "s")
    assert fed == list(L8) and np.allclose(y[:7], 0.8 * x[:7]) and np.array_equal(y[7], x[7])
    y, _ = get_perturbation("offset-0.02")(x, L8, "s")
    assert np.allclose(y[:7], x[:7] - 0.02) and np.array_equal(y[7], x[7])
    assert np.array_equal(x, image())  # the input is not changed in place


def test_band_gain_is_per_band_and_seeded_by_the_sample() -> None:
    x = image()
    perturb = get_perturbation("bandgain0.1")
    a, _ = perturb(x, L8, "sample-1")
    b, _ = perturb(x, L8, "sample-1")
    c, _ = perturb(x, L8, "sample-2")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    ratio = (a[:7] / x[:7]).reshape(7, -1)
    assert np.allclose(ratio, ratio[:, :1], rtol=1e-5)  # one factor per band
    assert np.all(np.abs(ratio - 1) <= 0.1 + 1e-6) and len(np.unique(ratio[:, 0].round(6))) == 7


def test_band_set_perturbations_drop_the_named_bands() -> None:
    x = image()
    names = [b.name for b in L8]
    for what, gone in (("no_swir", {"B6", "B7"}), ("no_thermal", {"B10"}), ("no_cirrus", {"B9"})):
        y, fed = get_perturbation(what)(x, L8, "s")
        assert set(names) - {b.name for b in fed} == gone, what
        assert np.array_equal(y, x[[names.index(b.name) for b in fed]])
    s2 = sensor_bands("sentinel2_msi", ["B02", "B03", "B04"])
    y, fed = get_perturbation("no_swir")(image(3), s2, "s")
    assert fed == list(s2)  # nothing to drop: the bands as they are
    with pytest.raises(ValueError, match="unknown perturbation 'gain2'"):
        get_perturbation("gain2")
    assert set(PERTURBATIONS) >= {"gain0.8", "gain1.2", "offset+0.02", "no_swir"}


def test_sensor_band_sets_keep_one_band_per_window() -> None:
    s2 = sensor_bands("sentinel2_msi", ["B01", "B02", "B03", "B04", "B05", "B08", "B8A", "B09",
                                        "B10", "B11", "B12"])  # fmt: skip
    _, fed = get_perturbation("tm6")(image(11), s2, "s")
    assert [b.name for b in fed] == ["B02", "B03", "B04", "B08", "B11", "B12"]  # B8 not B8A
    y, fed = get_perturbation("rgbn")(image(11), s2, "s")
    assert [b.name for b in fed] == ["B02", "B03", "B04", "B08"] and y.shape[0] == 4
    l8 = sensor_bands("landsat8_oli_tirs", ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B10"])
    _, fed = get_perturbation("tm6")(image(9), l8, "s")
    # no coastal, pan or thermal band
    assert [b.name for b in fed] == ["B2", "B3", "B4", "B5", "B6", "B7"]
    thermal = sensor_bands("landsat8_oli_tirs", ["B10", "B11"])
    y, fed = get_perturbation("tm6")(image(2), thermal, "s")
    assert fed == list(thermal) and np.array_equal(y, image(2))  # none of the set: left whole


def test_other_sensor_perturbations_feed_that_sensors_bands() -> None:
    l8 = sensor_bands("landsat8_oli_tirs", ["B2", "B3", "B4", "B5", "B6", "B7", "B10"])
    dem = sensor_bands("dem", ["elevation"])
    x = np.concatenate([image(7), image(1)])
    y, fed = get_perturbation("as_tm5")(x, l8 + dem, "s")
    assert [b.name for b in fed] == ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]  # no DEM
    assert fed[0].wavelength == (452, 518) and np.allclose(y[0], x[0])  # TM blue from OLI blue
    _, fed = get_perturbation("as_perusat1")(image(7), l8, "s")
    assert [b.name for b in fed] == ["blue", "green", "red", "nir", "pan"]
    _, fed = get_perturbation("as_etm7")(image(1), dem, "s")
    assert fed == list(dem)  # nothing of ETM+ made from a DEM: left whole


def test_jitter_draws_nothing_when_disabled() -> None:
    x, rng = image(), np.random.default_rng(3)
    assert jitter_radiometry(x, L8, rng, Augmentation()) is x
    assert rng.random() == np.random.default_rng(3).random()


def test_jitter_stays_in_its_ranges_and_spares_thermal() -> None:
    cfg = Augmentation(gain=(0.7, 1.4), band_gain=0.1)
    x, rng = image(), np.random.default_rng(0)
    factors = []
    for _ in range(200):
        y = jitter_radiometry(x, L8, rng, cfg)
        assert np.array_equal(y[7], x[7])
        ratio = (y[:7] / x[:7]).reshape(7, -1)
        assert np.allclose(ratio, ratio[:, :1], rtol=1e-5)
        factors.append(ratio[:, 0])
    f = np.array(factors)
    assert f.min() >= 0.7 * 0.9 - 1e-6 and f.max() <= 1.4 * 1.1 + 1e-6
    assert f.min() < 0.72 and f.max() > 1.4  # the whole range is drawn
    # path radiance: a term that falls with wavelength, the same sign in every band
    cfg = Augmentation(path_radiance=0.05)
    for _ in range(50):
        d = (jitter_radiometry(x, L8, rng, cfg) - x)[:7].mean(axis=(1, 2))
        assert np.all(np.abs(d) <= 0.05 * (443 / 490) ** -4 + 1e-6)
        assert np.all(np.sign(d) == np.sign(d[0]))
        assert abs(d[0]) >= abs(d[5]) - 1e-7  # blue (482 nm) above SWIR-2 (2201 nm)


@pytest.mark.parametrize(
    "augment, message",
    [({"gain": [1.2, 0.8]}, "gain must be"), ({"offset": -0.1}, "offset must be"),
     ({"band_gain": 1.5}, "band_gain must be")],
)  # fmt: skip
def test_jitter_settings_are_checked(tmp_path, augment, message) -> None:
    raw = {"datasets": [{"path": str(tmp_path), "kind": "training"}], "augment": augment}
    with pytest.raises(InputError, match=message):
        parse_config(raw, "recipe.yaml")
