"""A weak teacher (ukis-csmask) narrows partial labels: never widens, never overrules a label."""

from __future__ import annotations

import copy
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.errors import InputError
from cloudmask_cli.training.config import DatasetSpec, parse_config
from cloudmask_cli.training.labels import ALL_BITS, CLOUD_BITS, bits_of, classes_of, load_scheme
from cloudmask_cli.training.sample import read_sample_meta, write_sample
from cloudmask_cli.training.teacher import (
    _CALLS,
    TaughtSample,
    Teacher,
    apply_calls,
    decided,
    narrow_by_teacher,
    teacher_calls,
)

pytest.importorskip("ukis_csmask")

CLEAR = ["land", "water", "snow", "cloud_shadow"]  # Biome's partial clear, On Cloud N's not-cloud
NOT_SHADOW = {"land", "water", "snow"}


def probs(*rows: dict[str, float]) -> np.ndarray:
    """``[7, 1, n]`` class probabilities, one pixel per mapping (the rest of 1 on no class)."""
    out = np.zeros((len(CLASSES), 1, len(rows)), np.float32)
    for j, row in enumerate(rows):
        for name, p in row.items():
            out[CLASSES.index(name), 0, j] = p
    return out


def sets(*classes: list[str]) -> np.ndarray:
    return np.array([[bits_of(c) for c in classes]], dtype=np.uint8)


def as_classes(bits: np.ndarray) -> list[set[str]]:
    return [set(classes_of(int(b))) for b in bits.ravel()]


def test_a_confident_clear_call_removes_only_the_shadow_a_clear_set_allows() -> None:
    p = probs(
        {"land": 0.95, "cloud_shadow": 0.05},  # confident clear
        {"land": 0.85, "cloud_shadow": 0.15},  # below the threshold
        {"land": 0.5, "water": 0.45, "cloud_shadow": 0.05},  # clear is land + water + snow
        {"land": 0.99},  # on a decided shadow: never overruled
        {"land": 0.99},  # on a cloud set (On Cloud N's cloud): empty intersection
        {"land": 0.99},  # on a set allowing cloud: keeps its cloud classes
        {"cloud_shadow": 0.99},  # a shadow call: not trusted by default
        {"land": 0.99},  # on an unlabelled pixel
    )
    labels = sets(
        CLEAR, CLEAR, CLEAR, ["cloud_shadow"], ["thin_cloud", "thick_cloud"],
        ["land", "water", "thin_cloud"], CLEAR, [],
    )  # fmt: skip
    out = narrow_by_teacher(labels, p)
    assert as_classes(out) == [
        NOT_SHADOW, set(CLEAR), NOT_SHADOW, {"cloud_shadow"}, {"thin_cloud", "thick_cloud"},
        {"land", "water", "thin_cloud"}, set(CLEAR), set(),
    ]  # fmt: skip
    assert labels[0, 0] == bits_of(CLEAR)  # not modified in place
    assert as_classes(narrow_by_teacher(labels, p, threshold=0.8))[1] == NOT_SHADOW
    # trusting shadow: the shadow call narrows to shadow; over_cloud: a clear call rules out cloud
    assert as_classes(narrow_by_teacher(labels, p, trust=("shadow",)))[6] == {"cloud_shadow"}
    assert as_classes(narrow_by_teacher(labels, p, over_cloud=True))[5] == {"land", "water"}
    valid = np.array([[False] + [True] * 7])
    assert as_classes(narrow_by_teacher(labels, p, valid=valid))[0] == set(CLEAR)


