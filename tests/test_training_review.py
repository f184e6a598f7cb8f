"""Label review sheets: image beside label, one PNG per sample, an index with exclusions."""

from __future__ import annotations

import csv
from pathlib import Path

import rasterio
import yaml
from training_fixtures import training_set
from typer.testing import CliRunner

from cloudmask_cli.cli import app


def main(argv: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["review", *argv])
    return res.exit_code, res.stderr


def test_sheets_show_image_and_label_side_by_side(tmp_path: Path) -> None:
    data = training_set(tmp_path / "data", n_train=3, n_val=2)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"datasets": [{
        "path": str(data), "kind": "training", "name": "synth",
        "exclude": {"train01": "clear land labelled cloud"}}]}))  # fmt: skip
    assert main([str(config), "--out", str(tmp_path / "out")])[0] == 0
    with (tmp_path / "out" / "index.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["split"]) for r in rows] == [
        ("train00", "train"), ("train01", "train"), ("train02", "train"),
        ("val00", "val"), ("val01", "val"),
    ]  # fmt: skip
    assert [r["excluded"] for r in rows][:2] == ["", "clear land labelled cloud"]

    from cloudmask_cli.training.adapters import open_dataset

    sample = open_dataset("training", data, "val")[0]
    x, label = sample.read(None, list(range(len(sample.bands))))
    with rasterio.open(tmp_path / "out" / "val-val00.png") as ds:
        img = ds.read()
    size = label.shape[1]
    assert img.shape == (3, label.shape[0], 2 * size + 8)
    picture, labels = img[:, :, :size], img[:, :, size + 8 :]
    cloud = label == 1  # the fixture: bright pixels are labelled thick cloud
    assert (labels[:, cloud] == 255).all() and (labels[:, ~cloud] == 40).all()
    assert picture[:, cloud].mean() > picture[:, ~cloud].mean() + 100
    share = float(next(r["labelled_cloud"] for r in rows if r["id"] == "val00"))
    assert abs(share - cloud.mean()) < 1e-3


def test_unknown_dataset_is_one_line_error(tmp_path: Path) -> None:
    data = training_set(tmp_path / "data", n_train=1, n_val=1)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"datasets": [{"path": str(data), "name": "synth"}]}))
    code, err = main([str(config), "--dataset", "nope", "--out", str(tmp_path / "o")])
    assert code == 2
    err = err.strip()
    assert err.count("\n") == 0 and "cfg.yaml" in err and "synth" in err
    assert not (tmp_path / "o").exists()
