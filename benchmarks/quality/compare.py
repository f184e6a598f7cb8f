"""Recipes side by side from their cross-validation folders (``crossval.json``), as markdown.

    python benchmarks/quality/compare.py runs/cv-a runs/cv-b [--part folds|lodo]
    python benchmarks/quality/compare.py runs/cv-a runs/cv-a2 runs/cv-e runs/cv-e2 \
        --seeds A=cv-a,cv-a2 E=cv-e,cv-e2

``--seeds``: runs of one recipe with other seeds, summarised as the mean ± SD over the runs of
each set's pooled figure (what a difference between recipes must beat).

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
    FLIPS,
    NETWORK,
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
    ap.add_argument("--seeds", nargs="*", default=[], metavar="LABEL=FOLDER,FOLDER")
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
    # the recipe's own rows (its weights, with and without tests or flips) in every folder;
    # a peer's or the baseline's (the same in every folder) once
    own = ("model", NETWORK, FLIPS)
    peers_done = set()
    for name, res in results.items():
        for row in table(res, args.part, CLEAN):
            if row[0] not in own and row[0] in peers_done:
                continue
            print(f"| {name} | " + " | ".join(row) + " |")
        peers_done |= {p for p in res.summary.get(args.part, {}) if p not in own}
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
    if args.seeds:
        print()
        print(_seeds(results, args.seeds, common, args.part))
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


def _seeds(results: dict, groups: list[str], sets: list[str], part: str) -> str:
    """Markdown: per recipe (several runs) and set, mean ± SD over the runs of pooled F1."""
    import statistics

    lines = ["| recipe (runs) | set | cloud F1, mean ± SD over runs | invalid F1 | each run's cloud F1 |",
             "|---|---|---|---|---|"]  # fmt: skip
    for group in groups:
        label, _, names = group.partition("=")
        runs = [results[n].summary[part]["model"][CLEAN] for n in names.split(",")]
        for d in [*sets, MEAN]:
            cells = []
            for key in ("cloud_f1", "invalid_f1"):
                v = [100 * r[d]["pooled"][key] for r in runs]
                if d == MEAN:  # over the common sets only, as above
                    v = [100 * sum(r[x]["pooled"][key] for x in sets) / len(sets) for r in runs]
                sd = statistics.stdev(v) if len(v) > 1 else 0.0
                cells.append((f"{statistics.mean(v):.1f} ± {sd:.1f}", v))
            each = ", ".join(f"{x:.1f}" for x in cells[0][1])
            lines.append(
                f"| {label} ({len(runs)}) | {d} | {cells[0][0]} | {cells[1][0]} | {each} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
