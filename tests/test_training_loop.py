"""`cloudmask train`: a tiny run lowers the loss, --resume is exact, DDP (gloo) runs, CLI works."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import yaml
from training_fixtures import training_set
from typer.testing import CliRunner

from cloudmask_cli.cli import app
from cloudmask_cli.errors import InputError
from cloudmask_cli.model.checkpoint import load_checkpoint
from cloudmask_cli.training.config import load_config, parse_config
from cloudmask_cli.training.loop import train

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parents[1]


def tiny_config(data: Path, **over: object) -> dict:
    cfg = {
        "datasets": [{"path": str(data), "kind": "training", "name": "synthetic"}],
        "model": {"preset": "tiny"},
        "crop": 32, "batch_size": 2, "epochs": 2, "steps_per_epoch": 3, "val_batch_size": 4,
        "seed": 7, "device": "cpu", "log_every": 1,
        "augment": {"brightness": 0.1},
        "optimiser": {"lr": 1e-3, "warmup_start": 1e-4, "warmup_steps": 2, "patience": 1,
                      "plateau_lrs": [5e-4, 1e-4]},
    }  # fmt: skip
    cfg.update(over)
    return cfg


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path))


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_gives_the_same_state_bitwise(tmp_path: Path, ema: float) -> None:
    data = training_set(tmp_path / "data")
    cfg = parse_config(tiny_config(data, ema=ema), "tiny.yaml")
    straight = train(cfg, out=tmp_path / "straight")
    assert straight.steps == 6 and straight.epochs == 2
    first = train(cfg, out=tmp_path / "split", max_steps=2)  # stops mid-epoch 0
    assert first.steps == 2 and first.epochs == 0
    state = json.loads((tmp_path / "split" / "last.state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"]) == (0, 2)
    resumed = train(cfg, out=tmp_path / "split", resume=tmp_path / "split" / "last.safetensors")
    assert resumed.steps == 6
    for name in ("last.safetensors", "last.state.safetensors"):
        a, b = tensors(tmp_path / "straight" / name), tensors(tmp_path / "split" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}: {k} differs after resume"
    sa = json.loads((tmp_path / "straight" / "last.state.json").read_text())
    assert (
        sa["schedule"]
        == json.loads((tmp_path / "split" / "last.state.json").read_text())["schedule"]
    )
    losses = [r["loss"] for r in straight.history if r["type"] == "step"]
    log = [
        json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["loss"] for r in log if r["type"] == "step"] == losses  # the same steps, once each
    meta = yaml.safe_load((tmp_path / "straight" / "best.yaml").read_text())
    assert (
        meta["training"]["datasets"][0]["name"] == "synthetic"
        and meta["metrics"]["validation"]["loss"] > 0
    )


@pytest.fixture(scope="module")
def tiny_trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(training data, weights of a one-step tiny run) to fine-tune from."""
    root = tmp_path_factory.mktemp("init")
    data = training_set(root / "data")
    train(parse_config(tiny_config(data, epochs=1, steps_per_epoch=1), "tiny.yaml"), out=root / "a")
    return data, root / "a" / "last.safetensors"


def test_init_fine_tunes_from_weights(tmp_path: Path, tiny_trained) -> None:
    data, weights = tiny_trained
    notes: list[str] = []
    cfg_b0 = parse_config(
        tiny_config(data, epochs=1, steps_per_epoch=1, model={"segformer": "b0"}), "x.yaml"
    )
    result = train(cfg_b0, out=tmp_path / "b", init=weights, notice=notes.append)
    assert result.steps == 1 and any("architecture is used" in n for n in notes)
    assert (
        yaml.safe_load((tmp_path / "b" / "last.yaml").read_text())["architecture"]["segformer"]
        == "tiny"
    )


def test_init_takes_training_only_settings_from_the_config(tmp_path: Path, tiny_trained) -> None:
    data, weights = tiny_trained
    notes: list[str] = []
    tuned = parse_config(
        tiny_config(data, epochs=1, steps_per_epoch=1, model={"stats_noise": 0.05, "dropout": 0.2}),
        "tune.yaml",
    )
    train(tuned, out=tmp_path / "b", init=weights, notice=notes.append)
    arch = yaml.safe_load((tmp_path / "b" / "last.yaml").read_text())["architecture"]
    assert arch["segformer"] == "tiny" and arch["stats_noise"] == 0.05 and arch["dropout"] == 0.2
    assert not any("architecture is used" in n for n in notes)


