"""Share of each label code's pixels passing each label rule (`cloudmask_cli.training.rules`):
what a rule would label before it is put in a recipe, and its precision and recall where the
labels decide the rule's class.

    python benchmarks/quality/rule_shares.py benchmarks/quality/recipe-d.yaml
    python benchmarks/quality/rule_shares.py ../shared/data/labelled/landsat8-biome-patches \
        --kind biome-patches --rules water,vegetation --by-prefix
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloudmask_cli.errors import InputError
from cloudmask_cli.training.adapters import add_dataset_arguments, open_dataset, parse_options
from cloudmask_cli.training.labels import load_scheme
from cloudmask_cli.training.rules import RULES, _reordered, measure, report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python benchmarks/quality/rule_shares.py",
        description="Share of each label code's pixels passing each label rule.",
    )
    add_dataset_arguments(p, "a dataset folder (with --kind) or a training config YAML")
    p.add_argument("--rules", default=",".join(RULES))
    p.add_argument("--bands", default="", help="comma-separated band names the rules may use")
    p.add_argument("--by-prefix", action="store_true", help="also per sample-id prefix (to _)")
    p.add_argument(
        "--band-order",
        default="",
        help="comma-separated names of the samples' bands in file order, replacing the adapter's "
        "(same sensor): to measure with a band order in question",
    )
    args = p.parse_args(argv)
    rules = [r for r in args.rules.split(",") if r]
    keep = [b for b in args.bands.split(",") if b]
    try:
        options = parse_options(args.option)
        unknown = [r for r in rules if r not in RULES]
        if unknown:
            raise InputError(None, f"unknown rule(s) {unknown} (known: {', '.join(RULES)})")
        if args.data.endswith((".yaml", ".yml")) and args.kind == "training":
            from dataclasses import replace

            from cloudmask_cli.training.config import load_config

            sets = [
                (
                    s.name,
                    replace(s, rules=()).prepare(open_dataset(s.kind, s.path, None, s.options)),
                )
                for s in load_config(args.data).datasets
            ]
        else:
            sets = [(Path(args.data).name, open_dataset(args.kind, args.data, args.split, options))]
        if args.band_order:
            order = args.band_order.split(",")
            sets = [(n, [_reordered(s, order) for s in ss]) for n, ss in sets]
        for name, samples in sets:
            bits = {c: b for s in samples for c, (_, b) in load_scheme(s.scheme).codes.items()}
            groups = {"all": list(samples)}
            if args.by_prefix:
                for s in samples:
                    groups.setdefault(s.id.split("_")[0], []).append(s)
            for g, members in groups.items():
                title = f"{name} [{g}] ({len(members)} samples)"
                report(title, measure(members, rules, keep), rules, bits)
    except (InputError, KeyError, ValueError) as exc:
        print(f"cloudmask: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
