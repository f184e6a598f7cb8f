"""Recipes side by side from their cross-validation folders (``crossval.json``), as markdown.

    python benchmarks/quality/compare.py runs/cv-a runs/cv-b [--part folds|lodo]

Per recipe and dataset: the pooled cloud F1 and invalid F1 with their mean ± spread over the
folds, per-class recall/precision on decided pixels, and the largest cloud F1 shift under a gain
or offset; then the peers and the baseline from the first folder that scored them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

from cloudmask_cli.training.crossval import (
    CLEAN,
    CrossValidation,
    load_scores,
    max_shift,
    robustness_rows,
    summarise,
    table,
)

MEAN = "mean of datasets"
HEAD = "| recipe | predictor | set | cloud F1 (folds) | invalid F1 (folds) | water R/P | snow R/P | shadow R/P |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--part", default="folds", choices=("folds", "lodo"))
    ap.add_argument(
        "--only",
        help="comma-separated fold names: re-summarise these folds' scores in every folder "
        "(recipes compared on the same folds while a run is unfinished)",
    )
    args = ap.parse_args()
    if args.only:
        names = args.only.split(",")
        results = {}
        for f in args.folders:
            scores = {n: load_scores(f / n) for n in names}
            folds = [SimpleNamespace(name=n) for n in names]
            results[f.name] = CrossValidation(str(f), [], {args.part: summarise(folds, scores)})
    else:
        results = {f.name: CrossValidation.load(f / "crossval.json") for f in args.folders}
    print(HEAD)
    print("|" + "---|" * 8)
    peers_done = set()
    for name, res in results.items():
        for row in table(res, args.part, CLEAN):
            if row[0] != "model":
                if row[0] in peers_done:
                    continue
            print(f"| {name} | " + " | ".join(row) + " |")
        peers_done |= {p for p in res.summary.get(args.part, {}) if p != "model"}
    # recipes with other datasets: their own "mean of datasets" do not compare; these do
    sets = [
        set(r.summary.get(args.part, {}).get("model", {}).get(CLEAN, {})) - {MEAN}
        for r in results.values()
    ]
    common = sorted(set.intersection(*sets)) if sets else []
    print()
    print(f"| recipe | predictor | mean over {', '.join(common)}: cloud F1 | invalid F1 |")
    print("|---|---|---|---|")
    for name, res in results.items():
        for p, conds in res.summary.get(args.part, {}).items():
            fig = conds.get(CLEAN, {})
            cells = []
            for key in ("cloud_f1", "invalid_f1"):
                v = [fig[d]["pooled"].get(key) for d in common if d in fig]
                v = [x for x in v if x is not None]
                cells.append(f"{100 * sum(v) / len(v):.1f}" if len(v) == len(common) else "-")
            print(f"| {name} | {p} | " + " | ".join(cells) + " |")
    print()
    print("| recipe | set | largest cloud F1 shift under gain 0.8/1.2, offset ±0.02 |")
    print("|---|---|---|")
    for name, res in results.items():
        for d, v in max_shift(res, part=args.part).items():
            if v is not None:
                print(f"| {name} | {d} | {'-' if v is None else f'{100 * v:.1f}'} |")
    print()
    print("| recipe | perturbation | set | cloud F1 | change |")
    print("|---|---|---|---|---|")
    for name, res in results.items():
        for row in robustness_rows(res, part=args.part):
            if row[2] != "-":  # a set with no cloud figure (see crossval._figures)
                print(f"| {name} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