def test_ddp_gloo_single_process_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "1", "RANK": "0",
                 "LOCAL_RANK": "0"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    data = training_set(tmp_path / "data")
    cfg = parse_config(tiny_config(data, epochs=1, steps_per_epoch=2), "tiny.yaml")
    try:
        result = train(cfg, out=tmp_path / "ddp", distributed=True)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    assert result.steps == 2 and (tmp_path / "ddp" / "last.safetensors").is_file()


def test_config_errors_name_the_file(tmp_path: Path) -> None:
    from cloudmask_cli.errors import InputError

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"datasets": [{"path": "x"}], "optimizer": {"lr": 1}}))
    with pytest.raises(InputError, match=r"bad.yaml: unknown key\(s\) \['optimizer'\]"):
        load_config(bad)
    bad.write_text(yaml.safe_dump({"datasets": [{"path": "x", "wieght": 2}]}))
    with pytest.raises(InputError, match="wieght"):
        load_config(bad)


def test_cli_train_then_evaluate(tmp_path: Path) -> None:
    data = training_set(tmp_path / "data")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data, epochs=1, steps_per_epoch=2)))
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "2 steps" in res.output and (tmp_path / "run" / "metrics.jsonl").is_file()
    report = tmp_path / "report.json"
    res = runner.invoke(app, ["evaluate", "--data", str(data), "--split", "val", "--weights",
                              str(tmp_path / "run" / "last.safetensors"), "--device", "cpu", "--json", str(report),
                              "--bands", "B02,B08"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "cloud / non-cloud" in res.output
    doc = json.loads(report.read_text())
    assert doc["overall"]["pixels"] == 2 * 32 * 32 and doc["bands"] == "B02,B08"
    res = runner.invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "training config not found" in res.output
    res = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "s9"), "--seed", "9"])
    assert res.exit_code == 0, res.output
    seeded = yaml.safe_load((tmp_path / "s9" / "last.yaml").read_text())
    assert seeded["training"]["config"]["seed"] == 9
    first = tensors(tmp_path / "run" / "last.safetensors")
    other = tensors(tmp_path / "s9" / "last.safetensors")
    assert any(not torch.equal(first[k], other[k]) for k in first)  # another seed, another run


@pytest.mark.realdata
@pytest.mark.slow
def test_tiny_model_on_real_biome_patches_lowers_the_loss(
    shared_data: Path, tmp_path: Path
) -> None:
    from conftest import require

    require(shared_data / "labelled" / "landsat8-biome-patches")
    raw = yaml.safe_load((REPO / "examples" / "train-tiny.yaml").read_text())
    raw.update(epochs=1, steps_per_epoch=12, val_max_batches=2, device="cpu")
    raw["datasets"][0]["path"] = str(shared_data / "labelled" / "landsat8-biome-patches")
    cfg = parse_config(raw, "train-tiny.yaml")
    result = train(cfg, out=tmp_path / "run", validate_first=True)
    val = [r for r in result.history if r["type"] == "val"]
    assert len(val) == 2
    assert val[1]["loss"] < val[0]["loss"], [v["loss"] for v in val]
    assert np.isfinite([r["loss"] for r in result.history if r["type"] == "step"]).all()


def test_selection_samples_are_taken_out_of_training(tmp_path: Path) -> None:
    from cloudmask_cli.training.loop import load_splits

    data = training_set(tmp_path / "data", n_train=12, n_val=2)
    cfg = parse_config(tiny_config(data, selection_fraction=0.3), "tiny.yaml")
    train_sets, val_sets, select_sets = load_splits(cfg)
    trained = {s.id for s in train_sets[0]}
    chosen = {s.id for s in select_sets[0][1]}
    assert chosen and trained and not (chosen & trained)
    assert chosen | trained == {f"train{i:02d}" for i in range(12)}
    assert {s.id for s in val_sets[0][1]} == {"val00", "val01"}
    again = load_splits(cfg)[2]
    assert {s.id for s in again[0][1]} == chosen  # a hash of the id: the same every run
    plain = load_splits(parse_config(tiny_config(data), "tiny.yaml"))
    assert len(plain[0][0]) == 12 and plain[2] == []


