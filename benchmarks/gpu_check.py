"""CUDA checks that CI cannot run (it has no GPU); run on a machine with one (not run by CI).

    python benchmarks/gpu_check.py --out /tmp/gpu

1. `cloudmask run` on the demo products on CUDA (default float16 autocast, and float32)
   against the CPU (float32): share of equal class codes, largest probability difference.
2. Out-of-memory back-off: with the CUDA allocator capped, a batch that does not fit is halved
   until it does, and the probabilities match a batch-1 run.
3. Training on CUDA: a short B0 run with autocast; finite weights and a falling loss.
4. Model throughput (windows/s, 13 bands, 512 px, transfers included) by batch size, to choose
   the CUDA default.

Writes ``gpu_check.json`` into ``--out`` and prints a summary; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

REPO = Path(__file__).resolve().parents[1]
DEVICE = "cuda"  # --device cpu: a dry run of this script on a machine without a GPU


def compare_run(kind: str, size: int, tmp: Path) -> dict:
    from cloudmask_cli import run
    from cloudmask_cli.demo import write_demo

    product = write_demo(tmp / kind, kind, size=size)
    res: dict = {"product": kind, "size": size}
    codes, probs = {}, {}
    runs = {"cpu": ("cpu", None), DEVICE: (DEVICE, None), "float32": (DEVICE, "float32")}
    for name, (device, precision) in runs.items():
        out = tmp / f"{kind}-{name}.tif"
        t0 = time.perf_counter()
        side = run(product, out, device=device, precision=precision,
                   probabilities=tmp / f"{kind}-{name}-p.tif")  # fmt: skip
        res[f"{name}_s"] = round(time.perf_counter() - t0, 2)
        res["windows"] = side["windows"]["run"]
        with rasterio.open(out) as ds:
            codes[name] = ds.read(1)
        with rasterio.open(tmp / f"{kind}-{name}-p.tif") as ds:
            probs[name] = ds.read().astype(np.float32)
    for name in runs:
        res[f"codes_equal_{name}"] = float((codes["cpu"] == codes[name]).mean())
        res[f"prob_max_diff_{name}"] = float(np.abs(probs["cpu"] - probs[name]).max())
    res["ok"] = res[f"codes_equal_{DEVICE}"] >= 0.995
    return res


def oom_backoff() -> dict:
    from cloudmask_cli.api import load_model
    from cloudmask_cli.inference.engine import Engine

    if DEVICE != "cuda":
        return {"skipped": "needs CUDA"}
    model, _ = load_model(device="cpu")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.5, (32, 13, 512, 512)).astype(np.float32)
    desc = np.stack([d for d in _s2_descriptors()]).astype(np.float32)
    mask = np.ones((32, 13), dtype=bool)
    ref = Engine(model, torch.device(DEVICE), batch_size=1).predict(x[:4], desc, mask[:4])
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(3 * 1024**3 / total)  # 3 GiB
    engine = Engine(model, torch.device(DEVICE), batch_size=32)
    try:
        got = engine.predict(x, desc, mask)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    diff = float(np.abs(got[:4] - ref).max())
    return {"oom_events": engine.oom_events, "final_batch": engine.batch_size,
            "max_diff_vs_batch1": diff, "ok": engine.oom_events > 0 and diff < 0.05}  # fmt: skip


def _s2_descriptors() -> list[np.ndarray]:
    from cloudmask_cli.sensors import get_sensor

    return [b.descriptor for b in get_sensor("sentinel2_msi").bands][:13]


def train_cuda(tmp: Path) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from training_fixtures import training_set

    from cloudmask_cli.training.config import parse_config
    from cloudmask_cli.training.loop import train

    full = DEVICE == "cuda"
    data = training_set(tmp / "train-data", n_train=8, n_val=2, size=256)
    cfg = parse_config({
        "datasets": [{"path": str(data), "kind": "training", "name": "synthetic"}],
        "model": {"segformer": "b0"}, "crop": 128, "batch_size": 16 if full else 2,
        "epochs": 3 if full else 2, "steps_per_epoch": 20 if full else 2, "val_batch_size": 8, "seed": 1, "device": DEVICE, "log_every": 5,
        "workers": 4, "synthetic": {"p": 0.5},
        "optimiser": {"lr": 5e-4, "warmup_start": 5e-6, "warmup_steps": 10},
    }, "gpu-check.yaml")  # fmt: skip
    t0 = time.perf_counter()
    result = train(cfg, out=tmp / "train-run")
    seconds = time.perf_counter() - t0
    losses = [r["loss"] for r in result.history if r.get("type") == "step"]
    from safetensors.torch import load_file

    weights = load_file(str(tmp / "train-run" / "last.safetensors"))
    finite = all(torch.isfinite(t).all().item() for t in weights.values())
    return {"steps": result.steps, "seconds": round(seconds, 1), "first_loss": losses[0],
            "last_loss": losses[-1], "finite": finite,
            "ok": finite and losses[-1] < losses[0]}  # fmt: skip


def sync(reset: bool = False) -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()
        if reset:
            torch.cuda.reset_peak_memory_stats()


def throughput() -> dict:
    from cloudmask_cli.api import load_model
    from cloudmask_cli.inference.engine import Engine

    model, _ = load_model(device="cpu")
    desc = np.stack(_s2_descriptors()).astype(np.float32)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 0.5, (64, 13, 512, 512)).astype(np.float32)
    mask = np.ones((64, 13), dtype=bool)
    rows = {}
    n = 64 if DEVICE == "cuda" else 4
    x, mask = x[:n], mask[:n]
    for batch in (1, 4, 8, 16, 32, 64) if DEVICE == "cuda" else (1, 2):
        engine = Engine(model, torch.device(DEVICE), batch_size=batch)
        engine.predict(x[:batch], desc, mask[:batch])  # warm-up (kernels, descriptor cache)
        sync(reset=True)
        t0 = time.perf_counter()
        engine.predict_tensor(x, desc, mask)  # as `cloudmask run`: probabilities stay there
        sync()
        dt = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 1024**3 if DEVICE == "cuda" else 0.0
        rows[batch] = {"windows_per_s": round(n / dt, 1), "peak_gpu_gb": round(peak, 2)}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself")
    ap.add_argument("--small", action="store_true", help="small demo products (dry run)")
    ap.add_argument("--skip", nargs="*", default=[], help="checks to leave out")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device")
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "none (dry run)"
    report: dict = {"gpu": gpu, "torch": torch.__version__}
    k = 4 if args.small else 1
    checks = {
        "run_sentinel2": lambda tmp: compare_run("sentinel2", 2400 // k, tmp),
        "run_landsat8": lambda tmp: compare_run("landsat8", 2400 // k, tmp),
        "run_perusat1": lambda tmp: compare_run("perusat1", 1200 // k, tmp),
        "oom_backoff": lambda tmp: oom_backoff(),
        "train": train_cuda,
        "throughput": lambda tmp: throughput(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, check in checks.items():
            if name in args.skip:
                continue
            t0 = time.perf_counter()
            try:
                report[name] = check(Path(tmp))
            except Exception as exc:  # one failed check must not hide the others
                report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
            print(
                name, round(time.perf_counter() - t0, 1), "s:", json.dumps(report[name]), flush=True
            )
            (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    failed = [k for k, v in report.items() if isinstance(v, dict) and v.get("ok") is False]
    print("FAILED:" if failed else "all CUDA checks passed", *failed)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