def test_narrowing_never_widens_empties_or_touches_decided_labels() -> None:
    rng = np.random.default_rng(0)
    every = np.arange(ALL_BITS + 1, dtype=np.uint8)
    bits = np.tile(every, 40)[None]  # every set, under 40 random (often confident) teachers
    logits = rng.normal(0, 4, (len(CLASSES), *bits.shape))
    p = np.exp(logits) / np.exp(logits).sum(axis=0)
    for trust in (("clear",), ("clear", "cloud", "shadow")):
        for over_cloud in (False, True):
            out = narrow_by_teacher(bits, p, 0.6, trust, over_cloud)
            assert not (out & ~bits).any()  # a subset
            assert np.array_equal(out == 0, bits == 0)  # never emptied, never filled
            single = (bits & (bits - 1)) == 0
            assert np.array_equal(out[single], bits[single])
            if not over_cloud:
                assert np.array_equal(out & CLOUD_BITS, bits & CLOUD_BITS)
            assert (out != bits).any()
    default = narrow_by_teacher(bits, p, 0.6)
    changed = default != bits
    assert ((bits[changed] & ~default[changed]) == bits_of(["cloud_shadow"])).all()


def test_calls_need_the_threshold_and_trust() -> None:
    p = probs({"thick_cloud": 0.6, "thin_cloud": 0.35}, {"land": 0.9}, {"cloud_shadow": 0.92})
    calls = teacher_calls(p, 0.9, ("clear", "cloud", "shadow"))
    no_data = bits_of(["no_data"])
    assert calls.tolist() == [[CLOUD_BITS | no_data, bits_of(NOT_SHADOW) | no_data,
                               bits_of(["cloud_shadow"]) | no_data]]  # fmt: skip
    assert teacher_calls(p, 0.91, ("clear", "cloud")).tolist() == [[CLOUD_BITS | no_data, 0, 0]]
    # a call never opens a set beyond what it allows, nor touches sets with no call
    assert apply_calls(sets(CLEAR), np.zeros((1, 1), np.uint8)).tolist() == [[bits_of(CLEAR)]]
    assert decided(bits_of(["cloud_shadow"])) == "shadow"
    assert decided(bits_of(["land", "water", "snow"])) == "clear"
    assert decided(bits_of(CLEAR)) is None and decided(bits_of(["thick_cloud"])) is None
    assert decided(bits_of(["no_data"])) is None


def test_config_teacher_is_validated() -> None:
    def cfg(teacher: object) -> dict:
        return {"datasets": [{"path": "x", "teacher": teacher}]}

    spec = parse_config(cfg({"peer": "ukis-csmask"}), "cfg.yaml").datasets[0]
    assert spec.teacher == {
        "peer": "ukis-csmask", "threshold": 0.9, "trust": ["clear"], "over_cloud": False
    }  # fmt: skip
    assert parse_config({"datasets": [{"path": "x"}]}, "cfg.yaml").datasets[0].teacher is None
    bad = {
        "unknown teacher peer 's2cloudless'": {"peer": "s2cloudless"},
        r"threshold must be in \(0.5, 1\], got 0.5": {"threshold": 0.5},
        r"threshold must be in \(0.5, 1\], got 1.2": {"threshold": 1.2},
        "threshold must be": {"threshold": "high"},
        r"unknown trust name\(s\) \['water'\]": {"trust": ["clear", "water"]},
        "trust must list": {"trust": "clear"},
        r"unknown key\(s\) \['thresh'\]": {"thresh": 0.9},
        "must be a mapping": "ukis-csmask",
    }
    for message, teacher in bad.items():
        with pytest.raises(InputError, match=rf"^cfg.yaml: datasets\[0\].teacher: {message}"):
            parse_config(cfg(teacher), "cfg.yaml")


def test_config_teacher_without_the_extra_says_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ukis_csmask", None)  # as when it is not installed
    with pytest.raises(InputError) as err:
        parse_config({"datasets": [{"path": "x", "teacher": {}}]}, "cfg.yaml")
    text = str(err.value)
    assert text.startswith("cfg.yaml: datasets[0].teacher: ukis-csmask is not installed")
    assert "pip install cloudmask[peers]" in text and "\n" not in text


# Landsat 8 TOA spectra (blue green red NIR SWIR1 SWIR2), as in tests/test_training_rules.py
L8_NAMES = ["B2", "B3", "B4", "B5", "B6", "B7"]
WATER = [0.117, 0.064, 0.038, 0.016, 0.003, 0.002]
VEGETATION = [0.09, 0.08, 0.05, 0.30, 0.15, 0.07]


