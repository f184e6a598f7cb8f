"""`cloudmask evaluate`: existing masks scored on a known confusion; band selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from cloudmask_cli.cli import app
from cloudmask_cli.errors import InputError
from cloudmask_cli.sensors import get_sensor
from cloudmask_cli.training.evaluate import evaluate, select_bands
from cloudmask_cli.training.sample import write_sample


def mask_tif(path: Path, codes: np.ndarray, style: str | None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=codes.shape[1], height=codes.shape[0], count=1,
                       dtype="uint8") as ds:  # fmt: skip
        ds.write(codes[None])
        if style:
            ds.update_tags(CLOUDMASK_STYLE=style)
    return path


@pytest.fixture()
def known(tmp_path: Path) -> tuple[Path, Path]:
    """10 x 10 pixels labelled in CloudSEN12 codes and a 'cloud' style mask of them.

    Rows 0-3 thick cloud (40 px): mask cloud on rows 0-2, not cloud on row 3 -> TP 30, FN 10.
    Rows 4-9 clear (60 px): mask cloud on row 4, not cloud elsewhere -> FP 10, TN 50. Pixel
    (9, 9) is no data in the image: left out (TN 49).
    """
    label = np.zeros((10, 10), np.uint8)
    label[:4] = 1
    image = np.full((1, 10, 10), 0.3, np.float32)
    image[0, 9, 9] = np.nan
    write_sample(
        tmp_path / "data",
        "s",
        image,
        label,
        sensor="sentinel2_msi",
        bands=["B04"],
        scheme="cloudsen12",
    )
    codes = np.zeros((10, 10), np.uint8)
    codes[:3] = 1
    codes[4] = 1
    return tmp_path / "data", mask_tif(tmp_path / "s.tif", codes, "cloud")


def test_mask_on_a_known_confusion(known: tuple[Path, Path]) -> None:
    data, mask = known
    report = evaluate(data, mask=mask)
    cloud = report["overall"]["cloud"]
    assert (cloud["tp"], cloud["fn"], cloud["fp"], cloud["tn"]) == (30, 10, 10, 49)
    assert cloud["precision"] == pytest.approx(0.75) and cloud["recall"] == pytest.approx(0.75)
    assert cloud["f1"] == pytest.approx(0.75)
    assert cloud["balanced_accuracy"] == pytest.approx((0.75 + 49 / 59) / 2)
    assert cloud["iou"] == pytest.approx(30 / 50)
    assert report["overall"]["unscored_pixels"] == 1
    # a cloud mask cannot tell thin from thick: those per-class scores are undetermined
    assert report["overall"]["per_class"]["thick_cloud"]["undetermined"] == 40


def test_mask_style_required_and_cli_json(known: tuple[Path, Path], tmp_path: Path) -> None:
    data, mask = known
    codes = rasterio.open(mask).read(1)
    untagged = mask_tif(tmp_path / "untagged.tif", codes, None)
    with pytest.raises(InputError, match="--style"):
        evaluate(data, mask=untagged)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["evaluate", "--data", str(data), "--mask", str(untagged), "--style", "cloud",
                                   "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "75.00" in res.output
    assert json.loads(out.read_text())["overall"]["cloud"]["tp"] == 30
    res = CliRunner().invoke(
        app, ["evaluate", "--data", str(data), "--mask", str(mask), "--weights", "w.safetensors"]
    )
    assert res.exit_code == 2 and "not both" in res.output


def test_select_bands() -> None:
    s2 = get_sensor("sentinel2_msi").bands
    names = [b.name for b in s2]
    assert [names[i] for i in select_bands(s2, "RGB")] == ["B04", "B03", "B02"]
    assert [names[i] for i in select_bands(s2, "RGBN")][-1] == "B08"
    l8 = get_sensor("landsat8_oli_tirs").bands
    assert [l8[i].name for i in select_bands(l8, "rgbn")] == [
        "B4",
        "B3",
        "B2",
        "B5",
    ]  # not the pan band
    assert select_bands(s2, "B8A,B11") == [8, 11] and select_bands(s2, "all") == list(range(13))
    with pytest.raises(InputError, match="no nir band"):
        select_bands(s2[:4], "RGBN")
    with pytest.raises(InputError, match="B99"):
        select_bands(s2, "B02,B99")


def test_brightness_baseline_on_a_known_image(known: tuple[Path, Path]) -> None:
    data, _ = known  # every valid pixel has reflectance 0.3 in its only (red) band
    bright = evaluate(data, baseline=0.25)["overall"]["cloud"]
    assert (bright["tp"], bright["fn"], bright["fp"], bright["tn"]) == (40, 0, 59, 0)
    dark = evaluate(data, baseline=0.35)["overall"]["cloud"]
    assert (dark["tp"], dark["fn"], dark["fp"], dark["tn"]) == (0, 40, 0, 59)


def test_revalidate_replaces_only_the_figures(known: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    import yaml

    from cloudmask_cli.model.checkpoint import load_checkpoint
    from cloudmask_cli.training.evaluate import write_json
    from cloudmask_cli.weights import bundled_dir
    from cloudmask_cli.weights.publish import revalidate

    data, mask = known
    for f in ("cloudmask-b0.safetensors", "cloudmask-b0.yaml"):
        shutil.copy(bundled_dir() / f, tmp_path / f)
    reports = tmp_path / "reports"
    reports.mkdir()
    write_json(evaluate(data, mask=mask), reports / "model-all.json")
    before = yaml.safe_load((tmp_path / "cloudmask-b0.yaml").read_text())
    revalidate(reports, tmp_path / "cloudmask-b0.yaml")
    after = yaml.safe_load((tmp_path / "cloudmask-b0.yaml").read_text())
    assert after["validation"]["model"]["all"]["data"]["cloud"]["f1"] == 75.0
    assert after["weights"] == before["weights"] and after["training"] == before["training"]
    load_checkpoint(tmp_path / "cloudmask-b0.safetensors")  # the hash still matches


def test_publish_names_every_stage_and_its_start(tmp_path):
    """A three-stage recipe: each stage's command starts from the one before, the third from
    stage 2 as published (fp16) into its own folder, and the YAML carries every config."""
    import yaml

    from cloudmask_cli.model.checkpoint import load_checkpoint
    from cloudmask_cli.weights import bundled_dir
    from cloudmask_cli.weights.publish import publish

    examples = Path(__file__).parents[1] / "examples"
    configs = [examples / f for f in ("train-bundled.yaml", "train-bundled-stage2.yaml",
                                      "train-bundled-stage3.yaml")]  # fmt: skip
    out = publish(bundled_dir() / "cloudmask-b0.safetensors", configs[2], None, "m",
                  configs[:2], target_dir=tmp_path)  # fmt: skip
    assert out == tmp_path / "m.safetensors"
    stages = yaml.safe_load((tmp_path / "m.yaml").read_text())["training"]["stages"]
    assert [s["command"] for s in stages] == [
        f"cloudmask train {configs[0].as_posix()} --out runs/bundled",
        f"cloudmask train {configs[1].as_posix()} --init runs/bundled/best.safetensors"
        " --out runs/bundled2",
        f"cloudmask train {configs[2].as_posix()} --init runs/bundled2/fp16/m.safetensors"
        " --out runs/bundled3",
    ]
    assert "init" in stages[2] and "init" not in stages[1]
    assert [s["config"]["seed"] for s in stages] == [
        yaml.safe_load(c.read_text())["seed"] for c in configs
    ]
    _, _, meta = load_checkpoint(out)
    assert meta["weights"]["dtype"] == "float16"


def test_revalidate_honours_target_dir(known, tmp_path):
    """`--revalidate … --target-dir D` rescores D's copy, never the bundled YAML."""
    import shutil

    import yaml

    from cloudmask_cli.training.evaluate import write_json
    from cloudmask_cli.weights import bundled_dir

    data, mask = known
    bundled = (bundled_dir() / "cloudmask-b0.yaml").read_text()
    for f in ("cloudmask-b0.safetensors", "cloudmask-b0.yaml"):
        shutil.copy(bundled_dir() / f, tmp_path / f)
    reports = tmp_path / "reports"
    reports.mkdir()
    write_json(evaluate(data, mask=mask), reports / "model-all.json")
    argv = ["publish", "--revalidate", str(reports), "--target-dir", str(tmp_path)]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    assert (bundled_dir() / "cloudmask-b0.yaml").read_text() == bundled
    after = yaml.safe_load((tmp_path / "cloudmask-b0.yaml").read_text())
    assert after["validation"]["model"]["all"]["data"]["cloud"]["f1"] == 75.0


