"""Training speed on the CPU: seconds per optimiser step of a recipe, samples read per crop
from their files or held whole in memory (`training.datasets.SampleCache`).

    python benchmarks/train_speed.py benchmarks/quality/recipe-hl.yaml [--steps 60] [--fold 1]

Trains the first ``--steps`` steps of the recipe's cross-validation fold ``--fold`` (one
thread, as `cloudmask evaluate --cv` trains a fold) twice, each in its own process: once with
the sample cache off, once on; reports the wall time per step, peak memory, and whether the
two runs ended on the same weights (they must: a crop cut from a held sample is the crop
read from its files). Appended to benchmarks/results.md with the machine and the command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results.md")


def job(config: str, fold: int, steps: int, cache: bool, out: str) -> dict:
    import resource

    import torch
    from safetensors.torch import load_file

    from cloudmask_cli.training import crossval, datasets
    from cloudmask_cli.training.config import load_config
    from cloudmask_cli.training.loop import split_prepared, train

    if not cache:
        datasets.SAMPLE_CACHE_BYTES = 0  # nothing fits: every crop read from its files
    torch.set_num_threads(1)
    cfg = load_config(config)
    f = crossval.make_folds(crossval.all_samples(cfg), 5)[fold - 1]
    fcfg = crossval.fold_config(cfg, f, Path(out))
    found = [d.narrow(f.train[d.name]) for d in fcfg.datasets]
    splits = split_prepared(fcfg, found, [None] * len(found))
    t0 = time.perf_counter()
    train(fcfg, out=out, splits=splits, max_steps=steps)
    wall = time.perf_counter() - t0
    w = load_file(Path(out) / "last.safetensors")
    digest = hashlib.sha256(b"".join(w[k].numpy().tobytes() for k in sorted(w))).hexdigest()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"wall": wall, "weights": digest[:16], "rss_gb": rss}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_job":
        _, _, config, fold, steps, cache, out = sys.argv
        print(json.dumps(job(config, int(fold), int(steps), cache == "1", out)))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from run import commit, machine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--fold", type=int, default=1)
    args = ap.parse_args()
    got = {}
    for cache in ("0", "1"):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, __file__, "_job", args.config, str(args.fold),
                   str(args.steps), cache, tmp]  # fmt: skip
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            got[cache] = json.loads(line.strip().splitlines()[-1])
            print(cache, got[cache], flush=True)
    same = got["0"]["weights"] == got["1"]["weights"]
    rows = [
        f"| {Path(args.config).name} fold {args.fold} | {args.steps} | {name} | "
        f"{got[c]['wall'] / args.steps:.2f} | {got[c]['rss_gb']:.2f} |"
        for c, name in (("0", "read per crop"), ("1", "held in memory"))
    ]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = "python benchmarks/" + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    block = (f"\n## {stamp}, commit {commit()}: training speed\n\nMachine: {machine()}\n\n"
             f"Command: `{command}`\n\n| recipe | steps | samples | s/step | peak RSS GB |\n"
             "|---|---|---|---|---|\n" + "\n".join(rows)
             + f"\n\nSame weights after {args.steps} steps: {'yes' if same else 'NO'} "
             f"({got['0']['weights']}, {got['1']['weights']}); speed-up "
             f"{got['0']['wall'] / got['1']['wall']:.2f}x.\n")  # fmt: skip
    with open(RESULTS, "a") as f:
        f.write(block)
    print(block)


if __name__ == "__main__":
    main()
