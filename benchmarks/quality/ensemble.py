"""Several cross-validation runs' fold models as one predictor: the mean of their probabilities.

    python benchmarks/quality/ensemble.py benchmarks/quality/recipe-hl.yaml runs/cv-hl runs/cv-hl2 \
        --out runs/cv-hl-ensemble [--jobs 2]
    python benchmarks/quality/compare.py runs/cv-hl runs/cv-hl2 runs/cv-hl-ensemble

Asks whether the run-to-run spread of a recipe is noise that averaging removes (then an
ensemble, or a weight average, would score above every run) or a different answer per run
(then the ensemble scores between them). Each fold's test samples are predicted by the fold
models of every run (same folds: the runs must share the recipe's samples), the mean goes
through the water and snow tests as `cloudmask run` does, and is scored on the same pixels:
``<out>/<fold>/scores-model.npz`` and ``<out>/crossval.json``, as `cloudmask evaluate --cv`
writes them.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np


def score(config: str, runs: list[str], index: int, out: str) -> str:
    import torch

    from cloudmask_cli.inference.refine import refine
    from cloudmask_cli.training import crossval as cv
    from cloudmask_cli.training.config import load_config
    from cloudmask_cli.training.evaluate import _model_predict

    torch.set_num_threads(1)
    fold = cv.make_folds(cv.all_samples(load_config(config)), 5)[index]
    # each run's network as `cloudmask evaluate` runs it, the tests once on the mean
    nets = [_model_predict(Path(r) / fold.name / "best.safetensors", "cpu", spectral=False)
            for r in runs]  # fmt: skip

    def predict(x: np.ndarray, desc: np.ndarray, bands: list) -> np.ndarray:
        p = np.mean([net(x, desc, bands) for net in nets], axis=0)
        refine(p, x, bands)
        return p

    scored = cv.score_fold(fold, {"model": (predict, ())})["model"]
    flat = {f"{c}|{d}|{m}": n for c, sets in scored.items() for d, masks in sets.items()
            for m, n in masks.items()}  # fmt: skip
    folder = Path(out) / fold.name
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "scores-model.npz", **flat)
    return fold.name


def main() -> None:
    from cloudmask_cli.training import crossval as cv
    from cloudmask_cli.training.config import load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    folds = cv.make_folds(cv.all_samples(load_config(args.config)), 5)
    plans = [json.loads((Path(r) / "folds.json").read_text()) for r in args.runs]
    if any(p != plans[0] for p in plans):
        raise SystemExit("the runs did not test the same samples per fold")
    jobs = [(args.config, args.runs, i, args.out) for i in range(len(folds))]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for name in pool.map(score, *zip(*jobs, strict=True)):
            print("scored", name, flush=True)
    out = Path(args.out)
    (out / "folds.json").write_text(json.dumps(plans[0], indent=2), encoding="utf-8")
    scores = {f.name: cv.load_scores(out / f.name) for f in folds}
    summary = {"folds": cv.summarise(folds, scores), "lodo": {}}
    result = cv.CrossValidation(f"ensemble of {', '.join(args.runs)}", plans[0], summary)
    (out / "crossval.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    for row in cv.table(result):
        print(" | ".join(row))


if __name__ == "__main__":
    main()
