"""The on-disk training format, the datasets built on it, band sampling, augmentation, collate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from training_fixtures import training_set

from cloudmask_cli.errors import InputError
from cloudmask_cli.sensors import get_sensor
from cloudmask_cli.training.augment import Augmentation, BandSampling, augment, choose_bands
from cloudmask_cli.training.datasets import (
    MixedSampler,
    SampleCache,
    TrainingDataset,
    ValidationDataset,
    collate,
)
from cloudmask_cli.training.sample import load_stored, read_sample_meta, write_sample


@pytest.mark.parametrize("fmt", ["tif", "npz"])
def test_write_and_read_a_sample(tmp_path: Path, fmt: str) -> None:
    dn = np.array([[[0, 1000], [2000, 3000]], [[5, 6], [7, 8]]], dtype=np.uint16)
    label = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    meta = write_sample(tmp_path, "s1", dn, label, sensor="sentinel2_msi", bands=["B04", "B8A"],
                        scheme="cloudsen12", fmt=fmt, scale=[1e-4, 1e-4], offset=[-0.1, 0], nodata=0)  # fmt: skip
    sample = read_sample_meta(meta)
    assert sample.shape == (2, 2) and [b.name for b in sample.bands] == ["B04", "B8A"]
    x, lab = sample.read()
    assert (
        np.isnan(x[0, 0, 0])
        and x[0, 0, 1] == pytest.approx(0.0, abs=1e-6)
        and x[0, 1, 1] == pytest.approx(0.2)
    )
    np.testing.assert_array_equal(lab, label)
    x, lab = sample.read((1, 0, 1, 2), [1])
    assert x.shape == (1, 1, 2) and x[0, 0, 1] == pytest.approx(8e-4)


def test_inline_sensor_and_errors(tmp_path: Path) -> None:
    sensor = get_sensor("sentinel2_msi")
    from cloudmask_cli.sensors import Sensor

    custom = Sensor(name="my-cam", bands=(sensor.band("B02"), get_sensor("dem").band("elevation")))
    meta = write_sample(tmp_path, "c", np.zeros((2, 4, 4), np.float32), np.zeros((4, 4), np.uint8),
                        sensor=custom, bands=["B02", "elevation"], scheme="cloudsen12")  # fmt: skip
    doc = yaml.safe_load(meta.read_text())
    assert doc["sensor"]["name"] == "my-cam" and doc["sensor"]["bands"][1]["type"] == "dem"
    assert [b.type for b in read_sample_meta(meta).bands] == ["reflectance", "dem"]
    doc["bands"] = ["B02", "nope"]
    meta.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match="no band 'nope'"):
        read_sample_meta(meta)
    with pytest.raises(InputError, match="no such training data folder"):
        load_stored(tmp_path, "val")


def test_band_sampling_keeps_at_least_one_band() -> None:
    s2 = get_sensor("sentinel2_msi").bands[:4]
    aux = (get_sensor("sentinel1_sar").band("VV"), get_sensor("dem").band("elevation"))
    bands = s2 + aux
    rng = np.random.default_rng(1)
    cfg = BandSampling(min_bands=2, keep_all=0.0, sar_dropout=1.0, dem_dropout=0.0)
    for _ in range(50):
        idx = choose_bands(bands, rng, cfg)
        optical = [i for i in idx if i < 4]
        assert len(optical) >= 2 and 4 not in idx and 5 in idx
    only_sar = (aux[0],)
    assert choose_bands(only_sar, rng, BandSampling(sar_dropout=1.0)) == [0]
    assert choose_bands(bands, rng, BandSampling(enabled=False)) == list(range(6))


def test_augment_moves_image_and_label_together() -> None:
    bands = get_sensor("landsat8_oli_tirs").bands
    x = np.stack([np.arange(16, dtype=np.float32).reshape(4, 4), np.full((4, 4), 280, np.float32)])
    bits = np.arange(16, dtype=np.uint8).reshape(4, 4)
    for seed in range(8):
        y, b = augment(
            x.copy(),
            bits.copy(),
            [bands[3], bands[9]],
            np.random.default_rng(seed),
            Augmentation(brightness=0.2),
        )
        factor = y[0][b == 5][0] / 5.0
        np.testing.assert_allclose(y[0], b.astype(np.float32) * factor, rtol=1e-6)  # same geometry
        assert 0.8 <= factor <= 1.2 and (y[1] == 280).all()  # thermal untouched


def test_training_dataset_and_collate(tmp_path: Path) -> None:
    samples = load_stored(training_set(tmp_path / "d", size=20), "train")
    ds = TrainingDataset(samples, crop=24, bands=BandSampling(keep_all=0.0), seed=3)
    a, b = ds[(7, 1)], ds[(7, 1)]
    assert torch.equal(torch.nan_to_num(a["x"]), torch.nan_to_num(b["x"]))  # deterministic per draw
    assert (
        a["possible"].shape == (7, 24, 24) and not a["possible"][:, 20:, :].any()
    )  # padding unlabelled
    items = [ds[(i, i % 4)] for i in range(6)]
    batch = collate(items)
    n = max(it["x"].shape[0] for it in items)
    assert batch["x"].shape == (6, n, 24, 24) and batch["band_mask"].sum(1).tolist() == [
        it["x"].shape[0] for it in items
    ]
    assert (batch["descriptors"][~batch["band_mask"]] == 0).all()
    val = ValidationDataset(load_stored(tmp_path / "d", "val"), crop=16)
    assert len(val) == 2 * 4  # 20 px tiled by 16 px windows (clamped): 2 x 2 per sample
    item = val[0]
    assert item["x"].shape[0] == 4 and item["possible"].any(0).all()


def test_crops_from_the_sample_cache_are_the_crops_read_from_disk(tmp_path: Path) -> None:
    samples = load_stored(training_set(tmp_path / "d", size=40), "train")
    cached = TrainingDataset(samples, crop=24, bands=BandSampling(keep_all=0.3), seed=5)
    read = TrainingDataset(samples, crop=24, bands=BandSampling(keep_all=0.3), seed=5)
    read.cache = SampleCache(budget=0)  # nothing fits: every crop is read from its file
    for key in [(i, i % len(samples)) for i in range(24)] + [(3, 1), (3, 1)]:
        a, b = cached[key], read[key]
        for k in ("x", "descriptors", "possible"):
            assert torch.equal(torch.nan_to_num(a[k]), torch.nan_to_num(b[k])), (key, k)
    # every sample is held (40 x 40 px, 13 bands: well inside the default budget)
    assert all(v is not None for v in cached.cache._held.values())
    assert len(cached.cache._held) == len(samples)
    assert all(v is None for v in read.cache._held.values())


def test_mixed_sampler_weights_and_sharding() -> None:
    s = MixedSampler([10, 1000], [3.0, 1.0], draws_per_epoch=4000, seed=0)
    s.set_epoch(2)
    keys = list(s)
    first = sum(1 for _, i in keys if i < 10) / len(keys)
    assert 0.7 < first < 0.8
    assert keys == list(s) and keys != s.keys(3)
    ranks = [MixedSampler([10, 1000], [3.0, 1.0], 4000, 0, r, 2).keys(2) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(keys)
    s.set_epoch(2, start=10)
    assert list(s) == keys[10:]


def _lake_sample(root: Path):
    """A 64 px Sentinel-2 sample (SCL codes): vegetation with an 8 px lake in one corner."""
    label = np.full((64, 64), 4, np.uint8)
    label[52:60, 52:60] = 6
    dn = np.full((4, 64, 64), 800, np.uint16)
    meta = write_sample(root, "lake", dn, label, sensor="sentinel2_msi",
                        bands=["B02", "B03", "B04", "B08"], scheme="scl", scale=[1e-4] * 4)  # fmt: skip
    return read_sample_meta(meta)


def test_focused_crops_hold_the_rare_class(tmp_path: Path) -> None:
    from cloudmask_cli.classes import CLASSES
    from cloudmask_cli.training.augment import CropFocus

    water = CLASSES.index("water")
    sample = _lake_sample(tmp_path)
    plain = TrainingDataset([sample], crop=16, bands=BandSampling(enabled=False), seed=2)
    focused = TrainingDataset([sample], crop=16, bands=BandSampling(enabled=False), seed=2,
                              focus=CropFocus(p=1.0, classes=("water",)))  # fmt: skip
    draws = range(40)
    seen = [bool(plain[(d, 0)]["possible"][water].any()) for d in draws]
    assert sum(seen) < 20  # a uniform 16 px crop of 64 px rarely reaches the 8 px lake
    for d in draws:
        possible = focused[(d, 0)]["possible"]
        assert possible[water].sum() >= 8 * 8 // 4  # centred on a lake pixel: a quarter or more
    # off, the crops are those of a dataset built without it (no extra random draw)
    off = TrainingDataset([sample], crop=16, bands=BandSampling(enabled=False), seed=2,
                          focus=CropFocus(p=0.0))  # fmt: skip
    for d in range(5):
        assert torch.equal(off[(d, 0)]["possible"], plain[(d, 0)]["possible"])


def test_focus_without_the_class_places_crops_uniformly(tmp_path: Path) -> None:
    from cloudmask_cli.training.augment import CropFocus

    sample = _lake_sample(tmp_path)
    ds = TrainingDataset([sample], crop=16, bands=BandSampling(enabled=False), seed=2,
                         focus=CropFocus(p=1.0, classes=("snow",)))  # fmt: skip
    items = [ds[(d, 0)] for d in range(6)]  # no snow anywhere: no crash, ordinary crops
    assert all(it["possible"].shape == (7, 16, 16) for it in items)


def test_focus_config_section() -> None:
    from cloudmask_cli.training.config import parse_config

    base = {"datasets": [{"name": "a", "kind": "training", "path": "."}]}
    cfg = parse_config({**base, "focus": {"p": 0.5, "classes": ["water"]}})
    assert cfg.focus.p == 0.5 and cfg.focus.classes == ("water",)
    assert parse_config(base).focus.p == 0.0
    with pytest.raises(InputError, match="focus: p must be in"):
        parse_config({**base, "focus": {"p": 1.5}})
    with pytest.raises(InputError, match="focus: classes: unknown"):
        parse_config({**base, "focus": {"classes": ["lake"]}})
    with pytest.raises(InputError, match="unknown key"):
        parse_config({**base, "focus": {"q": 1}})


def _ramp_sample(root: Path):
    """A 128 px Sentinel-2 sample whose B02 rises by 0.001 per column; SCL land on the left
    half, water on the right."""
    label = np.full((128, 128), 4, np.uint8)
    label[:, 64:] = 6
    dn = np.broadcast_to(np.arange(128, dtype=np.uint16) * 10 + 500, (1, 128, 128)).copy()
    meta = write_sample(root, "ramp", dn, label, sensor="sentinel2_msi", bands=["B02"],
                        scheme="scl", scale=[1e-4])  # fmt: skip
    return read_sample_meta(meta)


def test_scale_augmentation_changes_the_ground_sampling_distance(tmp_path: Path) -> None:
    from cloudmask_cli.classes import CLASSES
    from cloudmask_cli.training.augment import Augmentation

    sample = _ramp_sample(tmp_path)
    still = Augmentation(flips=False, rotations=False)
    coarse = Augmentation(flips=False, rotations=False, scale=(2.0, 2.0))
    fine = Augmentation(flips=False, rotations=False, scale=(0.5, 0.5))
    off = TrainingDataset([sample], crop=32, bands=BandSampling(enabled=False), aug=still, seed=1)
    for d in range(6):
        x = off[(d, 0)]["x"][0].numpy()
        assert np.allclose(np.diff(x, axis=1), 0.001, atol=1e-6)  # native: 1 column a pixel
        # 2x coarser: each pixel the mean of 2 x 2 (a step of two columns), 64 columns seen
        item = TrainingDataset([sample], crop=32, bands=BandSampling(enabled=False),
                               aug=coarse, seed=1)[(d, 0)]  # fmt: skip
        x = item["x"][0].numpy()
        assert item["x"].shape == (1, 32, 32)
        assert np.allclose(np.diff(x, axis=1), 0.002, atol=1e-6)
        # labels follow the pixels: each pixel labelled as one of the two columns it covers
        col0 = round((x[0, 0] - 0.05) / 0.001 - 0.5)
        got = item["possible"][CLASSES.index("water"), 0].numpy()
        first, second = np.arange(32) * 2 + col0 >= 64, np.arange(32) * 2 + col0 + 1 >= 64
        assert ((got == first) | (got == second)).all()
        # 2x finer: 16 columns seen over 32 pixels
        x = TrainingDataset([sample], crop=32, bands=BandSampling(enabled=False), aug=fine,
                            seed=1)[(d, 0)]["x"][0].numpy()  # fmt: skip
        assert 0.014 < x[0].max() - x[0].min() < 0.016


def test_resample_keeps_no_data_and_label_sets() -> None:
    from cloudmask_cli.training.augment import resample

    x = np.ones((2, 8, 8), np.float32)
    x[:, :, :4] = np.nan  # the left half no data
    x[1, :, 4:6] = 3.0
    bits = np.zeros((8, 8), np.uint8)
    bits[:, 4:] = 0b0000101
    y, b = resample(x, bits, 4)
    assert np.isnan(y[:, :, :2]).all() and np.isfinite(y[:, :, 2:]).all()
    assert np.allclose(y[1, :, 2], 3.0) and np.allclose(y[0, :, 2:], 1.0)
    assert (b[:, 2:] == 0b0000101).all() and (b[:, :2] == 0).all()
    up, ub = resample(x, bits, 16)
    assert up.shape == (2, 16, 16) and ub.shape == (16, 16)
    assert np.isnan(up[:, :, :7]).all() and np.isfinite(up[:, :, 9:]).all()


def test_scale_config_is_checked() -> None:
    from cloudmask_cli.errors import InputError
    from cloudmask_cli.training.config import parse_config

    base = {"datasets": [{"name": "a", "kind": "training", "path": "."}]}
    assert parse_config({**base, "augment": {"scale": [0.5, 2]}}).augment.scale == (0.5, 2.0)
    with pytest.raises(InputError, match="scale must be"):
        parse_config({**base, "augment": {"scale": [2, 0.5]}})
