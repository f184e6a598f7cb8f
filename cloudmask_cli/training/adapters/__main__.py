"""``python -m cloudmask_cli.training.adapters KIND SRC DST [--split S] [--option k=v ...]``."""

from __future__ import annotations

import argparse
import sys

from cloudmask_cli.errors import InputError
from cloudmask_cli.training.adapters import ADAPTERS, convert, parse_options


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m cloudmask_cli.training.adapters",
        description="Convert a public cloud dataset to the training format.",
    )
    p.add_argument("kind", choices=sorted(ADAPTERS))
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--split", default=None)
    p.add_argument("--format", default="tif", choices=["tif", "npz"])
    p.add_argument("--option", action="append", default=[], help="adapter option key=value")
    args = p.parse_args(argv)
    try:
        options = parse_options(args.option)
        written = convert(args.kind, args.src, args.dst, args.split, options, fmt=args.format)
    except InputError as exc:
        print(f"cloudmask: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(written)} samples written to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
