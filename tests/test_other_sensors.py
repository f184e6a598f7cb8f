"""Bands of another sensor made from a sample's own (training.other_sensors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cloudmask_cli.training.adapters.common import sensor_bands
from cloudmask_cli.training.other_sensors import (
    OtherSensors,
    as_sensor,
    band_weights,
    bundled_bands,
)

S2 = sensor_bands("sentinel2_msi", ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08",
                                    "B8A", "B09", "B10", "B11", "B12"])  # fmt: skip
L8 = sensor_bands("landsat8_oli_tirs", ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9",
                                        "B10", "B11"])  # fmt: skip
ETM = bundled_bands("landsat7_etm")
TM5 = bundled_bands("landsat5_tm")
PER1 = bundled_bands("perusat1_naomi")


def flat_spectrum(bands, value: float = 0.3, bt: float = 290.0) -> np.ndarray:
    return np.stack([np.full((4, 4), bt if b.type == "brightness_temperature" else value,
                             np.float32) for b in bands])  # fmt: skip


def test_weights_split_the_window_by_source_edges() -> None:
    nir = next(b for b in ETM if b.name == "B4")  # 772-898 nm
    w = band_weights(S2, nir)
    assert w is not None and w.sum() == pytest.approx(1.0)
    used = {S2[i].name for i in np.flatnonzero(w)}
    assert used <= {"B07", "B08", "B8A"} and "B08" in used
    # a target window that is exactly a source band's takes that band alone
    blue = band_weights(L8, next(b for b in L8 if b.name == "B2"))
    assert blue is not None and blue[1] == pytest.approx(1.0)
    # panchromatic sources are never used; thermal only from thermal
    assert band_weights(L8, next(b for b in ETM if b.name == "B1"))[7] == 0  # type: ignore[index]
    therm = band_weights(L8, next(b for b in ETM if b.name == "B6_VCID_1"))
    assert therm is not None and {L8[i].name for i in np.flatnonzero(therm)} == {"B10", "B11"}


def test_bands_the_sources_do_not_cover_are_not_made() -> None:
    # Sentinel-2 has no thermal band; four visible/NIR bands make no SWIR
    _, made = as_sensor(flat_spectrum(S2), S2, TM5)
    assert [b.name for b in made] == ["B1", "B2", "B3", "B4", "B5", "B7"]
    rgbn = sensor_bands("sentinel2_msi", ["B02", "B03", "B04", "B08"])
    _, made = as_sensor(flat_spectrum(rgbn), rgbn, ETM)
    assert [b.name for b in made] == ["B1", "B2", "B3", "B4", "B8"]
    # nothing makeable: the input as it was
    sar = sensor_bands("sentinel1_sar", ["VV", "VH"])
    x = flat_spectrum(sar)
    y, made = as_sensor(x, sar, ETM)
    assert y is x and list(made) == list(sar)


def test_a_flat_spectrum_stays_flat_and_a_slope_is_averaged_over_the_window() -> None:
    y, made = as_sensor(flat_spectrum(L8), L8, ETM)
    assert {b.name for b in made} == {b.name for b in ETM}  # thermal from B10/B11, pan from B2-B5
    refl = [i for i, b in enumerate(made) if b.type == "reflectance"]
    assert np.allclose(y[refl], 0.3) and np.allclose(y[[made.index(b) for b in made
                                                         if b.type != "reflectance"]], 290.0)  # fmt: skip
    # reflectance rising with wavelength: each made band lies between its sources' values
    centre = np.array([sum(b.wavelength) / 2 if b.wavelength else 0 for b in S2])
    x = np.stack([np.full((2, 2), c / 3000, np.float32) for c in centre])
    y, made = as_sensor(x, S2, PER1)
    assert [b.name for b in made] == ["blue", "green", "red", "nir", "pan"]
    assert np.all(np.diff(y[:4, 0, 0]) > 0)
    b08 = centre[[b.name for b in S2].index("B08")]
    assert y[3, 0, 0] == pytest.approx(b08 / 3000, rel=0.05)  # PerúSat-1's NIR: mostly B08


def test_no_data_stays_no_data_and_sar_passes_through() -> None:
    sar = sensor_bands("sentinel1_sar", ["VV", "VH"])
    bands = list(L8) + list(sar)
    x = flat_spectrum(bands)
    x[1, 0, 0] = np.nan  # blue missing at one pixel
    y, made = as_sensor(x, bands, ETM)
    assert [b.name for b in made[-2:]] == ["VV", "VH"] and np.array_equal(y[-2:], x[-2:])
    blue = [b.name for b in made].index("B1")
    assert np.isnan(y[blue, 0, 0]) and np.isfinite(y[blue, 1:]).all()


def test_settings_are_checked_and_draw_nothing_when_off() -> None:
    with pytest.raises(ValueError, match="unknown sensor 'landsat3'"):
        OtherSensors(p=0.5, sensors=("landsat3",))
    with pytest.raises(ValueError, match="p must be in"):
        OtherSensors(p=2.0)
    rng = np.random.default_rng(5)
    assert OtherSensors().draw(rng) is None
    assert rng.random() == np.random.default_rng(5).random()  # the stream untouched
    always = OtherSensors(p=1.0, sensors=("perusat1_naomi",))
    assert always.draw(np.random.default_rng(0)) == PER1


def _sample(root: Path):
    """A 32 px Landsat 8 sample (Biome codes): clear but a cloud square, 8 bands."""
    from cloudmask_cli.training.sample import read_sample_meta, write_sample

    names = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B10"]
    dn = np.full((8, 32, 32), 2000, np.uint16)
    dn[7] = 29000  # ~290 K at the scale below
    label = np.full((32, 32), 128, np.uint8)
    label[8:16, 8:16] = 255
    meta = write_sample(root, "l8", dn, label, sensor="landsat8_oli_tirs", bands=names,
                        scheme="biome", scale=[1e-4] * 7 + [1e-2])  # fmt: skip
    return read_sample_meta(meta)


def test_training_crops_fed_as_another_sensor(tmp_path: Path) -> None:
    from cloudmask_cli.descriptors import descriptor
    from cloudmask_cli.training.augment import BandSampling
    from cloudmask_cli.training.datasets import TrainingDataset

    sample = _sample(tmp_path)
    whole = BandSampling(enabled=False)
    plain = TrainingDataset([sample], crop=16, bands=whole, seed=4)
    off = TrainingDataset([sample], crop=16, bands=whole, seed=4, other_sensors=OtherSensors())
    etm = TrainingDataset([sample], crop=16, bands=whole, seed=4,
                          other_sensors=OtherSensors(p=1.0, sensors=("landsat7_etm",)))  # fmt: skip
    for d in range(4):
        a, b, c = plain[(d, 0)], off[(d, 0)], etm[(d, 0)]
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["possible"], b["possible"])
        want = np.stack([descriptor(t.type, t.wavelength) for t in ETM])
        assert np.allclose(c["descriptors"].numpy(), want)  # all nine ETM+ bands, as ETM+
        assert torch.allclose(c["x"][0], torch.tensor(0.2)) and torch.allclose(
            c["x"][5], torch.tensor(290.0)
        )
