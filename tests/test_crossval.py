"""Cross-validation: scene-grouped folds, each sample scored once, leave-one-dataset-out, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from training_fixtures import tif
from typer.testing import CliRunner

from cloudmask_cli.cli import app
from cloudmask_cli.errors import InputError
from cloudmask_cli.model.checkpoint import read_metadata
from cloudmask_cli.training.adapters import open_dataset
from cloudmask_cli.training.config import parse_config
from cloudmask_cli.training.crossval import (
    CrossValidation,
    all_samples,
    assign_folds,
    cross_validate,
    make_folds,
    max_shift,
    scene_of,
)
from cloudmask_cli.training.sample import write_sample


def dataset(root: Path, ids: list[str], seed: int = 0, size: int = 32) -> Path:
    """Training-format samples with the given ids (4 Sentinel-2 bands, bright = thick cloud)."""
    rng = np.random.default_rng(seed)
    for i, sid in enumerate(ids):
        cloud = rng.random((size, size)) > 0.6
        refl = np.where(cloud, 0.6, 0.08) + rng.normal(0, 0.02, (4, size, size))
        dn = np.clip(refl * 10000, 1, 65535).astype(np.uint16)
        split = "val" if i % 4 == 3 else "train"  # both splits: cross-validation pools them
        write_sample(root / split, sid, dn, cloud.astype(np.uint8), sensor="sentinel2_msi",
                     bands=["B02", "B03", "B04", "B08"], scheme="cloudsen12", scale=[1e-4] * 4,
                     nodata=0)  # fmt: skip
    return root


SCENES_A = [f"forest_{s}_{p}" for s in range(1, 5) for p in range(s)]  # scenes of 1..4 patches
SCENES_B = [f"desert_{s}_{p}" for s in range(1, 4) for p in range(2)]


def recipe(tmp_path: Path) -> dict:
    a = dataset(tmp_path / "a", SCENES_A)
    b = dataset(tmp_path / "b", SCENES_B, seed=1)
    return {
        "datasets": [{"path": str(a), "kind": "training", "name": "a"},
                     {"path": str(b), "kind": "training", "name": "b"}],
        "model": {"preset": "tiny"},
        "crop": 32, "batch_size": 2, "epochs": 1, "steps_per_epoch": 2, "val_batch_size": 4,
        "seed": 7, "device": "cpu", "log_every": 1, "threads": 1,
        "select_on": "last", "selection_fraction": 0.0,
        "optimiser": {"lr": 1e-3, "warmup_start": 1e-4, "warmup_steps": 1, "patience": 1,
                      "plateau_lrs": []},
    }  # fmt: skip


def test_scene_of_groups_patches_tiles_and_georeferenced_chips(tmp_path: Path) -> None:
    dataset(tmp_path / "d", ["forest_12_0", "forest_12_1", "lone"])
    samples = {s.id: s for s in open_dataset("training", tmp_path / "d", "train", {})}
    assert scene_of(samples["forest_12_0"]) == scene_of(samples["forest_12_1"]) == "scene:forest_12"
    assert scene_of(samples["lone"]) == "sample:lone"
    # On Cloud N chips: the 100 km square of their label's centre (one Sentinel-2 tile)
    root = tmp_path / "ocn"
    for chip, x0 in (("aaaa", 500000), ("aaab", 510000), ("aaac", 610000)):
        for b in ("B02", "B03", "B04", "B08"):
            tif(root / "features" / chip / f"{b}.tif", np.full((8, 8), 500, np.uint16))
        label = tif(root / "labels" / f"{chip}.tif", np.zeros((8, 8), np.uint8))
        import rasterio
        from rasterio.transform import from_origin

        with rasterio.open(label, "r+") as ds:
            ds.transform = from_origin(x0, 4_050_000, 10, 10)
    chips = {s.id: scene_of(s) for s in open_dataset("oncloudn", root, None, {})}
    assert chips["aaaa"] == chips["aaab"] != chips["aaac"]
    assert chips["aaaa"].startswith("tile:EPSG:32633:")


def test_folds_keep_scenes_together_and_score_every_sample_once(tmp_path: Path) -> None:
    cfg = parse_config(recipe(tmp_path), "recipe.yaml")
    samples = all_samples(cfg)
    assert {n: len(g) for n, g in samples.items()} == {"a": 10, "b": 6}
    folds = make_folds(samples, k=3, lodo=True)
    assert [f.name for f in folds] == ["fold1", "fold2", "fold3", "without-a", "without-b"]
    kfold = folds[:3]
    for name, group in samples.items():
        tested = [s.id for f in kfold for s in f.test.get(name, [])]
        assert sorted(tested) == sorted(s.id for s in group)  # each sample once
        for f in kfold:
            test = {s.id for s in f.test.get(name, [])}
            train = {s.id for s in f.train[name]}
            assert not test & train and test | train == {s.id for s in group}
            scenes_in = {scene_of(s) for s in f.test.get(name, [])}
            assert not scenes_in & {scene_of(s) for s in f.train[name]}  # no scene straddles
    # the four forest scenes (4, 3, 2, 1 patches) spread by size: 4 | 3 | 2 + 1
    where = assign_folds(samples, 3)
    assert sorted(np.bincount(list(where["a"].values()), minlength=3)) == [1, 1, 2]
    assert where == assign_folds(all_samples(cfg), 3)  # deterministic
    assert folds[3].test == {"a": samples["a"]} and folds[3].train["a"] == []
    with pytest.raises(ValueError, match="at least 2 folds"):
        assign_folds(samples, 1)


def test_cross_validate_end_to_end_and_resume(tmp_path: Path) -> None:
    raw = recipe(tmp_path)
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = tmp_path / "cv"
    result = cross_validate(config, out, k=2, lodo=True, perturbations=["gain0.8", "no_swir"])
    plan = json.loads((out / "folds.json").read_text())
    assert [f["name"] for f in plan] == ["fold1", "fold2", "without-a", "without-b"]
    assert plan[2]["train_samples"] == {"a": 0, "b": 6}
    summary = result.summary["folds"]
    assert set(summary) == {"model", "network", "brightness>0.3"}
    assert set(summary["model"]) == {"clean", "gain0.8", "no_swir"}
    # the same weights without the spectral tests, clean only: the tests never change cloud
    assert set(summary["network"]) == {"clean"}
    for d in ("a", "b"):
        cloud = [summary[w]["clean"][d]["pooled"]["cloud_f1"] for w in ("model", "network")]
        assert cloud[0] == cloud[1]
    pixels = summary["model"]["clean"]["a"]["pixels"]
    assert pixels == 10 * 32 * 32  # every sample of `a` scored once over the folds
    # bright = cloud here: the brightness rule is right, which its score must say
    assert summary["brightness>0.3"]["clean"]["a"]["pooled"]["cloud_f1"] > 0.95
    mean = summary["model"]["clean"]["mean of datasets"]
    assert mean["folds"]["cloud_f1"]["n"] == 2
    lodo = result.summary["lodo"]["model"]["clean"]
    assert set(lodo) == {"a", "b", "mean of datasets"} and lodo["b"]["pixels"] == 6 * 32 * 32
    loaded = CrossValidation.load(out / "crossval.json")
    assert loaded.summary == json.loads(json.dumps(result.summary))
    shift = max_shift(loaded)  # the gain 0.8 only was scored of the gains and offsets
    gained = loaded.summary["folds"]["model"]["gain0.8"]
    for d in ("a", "b"):
        clean = loaded.summary["folds"]["model"]["clean"][d]["pooled"]["cloud_f1"]
        assert shift[d] == pytest.approx(abs(gained[d]["pooled"]["cloud_f1"] - clean))
    # a rerun trains nothing again and scores the same
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*/best.safetensors")}
    again = cross_validate(config, out, k=2, lodo=True, perturbations=["gain0.8", "no_swir"])
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/best.safetensors")} == stamp
    assert json.dumps(again.summary) == json.dumps(result.summary)
    # a perturbation added later is scored on the trained folds; what was scored stays as it was
    scored = {p: p.stat().st_mtime_ns for p in out.glob("*/scores-model.npz")}
    more = cross_validate(config, out, k=2, lodo=True, perturbations=["gain0.8", "gain1.2"])
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/best.safetensors")} == stamp
    assert all(p.stat().st_mtime_ns != t for p, t in scored.items())
    model = more.summary["folds"]["model"]
    assert set(model) == {"clean", "gain0.8", "gain1.2", "no_swir"}
    for cond in ("clean", "gain0.8", "no_swir"):
        assert json.dumps(model[cond]) == json.dumps(result.summary["folds"]["model"][cond])
    # test-time flips asked for later: the same fold weights scored again, nothing retrained
    flipped = cross_validate(config, out, k=2, lodo=True, flips=True,
                             perturbations=["gain0.8", "gain1.2"])  # fmt: skip
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/best.safetensors")} == stamp
    assert sorted(p.parent.name for p in out.glob("*/scores-model+flips.npz")) == [
        "fold1", "fold2", "without-a", "without-b"
    ]  # fmt: skip
    tta = flipped.summary["folds"]["model+flips"]
    assert set(tta) == {"clean"} and tta["clean"]["a"]["pixels"] == pixels
    assert json.dumps(flipped.summary["folds"]["model"]) == json.dumps(model)
    # what a published weights YAML carries of it (weights.publish --crossval)
    from cloudmask_cli.errors import InputError
    from cloudmask_cli.weights.publish import crossval_figures

    figs = crossval_figures(out / "crossval.json")
    assert figs["folds"] == 2 and figs["recipe"] == str(config)
    assert loaded.seed == raw["seed"] and figs["seed"] == raw["seed"]  # which run it was
    row = figs["figures"]["brightness>0.3"]["a"]
    assert row["cloud_f1"] == round(
        100 * summary["brightness>0.3"]["clean"]["a"]["pooled"]["cloud_f1"], 1
    )
    assert row["cloud_f1_folds"]["n"] == 2
    with pytest.raises(InputError, match="not a cross-validation summary"):
        crossval_figures(out / "folds.json")


def test_a_fold_short_of_the_recipe_resumes_from_its_last_state(tmp_path: Path) -> None:
    # best.safetensors is written after every epoch: a fold interrupted mid-training, or
    # trained by a shorter recipe, was scored as if it were done
    raw = recipe(tmp_path)
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    short, out = tmp_path / "short", tmp_path / "cv"
    cross_validate(config, short, k=2)
    for fold in ("fold1", "fold2"):
        (out / fold).mkdir(parents=True)
        for f in (short / fold).glob("*"):  # what the short run left, scores included
            (out / fold / f.name).write_bytes(f.read_bytes())
    longer = tmp_path / "longer.yaml"
    longer.write_text(yaml.safe_dump({**raw, "epochs": 2}), encoding="utf-8")
    resumed = cross_validate(longer, out, k=2)
    fresh = cross_validate(longer, tmp_path / "fresh", k=2)
    for fold in ("fold1", "fold2"):
        state = json.loads((out / fold / "last.state.json").read_text())
        assert state["epoch"] == 2
        # the same weights as a run of the longer recipe from scratch, scored again
        a = (out / fold / "best.safetensors").read_bytes()
        assert a == (tmp_path / "fresh" / fold / "best.safetensors").read_bytes()
        assert a != (short / fold / "best.safetensors").read_bytes()
    assert json.dumps(resumed.summary) == json.dumps(fresh.summary)
    # a fold trained further than the recipe asks is an error, not scored as the recipe
    with pytest.raises(InputError, match="trained 2 epochs, the recipe asks for 1"):
        cross_validate(config, out, k=2)


def test_cli_cross_validation_prints_the_tables(tmp_path: Path) -> None:
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe(tmp_path)), encoding="utf-8")
    res = CliRunner().invoke(app, ["evaluate", "--data", str(config), "--cv", "2",
                                   "--out", str(tmp_path / "cv"), "--cv-perturb", "gain1.2",
                                   "--seed", "11"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "mean of datasets" in res.output and "gain1.2" in res.output
    # --seed: each fold trains the recipe with that seed (recorded in its checkpoint)
    assert recipe(tmp_path)["seed"] != 11
    for fold in ("fold1", "fold2"):
        assert (
            read_metadata(tmp_path / "cv" / fold / "best.safetensors")["training"]["config"]["seed"]
            == 11
        )
    # a comma-separated list is the same as repeated flags
    res = CliRunner().invoke(app, ["evaluate", "--data", str(config), "--cv", "2",
                                   "--out", str(tmp_path / "cv"), "--cv-perturb", "gain1.2,tm6",
                                   "--seed", "11"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "tm6" in res.output
    bad = CliRunner().invoke(app, ["evaluate", "--data", str(config), "--cv", "2",
                                   "--out", str(tmp_path / "cv2"), "--cv-perturb", "gain9"])  # fmt: skip
    assert bad.exit_code != 0 and "unknown perturbation 'gain9'" in bad.output
    assert not (tmp_path / "cv2").exists()  # refused before anything is written


def test_seed_reaches_folds_trained_in_parallel(tmp_path: Path) -> None:
    # with --jobs > 1 each worker reloaded the recipe from its file and trained with the
    # recipe's seed: a "second seed" run repeated the first, checkpoint for checkpoint
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe(tmp_path)), encoding="utf-8")
    res = CliRunner().invoke(app, ["evaluate", "--data", str(config), "--cv", "2", "--jobs", "2",
                                   "--out", str(tmp_path / "cv"), "--seed", "11", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    for fold in ("fold1", "fold2"):
        meta = read_metadata(tmp_path / "cv" / fold / "best.safetensors")
        assert meta["training"]["config"]["seed"] == 11
    assert CrossValidation.load(tmp_path / "cv" / "crossval.json").seed == 11


def test_rules_narrow_training_labels_never_the_scored_ones(tmp_path: Path) -> None:
    # a rule-made water label scored as truth would score the rule, not the model
    from cloudmask_cli.training.loop import load_splits
    from cloudmask_cli.training.rules import RuledSample

    raw = recipe(tmp_path)
    raw["datasets"][0]["rules"] = ["water"]
    cfg = parse_config(raw, "recipe.yaml")
    samples = all_samples(cfg)
    assert not any(isinstance(s, RuledSample) for g in samples.values() for s in g)
    train, val, _ = load_splits(cfg)
    assert all(isinstance(s, RuledSample) for s in train[0]) and train[0]
    assert val[0][1] and not any(isinstance(s, RuledSample) for s in val[0][1])
    assert [s.id for s in cfg.datasets[0].narrow(samples["a"])] == [s.id for s in samples["a"]]


def test_no_cloud_figure_where_no_label_says_cloud() -> None:
    # Sen1Floods11's "not water" allows cloud: every cloud call on it would be a true positive
    from cloudmask_cli.training.crossval import _figures
    from cloudmask_cli.training.labels import bits_of
    from cloudmask_cli.training.metrics import Scores

    not_water = bits_of(("land", "snow", "thin_cloud", "thick_cloud", "cloud_shadow"))
    water, thick = bits_of(("water",)), bits_of(("thick_cloud",))
    s = Scores()
    s.update_bits(
        np.array([thick, thick, water], np.uint8), np.array([not_water, not_water, water], np.uint8)
    )
    fig = _figures(s)
    assert fig["cloud_f1"] is None and fig["invalid_f1"] is None
    assert fig["water_recall"] == 1.0 and fig["water_precision"] == 1.0
    s.update_bits(np.array([thick], np.uint8), np.array([thick], np.uint8))
    assert _figures(s)["cloud_f1"] == 1.0
