"""What a quicklook costs next to the run (not run by CI).

    python benchmarks/quicklook.py /tmp/bench/S2A_MSIL1C_*.SAFE --resolution 10 20 60

For each resolution: a mask COG on the product's grid is written first (the writer's own code,
not timed: the run writes it anyway), then `write_quicklook` is timed in a fresh process
(cold GDAL cache, as after a run), split into the decimated read of the product, the read of
the mask's overviews and the drawing. Prints one Markdown row per resolution.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_mask(product: str, resolution: float, path: Path) -> tuple[int, int]:
    """A 7class mask on the product's grid: blobs of every class, written strip by strip."""
    from cloudmask_cli.inference.writer import MaskWriter
    from cloudmask_cli.products import open_product

    scene = open_product(product, resolution=resolution)
    h, w = scene.shape
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 6, size=(h // 256 + 1, w // 256 + 1), dtype=np.uint8)
    with MaskWriter(path, scene.grid, "7class", overwrite=True) as writer:
        for r in range(0, h, 512):
            n = min(512, h - r)
            rows = np.arange(r, r + n) // 256
            writer.write(coarse[rows][:, np.arange(w) // 256])
        writer.finish({})
    return h, w


def measure(product: str, resolution: float, mask: Path, size: int) -> dict:
    """Run in a fresh process: the quicklook's parts, timed."""
    from PIL import Image

    from cloudmask_cli.products import open_product
    from cloudmask_cli.quicklook import coarse_scene, read_image, read_mask, write_quicklook

    scene = open_product(product, resolution=resolution)
    t0 = time.perf_counter()
    coarse = coarse_scene(scene, (size - 24) // 2, size - 44 - 48 - 24)  # as render()
    rgb, _, _ = read_image(coarse)
    t1 = time.perf_counter()
    read_mask(mask, rgb.shape[:2])
    t2 = time.perf_counter()
    coarse.close()
    scene = open_product(product, resolution=resolution)  # the whole thing, again cold-ish
    out = mask.with_suffix(".png")
    t3 = time.perf_counter()
    write_quicklook(out, scene, mask, size=size)
    t4 = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "product_read_s": round(t1 - t0, 2),
        "mask_read_s": round(t2 - t1, 3),
        "quicklook_s": round(t4 - t3, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
        "png": list(Image.open(out).size),
        "png_kb": round(out.stat().st_size / 1024),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("product")
    ap.add_argument("--resolution", type=float, nargs="+", default=[10.0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # internal: mask, resolution
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.product, float(args.measure[1]), Path(args.measure[0]),
                                 args.size)))  # fmt: skip
        return
    print("| resolution | grid | product read | mask overviews | whole quicklook | CPU s | "
          "peak RSS | PNG |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        for res in args.resolution:
            mask = Path(tmp) / f"mask_{res:g}.tif"
            h, w = write_mask(args.product, res, mask)
            proc = subprocess.run(
                [sys.executable, __file__, args.product, "--size", str(args.size),
                 "--measure", str(mask), str(res)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {res:g} m | {w}×{h} | {m['product_read_s']} s | {m['mask_read_s']} s | "
                  f"{m['quicklook_s']} s | {m['cpu_s']} | {m['peak_rss_gb']} GB | "
                  f"{m['png'][0]}×{m['png'][1]}, {m['png_kb']} kB |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