def test_best_checkpoint_is_chosen_on_the_selection_samples(tmp_path: Path) -> None:
    data = training_set(tmp_path / "data", n_train=12, n_val=2)
    cfg = parse_config(tiny_config(data, selection_fraction=0.3), "tiny.yaml")
    train(cfg, out=tmp_path / "run")
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    vals = [r for r in rows if r["type"] == "val"]
    assert vals and all(
        "selection" in r and "synthetic" in r["selection"]["datasets"] for r in vals
    )
    best = min(vals, key=lambda r: r["selection"]["loss"])
    _, _, meta = load_checkpoint(tmp_path / "run" / "best.safetensors")
    chosen = meta["metrics"]["validation"]
    assert chosen["selection"]["loss"] == pytest.approx(best["selection"]["loss"])
    assert chosen["loss"] == pytest.approx(best["loss"])  # held-out figures ride along


def test_best_checkpoint_on_the_pooled_f1(tmp_path: Path) -> None:
    data = training_set(tmp_path / "data", n_train=12, n_val=2)
    raw = tiny_config(data, selection_fraction=0.3, select_on="f1", epochs=4, steps_per_epoch=2)
    train(parse_config(raw, "tiny.yaml"), out=tmp_path / "run")
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    sel = [r["selection"] for r in rows if r["type"] == "val"]
    for s in sel:
        f1s = [v for v in (s["cloud_f1"], s["invalid_f1"]) if v is not None]
        assert f1s and s["f1_error"] == pytest.approx(1 - sum(f1s) / len(f1s))
    _, _, meta = load_checkpoint(tmp_path / "run" / "best.safetensors")
    chosen = meta["metrics"]["validation"]["selection"]
    assert chosen["f1_error"] == pytest.approx(min(s["f1_error"] for s in sel))
    with pytest.raises(InputError, match="select_on must be loss, f1 or last"):
        parse_config(tiny_config(data, select_on="iou"), "tiny.yaml")


def test_select_on_last_keeps_the_final_average_at_a_fixed_rate(tmp_path: Path) -> None:
    # a fine-tune whose selection samples cannot judge it: a fixed length, no checkpoint choice
    data = training_set(tmp_path / "data", n_train=12, n_val=2)
    opt = {"lr": 1e-3, "warmup_start": 1e-4, "warmup_steps": 2, "patience": 1, "plateau_lrs": []}
    raw = tiny_config(data, select_on="last", ema=0.9, epochs=3, steps_per_epoch=2, optimiser=opt)
    train(parse_config(raw, "tiny.yaml"), out=tmp_path / "run")
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert len([r for r in rows if r["type"] == "val"]) == 3  # still validated and logged
    assert [r["lr"] for r in rows if r["type"] == "step"][2:] == [1e-3] * 4
    _, _, meta = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert meta["training"]["epoch"] == 3 and meta["training"]["step"] == 6
    best = tensors(tmp_path / "run" / "best.safetensors")
    state = tensors(tmp_path / "run" / "last.state.safetensors")
    averaged = {k[4:]: v for k, v in state.items() if k.startswith("ema.") and k[4:] in best}
    assert len(averaged) > 100 and all(torch.equal(best[k], v) for k, v in averaged.items())
    with pytest.raises(InputError, match="select_on: last.*plateau_lrs"):
        parse_config(tiny_config(data, select_on="last"), "tiny.yaml")
    raw["selection_fraction"] = 0.3
    with pytest.raises(InputError, match="select_on: last.*selection_fraction: 0"):
        parse_config(raw, "tiny.yaml")


def test_select_on_last_saves_best_with_no_split_to_validate(tmp_path: Path) -> None:
    # a cross-validation fold trains on everything outside its test samples: no val split
    data = training_set(tmp_path / "data", n_train=8, n_val=2)
    opt = {"lr": 1e-3, "warmup_start": 1e-4, "warmup_steps": 2, "patience": 1, "plateau_lrs": []}
    datasets = [{"path": str(data), "kind": "training", "name": "synthetic", "val": None}]
    raw = tiny_config(data, select_on="last", epochs=2, steps_per_epoch=2, optimiser=opt,
                      datasets=datasets)  # fmt: skip
    train(parse_config(raw, "tiny.yaml"), out=tmp_path / "run")
    _, _, meta = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert meta["training"]["epoch"] == 2 and meta["metrics"]["validation"] is None
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert not [r for r in rows if json.loads(r)["type"] == "val"]