def scene(tmp_path: Path, names: list[str] = L8_NAMES) -> Path:
    """A 32 x 32 Biome-like sample, all partial clear: water on the left, vegetation right."""
    x = np.empty((len(names), 32, 32), np.float32)
    x[:, :, :16] = np.array(WATER[: len(names)])[:, None, None]
    x[:, :, 16:] = np.array(VEGETATION[: len(names)])[:, None, None]
    label = np.full((32, 32), 128, np.uint8)
    return write_sample(
        tmp_path, "Water_00_0001", x, label, sensor="landsat8_oli_tirs", bands=names,
        scheme="biome", fmt="npz",
    )  # fmt: skip


def test_prepare_names_the_dataset_and_sample_the_teacher_cannot_run_on(tmp_path: Path) -> None:
    raw = read_sample_meta(scene(tmp_path, L8_NAMES[:3]))  # no NIR
    spec = DatasetSpec(str(tmp_path), name="mine", teacher={"peer": "ukis-csmask"})
    with pytest.raises(InputError) as err:
        spec.prepare([raw])
    text = str(err.value)
    assert text.startswith("dataset mine, sample Water_00_0001: teacher ukis-csmask cannot run")
    assert "nir (750-1000 nm)" in text and "\n" not in text


def test_rules_then_teacher_and_the_entry_point(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    raw = read_sample_meta(scene(tmp_path))
    spec = DatasetSpec(str(tmp_path), name="mine", rules=("water",), teacher={})
    (taught,) = spec.prepare([raw])
    assert isinstance(taught, TaughtSample) and taught.scheme == "bits"
    assert (taught.id, taught.bands, taught.shape) == (raw.id, raw.bands, (32, 32))
    before = len(_CALLS)
    image, label = taught.read(None, [0, 3])
    assert np.allclose(image, raw.read(None, [0, 3])[0])
    # the rule decided the water ({water}: untouched); the rest is clear, possibly less shadow
    assert (label[:, :16] == bits_of(["water"])).all()
    assert set(np.unique(label[:, 16:]).tolist()) <= {bits_of(CLEAR), bits_of(NOT_SHADOW)}
    crop = taught.read((5, 10, 20, 20), [])[1]  # sliced from the cached calls: no second run
    assert np.array_equal(crop, label[5:25, 10:30]) and len(_CALLS) == before + 1
    past = taught.read((20, 20, 20, 20), [])[1]  # a .npz read stops at the edge
    assert np.array_equal(past, label[20:, 20:])
    for clone in (copy.copy(taught), pickle.loads(pickle.dumps(taught))):  # DataLoader workers
        assert np.array_equal(clone.read()[1], label)
    from conftest import benchmark_script

    main = benchmark_script("quality/teacher_shares").main
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "biome" in out and "clear" in out and "no labels here decide" in out
    assert main([str(tmp_path), "--threshold", "0.4"]) == 2


# -- the real labels beside the repository -----------------------------------------------------
@pytest.mark.realdata
def test_real_biome_patch_is_only_narrowed(shared_data: Path) -> None:
    from conftest import require

    from cloudmask_cli.training.adapters import open_dataset

    root = require(shared_data / "labelled/landsat8-biome-patches")
    (patch,) = [s for s in open_dataset("biome-patches", root, "train") if s.id == "Barren_00_0214"]
    assert patch.scheme == "biome"  # shadows not annotated: its clear may be shadow
    taught = TaughtSample(patch, Teacher(), "biome")
    before = load_scheme(patch.scheme).bits(patch.read(None, [])[1], patch.id)
    after = taught.read(None, [])[1]
    assert not (after & ~before).any() and np.array_equal(after == 0, before == 0)
    narrowed = after != before
    assert narrowed.mean() > 0.1  # clear desert: most of it confidently clear
    assert (after[narrowed] == bits_of(NOT_SHADOW)).all()
