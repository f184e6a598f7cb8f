"""`cloudmask train` and `evaluate` (cloudmask_cli.training): fine-tune, score, cross-validate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.table import Table

from cloudmask_cli.cli.common import WIDE, app, err, fail, out
from cloudmask_cli.cli.options import (
    Device,
    Quiet,
    Spectral,
)
from cloudmask_cli.errors import InputError


@app.command()
def train(
    config: Path = typer.Argument(..., help="Training config YAML (see examples/train-tiny.yaml)."),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="Continue a run from its last.safetensors (training state beside it).",
    ),
    init: Path | None = typer.Option(
        None, "--init", help="Start from these weights (fine-tuning), e.g. the bundled ones."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Output folder (default: config's out)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Use this seed instead of the config's (to measure run-to-run spread)."
    ),
    quiet: Quiet = False,
) -> None:
    """Train or fine-tune on labelled datasets; checkpoints and metrics.jsonl go to --out.

    Multi-GPU: torchrun --nproc_per_node=N -m cloudmask_cli.cli train CONFIG (same command)."""
    from cloudmask_cli.training.config import load_config
    from cloudmask_cli.training.loop import train as run_training

    try:
        cfg = load_config(config)
        if seed is not None:
            cfg = dataclasses.replace(cfg, seed=seed)  # recorded in the checkpoint's config
        result = run_training(
            cfg, out=out_dir, resume=resume, init=init, progress=not quiet and err.is_terminal,
            notice=None if quiet else (lambda m: err.print(f"cloudmask: {m}", markup=False)),
        )  # fmt: skip
    except (InputError, ValueError) as exc:
        fail(exc)
    if not quiet:
        val = result.last("val")
        loss = f"; validation loss {val['loss']:.4f}" if val else ""
        out.print(
            f"{result.out}: {result.steps} steps, {result.epochs} epochs{loss}", highlight=False
        )


@app.command()
def evaluate(
    data: Path = typer.Option(
        ...,
        "--data",
        help="Training-format folder, a dataset in its own layout (--kind), or a "
        "training config (its validation splits).",
    ),  # fmt: skip
    weights: Path | None = typer.Option(
        None, "--weights", help="Model weights (default: bundled)."
    ),
    mask: Path | None = typer.Option(
        None, "--mask", help="Score an existing mask raster (or a folder of <sample id>.tif)."
    ),
    kind: str = typer.Option(
        "training", "--kind", help="Dataset layout (cloudsen12, biome-patches, ...)."
    ),
    split: str | None = typer.Option(
        None, "--split", help="Split of the dataset (train, val, ...)."
    ),
    option: list[str] | None = typer.Option(None, "--option", help="Adapter option key=value."),
    bands: str = typer.Option(
        "all", "--bands", help="all | RGB | RGBN | comma-separated band names."
    ),
    style: str | None = typer.Option(None, "--style", help="Style of --mask if its tags lack it."),
    device: Device = "auto",
    json_out: Path | None = typer.Option(None, "--json", help="Write the full report (JSON) here."),
    baseline: float | None = typer.Option(
        None,
        "--baseline",
        help="Score the trivial baseline instead: cloud where the mean "
        "visible reflectance exceeds this value (e.g. 0.3).",
    ),  # fmt: skip
    peer: str | None = typer.Option(
        None,
        "--peer",
        help="Score a peer instead: ukis-csmask, ukis-csmask-l2a or s2cloudless (pip install cloudmask[peers]).",
    ),
    perturb: str | None = typer.Option(
        None,
        "--perturb",
        help="Perturb the inputs first: gain0.8, gain1.2, offset-0.02, offset+0.02, "
        "bandgain0.1, no_swir, no_thermal, no_cirrus.",
    ),  # fmt: skip
    cv: int | None = typer.Option(
        None,
        "--cv",
        help="Cross-validate the training config --data: train it on K scene-grouped "
        "folds of all its samples, score each held-out fold (model, baseline, --cv-peer).",
    ),  # fmt: skip
    lodo: bool = typer.Option(False, "--lodo", help="With --cv: also leave each dataset out."),
    cv_out: Path = typer.Option(Path("runs/crossval"), "--out", help="With --cv: output folder."),
    cv_perturb: list[str] | None = typer.Option(
        None,
        "--cv-perturb",
        help="With --cv: also score under these perturbations, repeated or comma-separated "
        "('all': every one).",
    ),
    cv_peer: list[str] | None = typer.Option(
        None, "--cv-peer", help="With --cv: peers to score (as --peer), on the same test pixels."
    ),
    jobs: int = typer.Option(
        1, "--jobs", help="With --cv: folds trained at once (one thread each)."
    ),
    cv_seed: int | None = typer.Option(
        None, "--seed", help="With --cv: this seed instead of the config's (run-to-run spread)."
    ),
    cv_flips: bool = typer.Option(
        False, "--cv-flips", help="With --cv: also score the model with test-time mirror images."
    ),
    spectral: Spectral = True,
    quiet: Quiet = False,
) -> None:
    """Score a model or masks against reference labels: the paper's pixel-wise metrics."""

    from cloudmask_cli.training.adapters import parse_options
    from cloudmask_cli.training.evaluate import evaluate as run_evaluation
    from cloudmask_cli.training.evaluate import tables, write_json

    if cv is not None:
        _cross_validate(
            data,
            cv,
            lodo,
            cv_out,
            cv_perturb or [],
            cv_peer or [],
            jobs,
            cv_seed,
            cv_flips,
            quiet,
        )
        return
    if weights is not None and mask is not None:
        fail(InputError(mask, "give --weights or --mask, not both"))
    try:
        options = parse_options(option)
    except InputError as exc:
        fail(exc)
    try:
        report = run_evaluation(
            data, weights=weights, mask=mask, kind=kind, split=split, options=options, bands=bands,
            style=style, device=device, baseline=baseline, peer=peer, perturbation=perturb,
            spectral=spectral,
        )  # fmt: skip
        if json_out is not None:
            write_json(report, json_out)
    except (InputError, ValueError) as exc:
        fail(exc)
    if not quiet:
        for table in tables(report):
            out.print(table)