def test_excluded_samples_are_in_no_split(tmp_path: Path) -> None:
    from cloudmask_cli.errors import InputError
    from cloudmask_cli.training.evaluate import evaluate, load_eval_sets
    from cloudmask_cli.training.loop import load_splits

    data = training_set(tmp_path / "data", n_train=12, n_val=3)
    dropped = {"train03": "clear land labelled cloud", "val01": "cloud labelled clear"}
    raw = tiny_config(data, selection_fraction=0.3)
    raw["datasets"][0]["exclude"] = dropped
    cfg = parse_config(raw, "tiny.yaml")
    train_sets, val_sets, select_sets = load_splits(cfg)
    used = {s.id for s in train_sets[0]} | {s.id for _, g in val_sets + select_sets for s in g}
    assert used == {f"train{i:02d}" for i in range(12)} - {"train03"} | {"val00", "val02"}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert [s.id for s in load_eval_sets(path)[0][1]] == ["val00", "val02"]
    report = evaluate(path, baseline=0.3)
    assert report["samples"] == 2 and report["excluded"] == {"synthetic": dropped}

    raw["datasets"][0]["exclude"] = {"train99": "typo"}
    with pytest.raises(InputError, match=r"not in synthetic: \['train99'\]"):
        load_splits(parse_config(raw, "tiny.yaml"))
    raw["datasets"][0]["exclude"] = ["train03"]
    with pytest.raises(InputError, match="reason"):
        parse_config(raw, "tiny.yaml")


def test_weight_average_follows_the_formula() -> None:
    from cloudmask_cli.training.average import WeightAverage

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    avg = WeightAverage(net, 0.5)
    expected = net[0].weight.detach().clone()
    for n in range(1, 4):
        with torch.no_grad():
            net[0].weight.add_(1.0)
        net(torch.randn(4, 3))  # moves the BatchNorm statistics and counter
        avg.update(net)
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * net[0].weight.detach()
    assert torch.allclose(avg.net[0].weight, expected)
    assert int(avg.net[1].num_batches_tracked) == 3
    assert not avg.net[0].weight.requires_grad
    again = WeightAverage(net, 0.5)
    again.load(avg.tensors())
    assert again.updates == 3 and torch.equal(again.net[0].weight, avg.net[0].weight)


def test_best_checkpoint_holds_the_weight_average(tmp_path: Path) -> None:
    data = training_set(tmp_path / "data")
    cfg = parse_config(tiny_config(data, ema=0.9, epochs=1), "tiny.yaml")
    train(cfg, out=tmp_path / "run")
    best = tensors(tmp_path / "run" / "best.safetensors")
    raw = tensors(tmp_path / "run" / "last.safetensors")
    state = tensors(tmp_path / "run" / "last.state.safetensors")
    assert int(state["ema_updates"]) == 3
    differs = 0
    for k, v in best.items():
        assert torch.equal(v, state[f"ema.{k}"]), k
        differs += not torch.equal(v, raw[k])
    assert differs  # the average, not the last weights


def test_selection_fraction_is_checked(tmp_path: Path) -> None:
    from cloudmask_cli.errors import InputError

    with pytest.raises(InputError, match="selection_fraction must be in"):
        parse_config(tiny_config(tmp_path, selection_fraction=1.5), "tiny.yaml")
    with pytest.raises(InputError, match="ema must be in"):
        parse_config(tiny_config(tmp_path, ema=1.0), "tiny.yaml")


def test_cosine_decay_ends_on_the_small_rate(tmp_path: Path) -> None:
    data = training_set(tmp_path / "data", n_train=8, n_val=2)
    opt = {"lr": 1e-3, "warmup_start": 1e-4, "warmup_steps": 2, "plateau_lrs": [],
           "decay_to": 1e-5}  # fmt: skip
    raw = tiny_config(data, select_on="last", epochs=2, steps_per_epoch=4, optimiser=opt)
    train(parse_config(raw, "tiny.yaml"), out=tmp_path / "run")
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    lrs = [r["lr"] for r in map(json.loads, rows) if r["type"] == "step"]
    assert lrs[:3] == pytest.approx([1e-4, 5.5e-4, 1e-3])  # the warm-up, then the peak
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:], strict=False))  # falling every step
    assert lrs[-1] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + np.cos(np.pi * 5 / 6)))
    for bad, match in (({"decay_to": 2e-3}, "decay_to must be in"),
                       ({"plateau_lrs": [1e-4]}, "decay_to replaces plateau_lrs"),
                       # 2 epochs of 3 steps all in the warm-up: the rate would never decay
                       ({"warmup_steps": 6}, "warmup_steps 6 leaves none of the 6 steps")):  # fmt: skip
        with pytest.raises(InputError, match=match):
            parse_config(tiny_config(data, optimiser={**opt, **bad}), "tiny.yaml")