def _model_report(data: Path, weights: Path, folder: Path) -> Path:
    from cloudmask_cli.training.evaluate import write_json

    folder.mkdir(exist_ok=True)
    write_json(evaluate(data, weights=weights, device="cpu"), folder / "model-all.json")
    return folder


def test_figures_must_be_scored_on_the_weights_published(known, tmp_path):
    """The YAML's figures are scored on the very file it ships with: reports of the fp32
    checkpoint (or any other weights) are refused before anything is written; reports of the
    fp16 file as published are accepted and their hash recorded."""
    import yaml

    from cloudmask_cli.errors import InputError
    from cloudmask_cli.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
    from cloudmask_cli.model.checkpoint import sha256_file
    from cloudmask_cli.weights.publish import publish, revalidate

    data, _ = known
    config = Path(__file__).parents[1] / "examples" / "train-tiny.yaml"
    fp32 = tmp_path / "fp32" / "best.safetensors"
    fp32.parent.mkdir()
    save_checkpoint(build_model(ModelConfig.tiny(), seed=0), ModelConfig.tiny(), fp32)
    report = _model_report(data, fp32, tmp_path / "of-fp32")
    assert json.loads((report / "model-all.json").read_text())["weights_sha256"] == sha256_file(
        fp32
    )
    out = tmp_path / "out"
    with pytest.raises(InputError, match="scored on other weights"):
        publish(fp32, config, report, "m", target_dir=out)
    assert not out.exists() or not any(out.iterdir()), "no partial output"
    aside = publish(fp32, config, None, "m", target_dir=tmp_path / "aside")
    good = _model_report(data, aside, tmp_path / "of-fp16")
    published = publish(fp32, config, good, "m", target_dir=out)
    meta = yaml.safe_load(published.with_suffix(".yaml").read_text())
    scored = meta["provenance"]["validation_scored"]
    assert scored["weights_sha256"] == sha256_file(published) == meta["weights"]["sha256"]
    load_checkpoint(published)  # the YAML written after the hash still describes these weights
    before = published.with_suffix(".yaml").read_text()
    with pytest.raises(InputError, match="scored on other weights"):
        revalidate(report, published.with_suffix(".yaml"))
    assert published.with_suffix(".yaml").read_text() == before
    # from the command line: one line naming the report, exit code 2
    argv = ["publish", "--revalidate", str(report), "--target-dir", str(out), "--name", "m"]
    res = CliRunner().invoke(app, argv)
    err = res.stderr
    assert res.exit_code == 2 and err.count("\n") == 1 and "model-all.json" in err
    assert published.with_suffix(".yaml").read_text() == before


def test_revalidate_from_no_reports_leaves_the_yaml(tmp_path):
    """A mistyped or empty reports folder is refused: it once replaced every held-out figure
    of the weights' YAML with nothing, and said it had succeeded."""
    import shutil

    from cloudmask_cli.weights import bundled_dir

    yaml_path = tmp_path / "cloudmask-b0.yaml"
    shutil.copy(bundled_dir() / "cloudmask-b0.yaml", yaml_path)
    before = yaml_path.read_text()
    (tmp_path / "empty").mkdir()
    for reports, problem in ((tmp_path / "nowhere", "no such folder"),
                             (tmp_path / "empty", "holds no report")):  # fmt: skip
        res = CliRunner().invoke(app, ["publish", "--revalidate", str(reports),
                                       "--target-dir", str(tmp_path)])  # fmt: skip
        assert res.exit_code == 2 and str(reports) in res.stderr and problem in res.stderr
        assert res.stderr.count("\n") == 1
        assert yaml_path.read_text() == before