def _cross_validate(
    config: Path, k: int, lodo: bool, folder: Path, perturb: list[str], peers: list[str],
    jobs: int, seed: int | None, flips: bool, quiet: bool,
) -> None:  # fmt: skip
    from cloudmask_cli.training.crossval import cross_validate, robustness_rows, table
    from cloudmask_cli.training.robustness import PERTURBATIONS

    perturb = [name for item in perturb for name in item.split(",") if name]
    if perturb == ["all"]:
        perturb = list(PERTURBATIONS)
    try:
        result = cross_validate(
            config, folder, k=k, lodo=lodo, perturbations=perturb, peers=peers, jobs=jobs,
            seed=seed, flips=flips, notice=None if quiet else (lambda m: err.print(f"cloudmask: {m}", markup=False)),
        )  # fmt: skip
    except (InputError, ValueError) as exc:
        fail(exc)
    if quiet:
        return
    for part, title in (("folds", f"{k} scene-grouped folds"), ("lodo", "each dataset left out")):
        rows = table(result, part)
        if not rows:
            continue
        t = Table(title=f"cross-validated, {title}: pooled % (mean ± spread over folds, n)")
        for col in ("predictor", "data", "cloud F1", "invalid F1", "water R/P", "snow R/P",
                    "shadow R/P"):  # fmt: skip
            t.add_column(col)
        for row in rows:
            t.add_row(*row)
        out.print(t, width=max(out.width, WIDE))  # not folded to 80 columns in a log file
    if perturb:
        r = Table(title="model under perturbed inputs: pooled cloud F1 % and change")
        for col in ("perturbation", "data", "cloud F1", "change"):
            r.add_column(col)
        for row in robustness_rows(result):
            if row[2] != "-":  # a set with no cloud figure
                r.add_row(*row)
        out.print(r, width=max(out.width, WIDE))
    out.print(f"{folder / 'crossval.json'}", highlight=False)


