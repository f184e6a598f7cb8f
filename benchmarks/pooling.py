"""SEnSeI band pooling in cache-sized row blocks against one block of every row (the old way).

Same inputs, the two interleaved in one process, then the whole bundled model the same way
(`POOL_BLOCK_BYTES` raised so one block holds every row). Prints best and median seconds.

    python benchmarks/pooling.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import cloudmask_cli.model.sensei as sensei
from cloudmask_cli.model.checkpoint import load_checkpoint
from cloudmask_cli.sensors import get_sensor
from cloudmask_cli.weights import default_weights


def timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    b, n, c, h = 2, 13, 32, args.size
    s, weight = torch.rand(b, n, h, h, generator=g), torch.ones(b, n, h, h)
    alpha, omega, phi = (torch.rand(b, n, c, generator=g) for _ in range(3))
    model, _, _ = load_checkpoint(default_weights(), device=torch.device("cpu"))
    bands = get_sensor("sentinel2_msi").bands[:n]
    desc = torch.stack([torch.as_tensor(bd.descriptor, dtype=torch.float32) for bd in bands])
    x = torch.rand(b, n, h, h, generator=g) * 0.5
    mask = torch.ones(b, n, dtype=torch.bool)
    results: dict[str, list[float]] = {}
    default = sensei.POOL_BLOCK_BYTES
    for _ in range(args.reps):
        for name, block in (("row blocks", default), ("one block", 1 << 40)):
            sensei.POOL_BLOCK_BYTES = block
            results.setdefault(f"pooling, {name}", []).extend(
                timed(lambda: sensei.pool_inplace(s, weight, alpha, omega, phi), 1)
            )
            with torch.inference_mode():
                results.setdefault(f"whole model, {name}", []).extend(
                    timed(lambda: model(x, desc.expand(b, -1, -1), mask), 1))  # fmt: skip
    sensei.POOL_BLOCK_BYTES = default
    print(f"{b} x {n} bands x {h}^2, {args.threads} thread(s), {args.reps} reps each, interleaved")
    for name, v in results.items():
        print(f"  {name:26s} best {min(v):.3f} s  median {statistics.median(v):.3f} s")


if __name__ == "__main__":
    main()
