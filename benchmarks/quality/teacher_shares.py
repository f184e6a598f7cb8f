"""Share of each label code's pixels a teacher (`cloudmask_cli.training.teacher`) narrows, and,
where the labels decide shadow against clear, how often its confident calls are wrong.

    python benchmarks/quality/teacher_shares.py ../shared/data/labelled/landsat8-biome-patches \
        --kind biome-patches --trust clear,shadow
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloudmask_cli.errors import InputError
from cloudmask_cli.training.adapters import add_dataset_arguments, open_dataset, parse_options
from cloudmask_cli.training.teacher import Teacher, measure, report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python benchmarks/quality/teacher_shares.py",
        description="Share of each label code's pixels a teacher narrows, and its error rates.",
    )
    add_dataset_arguments(p, "a dataset folder")
    p.add_argument("--peer", default=Teacher.peer)
    p.add_argument("--threshold", type=float, default=Teacher.threshold)
    p.add_argument("--trust", default=",".join(Teacher.trust))
    args = p.parse_args(argv)
    try:
        options = parse_options(args.option)
        trust = [t for t in args.trust.split(",") if t]
        teacher = Teacher.from_config(
            {"peer": args.peer, "threshold": args.threshold, "trust": trust}
        )
        samples = open_dataset(args.kind, args.data, args.split, options)
        report(
            f"{Path(args.data).name} ({len(samples)} samples)", measure(samples, teacher), teacher
        )
    except (InputError, ValueError) as exc:
        print(f"cloudmask: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