def test_class_weights_change_the_training_loss_and_are_checked(tmp_path: Path) -> None:
    data = training_set(tmp_path / "data")
    short = {"epochs": 1, "steps_per_epoch": 2}
    plain = train(parse_config(tiny_config(data, **short), "tiny.yaml"), out=tmp_path / "a")
    weighted_cfg = tiny_config(data, **short, loss={"classes": {"thick_cloud": 5.0, "land": 0.2}})
    weighted = train(parse_config(weighted_cfg, "tiny.yaml"), out=tmp_path / "b")
    first = [[r["cross_entropy"] for r in run.history if r["type"] == "step"][0]
             for run in (plain, weighted)]  # fmt: skip
    assert first[0] != pytest.approx(first[1], rel=1e-3)  # the same first batch, weighed otherwise
    for bad, says in (({"clouds": 2}, "unknown class 'clouds'"), ({"water": 0}, "must be > 0")):
        with pytest.raises(InputError, match=f"tiny.yaml: loss: .*{says}"):
            parse_config(tiny_config(data, loss={"classes": bad}), "tiny.yaml")


def test_the_loop_s_named_steps_compose_into_train(tmp_path: Path) -> None:
    """set_up_model, set_up_data, train_step, end_of_epoch and save_last, called by hand for one
    epoch, leave the same weights as `train` does for that epoch."""
    from cloudmask_cli.training.loop import (
        Dist,
        end_of_epoch,
        epoch_loader,
        save_last,
        set_up_data,
        set_up_model,
        train_step,
    )

    data = training_set(tmp_path / "data")
    cfg = parse_config(tiny_config(data, epochs=1), "tiny.yaml")
    dist, device = Dist(), torch.device("cpu")
    t = set_up_model(cfg, device, dist)
    assert (t.epoch, t.step_in_epoch, t.schedule.step) == (0, 0, 0)
    before = {k: v.clone() for k, v in t.net.state_dict().items()}
    d = set_up_data(cfg, dist)
    assert d.select_loaders is d.val_loaders  # no selection samples: validation picks best
    lrs = []
    for batch in epoch_loader(t, d, cfg, device):
        step = train_step(t, batch, cfg)
        assert step.applied and torch.isfinite(step.loss)
        lrs.append(step.lr)
    assert (t.step_in_epoch, t.schedule.step) == (3, 3)
    assert lrs[0] == cfg.optimiser.warmup_start and lrs[1] > lrs[0]  # the warm-up
    assert any(not torch.equal(before[k], v) for k, v in t.net.state_dict().items())
    validation, best = end_of_epoch(t, d, cfg, device, dist)
    assert validation is not None and validation["loss"] > 0 and best
    t.epoch, t.step_in_epoch = 1, 0
    save_last(tmp_path / "by-hand", t, cfg, validation)
    train(cfg, out=tmp_path / "train")
    a = tensors(tmp_path / "by-hand" / "last.safetensors")
    b = tensors(tmp_path / "train" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_step_with_non_finite_gradients_leaves_the_weights(tmp_path: Path) -> None:
    from cloudmask_cli.training.loop import (
        Dist,
        epoch_loader,
        set_up_data,
        set_up_model,
        train_step,
    )

    data = training_set(tmp_path / "data")
    cfg = parse_config(tiny_config(data, loss={"cross_entropy": float("inf")}), "tiny.yaml")
    dist, device = Dist(), torch.device("cpu")
    t = set_up_model(cfg, device, dist)
    before = {k: v.clone() for k, v in t.net.named_parameters()}
    batch = next(iter(epoch_loader(t, set_up_data(cfg, dist), cfg, device)))
    step = train_step(t, batch, cfg)
    assert not step.applied and t.skipped == 1 and t.schedule.step == 1
    # the parameters (batch-norm statistics move in any forward pass)
    assert all(torch.equal(before[k], v) for k, v in t.net.named_parameters())


def test_an_empty_section_takes_its_defaults(tmp_path: Path) -> None:
    """`optimiser:` with every line commented out is YAML null: the section's defaults, as
    before the schemas."""
    cfg = parse_config({"datasets": [{"path": "x"}], "optimiser": None, "augment": None,
                        "bands": None, "loss": None, "focus": None}, "empty.yaml")  # fmt: skip
    assert cfg.optimiser.lr == 1e-4 and cfg.augment.flips and cfg.focus.p == 0.0
