"""Publish a trained checkpoint as the bundled model: fp16 weights + a YAML that says what it is.

    cloudmask train examples/train-bundled.yaml --out runs/bundled
    cloudmask train examples/train-bundled-stage2.yaml --init runs/bundled/best.safetensors \\
        --out runs/bundled2
    cloudmask publish runs/bundled2/best.safetensors \\
        --config examples/train-bundled-stage2.yaml --init-config examples/train-bundled.yaml \\
        --target-dir runs/bundled2/fp16
    examples/validate-bundled.sh runs/bundled2/fp16/cloudmask-b0.safetensors runs/bundled2/validation
    cloudmask publish runs/bundled2/best.safetensors \\
        --config examples/train-bundled-stage2.yaml --init-config examples/train-bundled.yaml \\
        --reports runs/bundled2/validation

The figures must be scored on the file as it ships (fp16): reports of any other weights (the
fp32 checkpoint included) are refused, by their `weights_sha256`, before anything is written.

A third stage starts from stage 2 as published (fp16), written aside first, and the final
publish names every earlier config in order:

    cloudmask publish runs/bundled2/best.safetensors \\
        --config examples/train-bundled-stage2.yaml --init-config examples/train-bundled.yaml \\
        --target-dir runs/bundled2/fp16
    cloudmask train examples/train-bundled-stage3.yaml \\
        --init runs/bundled2/fp16/cloudmask-b0.safetensors --out runs/bundled3
    cloudmask publish runs/bundled3/best.safetensors \\
        --config examples/train-bundled-stage3.yaml --init-config examples/train-bundled.yaml \\
        --init-config examples/train-bundled-stage2.yaml --target-dir runs/bundled3/fp16
    examples/validate-bundled.sh runs/bundled3/fp16/cloudmask-b0.safetensors runs/bundled3/validation
    cloudmask publish runs/bundled3/best.safetensors \\
        --config examples/train-bundled-stage3.yaml --init-config examples/train-bundled.yaml \\
        --init-config examples/train-bundled-stage2.yaml --reports runs/bundled3/validation

Re-score the published weights (e.g. after a change to `cloudmask evaluate`) without touching them:

    examples/validate-bundled.sh weights/cloudmask-b0.safetensors runs/revalidation
    cloudmask publish --revalidate runs/revalidation

The YAML carries the architecture (from the checkpoint), the training data and recipe (from the
config), the steps trained, the held-out figures (from the `cloudmask evaluate` JSON reports),
and how to reproduce it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

from cloudmask_cli.errors import InputError
from cloudmask_cli.model.checkpoint import (
    atomic_write,
    load_checkpoint,
    save_checkpoint,
    sha256_file,
)
from cloudmask_cli.records import Binary, EvaluationReport
from cloudmask_cli.weights import DEFAULT_NAME, bundled_dir

KEEP = ("precision", "recall", "f1", "balanced_accuracy", "iou")


def _scores(report: EvaluationReport) -> dict[str, Any]:
    """Percentages of the cloud and invalid groups and per-class P/R, per dataset."""

    def pct(block: Binary, keys: tuple[str, ...] = KEEP) -> dict[str, float | None]:
        return {k: None if (v := getattr(block, k)) is None else round(100 * v, 1) for k in keys}

    return {
        name: {
            "pixels": rep.pixels,
            "cloud": pct(rep.cloud),
            "invalid": pct(rep.invalid),
            "per_class": {c: pct(v, ("precision", "recall")) for c, v in rep.per_class.items()},
        }
        for name, rep in report.datasets.items()
    }


def validation_figures(folder: Path) -> dict[str, Any]:
    """{model|baseline: {bands: {dataset: scores}}} from the reports in ``folder``."""
    figures: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json")):
        who, _, bands = path.stem.partition("-")
        figures.setdefault(who, {})[bands] = _scores(EvaluationReport.read(path))
    return figures


def crossval_figures(path: Path) -> dict[str, Any]:
    """Cloud and invalid F1 (%, pooled over the folds, and the folds' mean ± SD) per predictor
    and dataset, clean inputs, from a ``crossval.json`` of `cloudmask evaluate --cv`."""
    from cloudmask_cli.training.crossval import CrossValidation

    try:
        cv = CrossValidation.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(str(path), f"not a cross-validation summary: {exc}") from None

    def pct(v: Any) -> float | None:
        return None if v is None else round(100 * float(v), 1)

    figures: dict[str, Any] = {}
    for who, conditions in cv.summary.get("folds", {}).items():
        for dataset, s in conditions.get("clean", {}).items():
            row: dict[str, Any] = {}
            for key in ("cloud_f1", "invalid_f1"):
                spread = s.get("folds", {}).get(key, {})
                row[key] = pct(s.get("pooled", {}).get(key))
                row[f"{key}_folds"] = {"mean": pct(spread.get("mean")),
                                       "sd": pct(spread.get("std")), "n": spread.get("n")}  # fmt: skip
            figures.setdefault(who, {})[dataset] = row
    return {
        "recipe": cv.config,
        "what": "k scene-grouped folds over all the labelled data: each sample scored by a model "
        "trained from scratch without its scene (benchmarks/quality/README.md); the recipe is "
        "a short form of stage 1, so these are figures of the recipe, not of these weights",
        "folds": len([f for f in cv.folds if f["name"].startswith("fold")]),
        **({"seed": cv.seed} if cv.seed is not None else {}),
        "figures": figures,
    }


def scored_weights(reports: Path, sha256: str) -> dict[str, Any]:
    """Check that the model reports in ``reports`` scored the weights with hash ``sha256``;
    what the YAML records of it (``provenance.validation_scored``)."""
    if not reports.is_dir():
        raise InputError(reports, "no such folder of `cloudmask evaluate --json` reports")
    paths = sorted(reports.glob("*.json"))
    if not paths:
        raise InputError(reports, "holds no report (`cloudmask evaluate --json`, *.json)")
    found: dict[str, str | None] = {}
    for path in paths:
        report = EvaluationReport.read(path)
        if report.baseline is None and report.mask is None:
            found[path.name] = report.weights_sha256
    other = {name: sha for name, sha in found.items() if sha != sha256}
    if other:
        name, sha = next(iter(other.items()))
        raise InputError(
            reports / name,
            f"figures scored on other weights ({(sha or 'unrecorded')[:12]}) than the file "
            f"published ({sha256[:12]}): score the published fp16 file (--target-dir aside)",
        )
    return {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "weights_sha256": sha256 if found else None,
        "reports": sorted(found),
    }


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def publish(
    checkpoint: Path,
    config: Path,
    reports: Path | None,
    name: str = DEFAULT_NAME,
    init_configs: list[Path] | None = None,
    target_dir: Path | None = None,
    crossval: Path | None = None,
) -> Path:
    """Write ``<target_dir>/<name>.safetensors`` (the bundled folder by default) and its YAML.

    ``init_configs``: the configs of the earlier stages, first to last. Stage 2 starts from
    stage 1's best checkpoint; a later stage from the fp16 model published after the one before.
    """
    model, arch, meta = load_checkpoint(checkpoint)
    stages = []
    for i, path in enumerate([*(init_configs or []), config]):
        stage: dict[str, Any] = {}
        if i == 0:
            init = ""
        elif i == 1:
            init = " --init runs/bundled/best.safetensors"
        else:
            init = f" --init runs/bundled{i}/fp16/{name}.safetensors"
            stage["init"] = (
                f"runs/bundled{i}/best.safetensors published (fp16) to runs/bundled{i}/fp16"
            )
        out = "runs/bundled" + (str(i + 1) if i else "")
        stage["command"] = f"cloudmask train {path.as_posix()}{init} --out {out}"
        stage["config"] = yaml.safe_load(path.read_text())
        stages.append(stage)
    training = meta.get("training", {})
    metadata = {
        "name": name,
        "description": "SEnSeI-v2 + SegFormer-B0 trained by the cloudmask project on the small real "
        "labelled data beside the repository plus synthetic clouds and bright ground, on a 2-core "
        "CPU in under an hour (see README, Model quality). A starting point to fine-tune, not a final model.",
        "training": {
            "stages": stages,
            "checkpoint": str(checkpoint),
            "run": training,
            "held_out": "Biome val patches; On Cloud N chips with crc32(id) in the 25 % val range; "
            "T29UNU 60 m pixel block rows 1318-1830, cols 0-512 (tiles touching it unused)",
            "excluded": "samples whose labels failed review are in no split and not scored "
            "(each config's datasets[].exclude, with reasons); the `unreviewed` figures score "
            "On Cloud N's val chips with them",
            "validation_data": "the val splits of the stage-1 config (examples/train-bundled.yaml)",
        },
        "validation": validation_figures(reports) if reports else {},
        "cross_validation": crossval_figures(crossval) if crossval else {},
        "provenance": {
            "published": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_commit": _git_commit(),
            "data_credit": "contains modified Copernicus Sentinel data; USGS Landsat (public domain)",
        },
    }
    target = (target_dir or bundled_dir()) / f"{name}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written aside first: its hash must match the reports' before anything replaces the target.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".publish-") as tmp:
        aside = Path(tmp) / target.name
        save_checkpoint(model, arch, aside, metadata=metadata, dtype=torch.float16)
        if reports:
            scored = scored_weights(reports, sha256_file(aside))
            doc = yaml.safe_load(aside.with_suffix(".yaml").read_text())
            doc["provenance"]["validation_scored"] = scored
            aside.with_suffix(".yaml").write_text(
                yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
            )
        os.replace(aside, target)
        os.replace(aside.with_suffix(".yaml"), target.with_suffix(".yaml"))
    return target


def revalidate(reports: Path, path: Path | None = None, crossval: Path | None = None) -> Path:
    """Replace the held-out figures in a weights YAML (the bundled one by default), and the
    cross-validated ones with ``crossval``; the weights and their hash stay as they are."""
    path = path or bundled_dir() / f"{DEFAULT_NAME}.yaml"
    doc = yaml.safe_load(path.read_text())
    if crossval:
        doc["cross_validation"] = crossval_figures(crossval)
    scored = scored_weights(reports, doc["weights"]["sha256"])
    doc["validation"] = validation_figures(reports)
    doc.setdefault("provenance", {})["validation_scored"] = {
        **scored,
        "weights": f"{doc['weights']['file']} as published ({doc['weights']['dtype']})",
    }
    atomic_write(
        path,
        lambda tmp: Path(tmp).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)),
    )
    return path


if __name__ == "__main__":  # the older spelling of `cloudmask publish`
    from cloudmask_cli.cli import app

    app(["publish", *sys.argv[1:]], prog_name="cloudmask")
