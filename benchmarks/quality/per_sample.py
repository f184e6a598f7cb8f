"""Per-sample cloud F1 of each fold's model beside a leave-one-dataset-out model.

    python benchmarks/quality/per_sample.py benchmarks/quality/recipe-h.yaml runs/cv-h4 biome

For every sample of DATASET: its fold's model (``<cv>/<fold>/best.safetensors``, trained with
the dataset's other scenes) and the model trained without the dataset at all
(``<cv>/without-<dataset>``, from ``cloudmask evaluate --cv K --lodo``) each predict it whole
(512 px tiles, the network's cloud = thin + thick against the other classes, no spectral
tests); the cloud pixels, false positives and false negatives of each are printed, then the
pooled F1. Pixels whose label allows both cloud and clear are left out, as in the CV figures.
What it answers: where leaving a dataset out of training scores that dataset higher, which
samples carry the difference and whether by missed or by false cloud.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.inference.tiling import tiles
from cloudmask_cli.training.config import load_config
from cloudmask_cli.training.crossval import all_samples, make_folds
from cloudmask_cli.training.evaluate import _model_predict
from cloudmask_cli.training.labels import NO_DATA_BITS, load_scheme
from cloudmask_cli.training.sample import RawSample

C = {c: i for i, c in enumerate(CLASSES)}
CLOUD_BITS = np.uint8((1 << C["thin_cloud"]) | (1 << C["thick_cloud"]))
CLEAR = [C["land"], C["water"], C["snow"], C["cloud_shadow"]]


def counts(predict: object, sample: RawSample) -> np.ndarray:
    """(true cloud, false cloud, missed cloud) pixels of ``predict`` on ``sample``."""
    x, label = sample.read(None, list(range(len(sample.bands))))
    ref = load_scheme(sample.scheme).bits(label, sample.id)
    has = np.isfinite(x).any(axis=0)
    desc = np.stack([b.descriptor for b in sample.bands]).astype(np.float32)
    out = np.zeros(3, dtype=np.int64)
    for r, c, h, w in tiles(ref.shape, 512):
        p = predict(x[:, r : r + h, c : c + w], desc, sample.bands)  # type: ignore[operator]
        cloud = p[C["thin_cloud"]] + p[C["thick_cloud"]] > p[CLEAR].max(0)
        lab, ok = ref[r : r + h, c : c + w], has[r : r + h, c : c + w]
        is_cloud = ((lab & ~CLOUD_BITS) == 0) & (lab != 0) & ok
        is_clear = ((lab & CLOUD_BITS) == 0) & (lab != 0) & (lab != NO_DATA_BITS) & ok
        out += [(cloud & is_cloud).sum(), (cloud & is_clear).sum(), (~cloud & is_cloud).sum()]
    return out


def f1(t: np.ndarray) -> float:
    return 100 * 2 * t[0] / max(1, 2 * t[0] + t[1] + t[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("cv", type=Path)
    ap.add_argument("dataset")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(args.config)
    plan = json.loads((args.cv / "folds.json").read_text())
    k = sum(1 for f in plan if f["name"].startswith("fold"))
    lodo = _model_predict(args.cv / f"without-{args.dataset}" / "best.safetensors", "cpu")
    total = {"fold": np.zeros(3, np.int64), "left out": np.zeros(3, np.int64)}
    print("| fold | sample | cloud px | fold model F1 / false / missed | "
          "left-out model F1 / false / missed |\n|---|---|---|---|---|")  # fmt: skip
    for fold in make_folds(all_samples(cfg), k):
        predict = _model_predict(args.cv / fold.name / "best.safetensors", "cpu")
        for s in fold.test.get(args.dataset, []):
            a, b = counts(predict, s), counts(lodo, s)
            total["fold"] += a
            total["left out"] += b
            print(f"| {fold.name} | {s.id} | {a[0] + a[2]} | {f1(a):.1f} / {a[1]} / {a[2]} | "
                  f"{f1(b):.1f} / {b[1]} / {b[2]} |", flush=True)  # fmt: skip
    for name, t in total.items():
        print(f"pooled, {name}: cloud F1 {f1(t):.1f}, false {t[1]}, missed {t[2]}")


if __name__ == "__main__":
    main()
