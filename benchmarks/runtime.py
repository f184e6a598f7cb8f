"""The model's runtimes on the CPU, side by side: time per window and whole-product masks.

    python benchmarks/runtime.py PRODUCT [PRODUCT ...] --resolution 60 [--windows 8] [--repeat 5]

For each product: ``--windows`` real windows of the run's plan (from the middle of the
scene) go through the bundled model in each runtime (`inference.engine.RUNTIMES`: eager
PyTorch; the decoder folded, alone or with the SegFormer on OpenVINO, SEnSeI's pooling
compiled, both), interleaved, ``--repeat`` times; the best and median seconds per window are reported. Then the whole
product is masked by `cloudmask_cli.api.run` in each runtime, and the share of pixels whose
class equals eager PyTorch's is reported (issue 23: at least 99.9 %). Appended to
benchmarks/results.md with the machine and the command.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

RUNTIMES = ("torch", "folded", "openvino", "compiled", "openvino+compiled")


def per_window(product: str, res: float, n: int, repeat: int, batch: int) -> dict[str, list[float]]:
    import numpy as np
    import torch

    from cloudmask_cli.api import load_model
    from cloudmask_cli.inference.engine import Engine
    from cloudmask_cli.inference.pipeline import RunOptions, plan
    from cloudmask_cli.products import open_product

    scene = open_product(product, resolution=res or None)
    windows = plan(scene, RunOptions(), None)
    mid = max(0, len(windows) // 2 - n // 2)
    x = np.stack([scene.read(w) for w in windows[mid : mid + n]])
    scene.close()
    bands = np.isfinite(x).reshape(len(x), x.shape[1], -1).any(-1)
    desc = scene.descriptors()
    model, _ = load_model(None)
    engines = {r: Engine(model, torch.device("cpu"), batch, runtime=r) for r in RUNTIMES}
    times: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    for e in engines.values():
        e.predict(x[:1], desc, bands[:1])  # warm-up
    for _ in range(repeat):
        for r, e in engines.items():
            t0 = time.perf_counter()
            e.predict_tensor(x, desc, bands)
            times[r].append((time.perf_counter() - t0) / len(x))
    return times


def agreement(product: str, res: float, tmp: Path) -> tuple[dict[str, float], dict[str, float]]:
    import rasterio

    from cloudmask_cli.api import run

    masks, model_s = {}, {}
    for r in RUNTIMES:
        out = tmp / f"{r}.tif"
        side = run(product, out, resolution=res or None, device="cpu", runtime=r, overwrite=True)
        model_s[r] = side["timings"]["model_s"]
        with rasterio.open(out) as ds:
            masks[r] = ds.read(1)
    ref = masks["torch"]
    same = {}
    for r, m in masks.items():
        valid = (ref != 255) | (m != 255)
        same[r] = float((ref == m)[valid].mean())
    return same, model_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("products", nargs="+")
    ap.add_argument("--resolution", type=float, default=0.0, help="0: the product's default")
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=2)
    args = ap.parse_args()
    from cloudmask_cli.cli.common import process_defaults

    process_defaults()  # as `cloudmask run` sets the process up, before torch loads
    sys.path.insert(0, str(Path(__file__).parent))
    from run import RESULTS, commit, machine

    lines = []
    for product in args.products:
        t = per_window(product, args.resolution, args.windows, args.repeat, args.batch_size)
        with tempfile.TemporaryDirectory() as tmp:
            same, model_s = agreement(product, args.resolution, Path(tmp))
        for r in RUNTIMES:
            med = statistics.median(t[r])
            lines.append(
                f"| {Path(product).name[:40]} | {args.resolution:g} | {r} | {min(t[r]):.3f} / "
                f"{med:.3f} | {statistics.median(t['torch']) / med:.2f}x | {model_s[r]:.1f} | "
                f"{100 * same[r]:.4f} % |"
            )
            print(lines[-1], flush=True)
    header = (
        "| product | res m | runtime | s/window (best / median) | speed-up (medians) "
        "| whole run model_s | same class as torch |\n|---|---|---|---|---|---|---|\n"
    )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = "python benchmarks/" + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    block = (f"\n## {stamp}, commit {commit()}: the SegFormer's runtime\n\nMachine: {machine()}\n\n"
             f"Command: `{command}`\n\n{header}" + "\n".join(lines) + "\n")  # fmt: skip
    with open(RESULTS, "a") as f:
        f.write(block)
    print(block)


if __name__ == "__main__":
    main()