@app.command()
def convert(
    kind: str = typer.Argument(
        ...,
        help="Dataset layout: cloudsen12, sparcs, biome, kappaset, ... (docs/training-format.md).",
    ),
    src: Path = typer.Argument(..., help="The dataset as its authors publish it."),
    dst: Path = typer.Argument(..., help="Output folder in the training format."),
    split: str | None = typer.Option(None, "--split", help="Only this split (train, val, ...)."),
    fmt: str = typer.Option("tif", "--format", help="tif | npz"),
    option: list[str] | None = typer.Option(None, "--option", help="Adapter option key=value."),
) -> None:
    """Convert a public cloud dataset to the training format (for train and evaluate)."""
    from cloudmask_cli.training.adapters import convert as run_conversion
    from cloudmask_cli.training.adapters import parse_options

    try:
        if fmt not in ("tif", "npz"):
            raise InputError(None, f"--format {fmt!r}: expected tif or npz")
        written = run_conversion(kind, src, dst, split, parse_options(option), fmt=fmt)
    except InputError as exc:
        fail(exc)
    out.print(f"{len(written)} samples written to {dst}", highlight=False)


@app.command()
def review(
    config: Path = typer.Argument(..., help="Training config YAML."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the PNGs and index.csv."),
    dataset: str | None = typer.Option(
        None, "--dataset", help="Only this dataset of the config (its name)."
    ),
) -> None:
    """Label review sheets: each sample's image beside its labels, and an index of them."""
    from cloudmask_cli.training.review import review as write_sheets

    try:
        index = write_sheets(config, out_dir, dataset)
    except InputError as exc:
        fail(exc)
    out.print(f"sheets and {index.name} in {index.parent}", highlight=False)


@app.command()
def publish(
    checkpoint: Path | None = typer.Argument(
        None, help="A checkpoint of `cloudmask train` (e.g. runs/x/best.safetensors)."
    ),
    config: Path | None = typer.Option(None, "--config", help="The config it was trained with."),
    init_config: list[Path] | None = typer.Option(
        None, "--init-config", help="Config of an earlier stage (repeat, first stage first)."
    ),
    reports: Path | None = typer.Option(
        None,
        "--reports",
        help="Folder of `cloudmask evaluate --json` reports, scored on the fp16 file as published.",
    ),
    crossval: Path | None = typer.Option(
        None, "--crossval", help="crossval.json of the recipe (`cloudmask evaluate --cv`)."
    ),
    revalidate: Path | None = typer.Option(
        None,
        "--revalidate",
        help="Only replace the figures of weights published already, from these reports.",
    ),
    name: str | None = typer.Option(
        None, "--name", help="File stem of the weights and YAML (default: cloudmask-b0)."
    ),
    target_dir: Path | None = typer.Option(
        None, "--target-dir", help="Publish (or revalidate) here, not in the bundled folder."
    ),
) -> None:
    """Publish a checkpoint as fp16 safetensors and a YAML saying what it is: architecture,
    training data and recipe, steps, held-out and cross-validated figures, how to reproduce it."""
    from cloudmask_cli.weights import DEFAULT_NAME, bundled_dir
    from cloudmask_cli.weights.publish import publish as write_weights
    from cloudmask_cli.weights.publish import revalidate as rescore

    stem = name or DEFAULT_NAME
    try:
        if revalidate is not None:
            folder = target_dir or bundled_dir()
            written = rescore(revalidate, folder / f"{stem}.yaml", crossval)
        elif checkpoint is None or config is None:
            raise InputError(None, "publish needs a checkpoint and --config (or --revalidate)")
        else:
            written = write_weights(checkpoint, config, reports, stem, init_config, target_dir,
                                    crossval)  # fmt: skip
    except InputError as exc:
        fail(exc)
    out.print(f"{written}", highlight=False)
