"""Post-processing of the model's probabilities, scored on cross-validated folds.

    python benchmarks/quality/postprocess.py benchmarks/quality/recipe-a.yaml runs/cv-a

Each fold's model (``<cv>/<fold>/best.safetensors``, as `cloudmask evaluate --cv` left it)
predicts its test samples once; every variant below is derived from those probabilities and
scored on the same pixels: the cloud mask at another probability threshold, and the cloud (and
shadow) masks grown by a few pixels, as Fmask and s2cloudless do by default. Prints pooled
cloud / invalid F1 per dataset and the mean of datasets, as markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.inference.tiling import tiles
from cloudmask_cli.training.config import load_config
from cloudmask_cli.training.crossval import all_samples, make_folds
from cloudmask_cli.training.evaluate import _model_predict
from cloudmask_cli.training.labels import NO_DATA_BITS, load_scheme
from cloudmask_cli.training.metrics import CLOUD, INVALID, Scores

C = {c: i for i, c in enumerate(CLASSES)}


def _disk(r: int) -> torch.Tensor:
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return torch.from_numpy((x * x + y * y <= r * r + r).astype(np.float32))[None, None]


def _grow(mask: np.ndarray, r: int) -> np.ndarray:
    if r <= 0:
        return mask
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    return F.conv2d(t, _disk(r), padding=r)[0, 0].numpy() > 0


def _onehot(codes: np.ndarray) -> np.ndarray:
    out = np.zeros((len(CLASSES), *codes.shape), dtype=np.float32)
    np.put_along_axis(out, codes[None].astype(np.int64), 1.0, axis=0)
    return out


def variant(
    probs: np.ndarray, threshold: float = 0.5, grow: int = 0, shadow: int = 0
) -> np.ndarray:
    """One-hot probabilities of the mask after the post-processing."""
    codes = probs[:-1].argmax(0)
    p_cloud = probs[C["thin_cloud"]] + probs[C["thick_cloud"]]
    thick = probs[C["thick_cloud"]] >= probs[C["thin_cloud"]]
    cloud = p_cloud > threshold
    codes = np.where(cloud, np.where(thick, C["thick_cloud"], C["thin_cloud"]), codes)
    codes = np.where(~cloud & (codes >= C["thin_cloud"]) & (codes <= C["thick_cloud"]),
                     np.argmax(probs[[C["land"], C["water"], C["snow"], C["cloud_shadow"]]], 0)
                     .choose([C["land"], C["water"], C["snow"], C["cloud_shadow"]]), codes)  # fmt: skip
    if grow:
        ring = _grow(cloud, grow) & ~cloud
        codes = np.where(ring, C["thin_cloud"], codes)
    if shadow:
        sh = codes == C["cloud_shadow"]
        ring = _grow(sh, shadow) & ~sh & (codes < C["thin_cloud"])
        codes = np.where(ring, C["cloud_shadow"], codes)
    return _onehot(codes)


VARIANTS = {
    "as run": None,  # the probabilities folded per style, as `cloudmask run` writes them
    "cloud p>0.5, then argmax": {},
    "cloud p>0.4": {"threshold": 0.4},
    "cloud p>0.3": {"threshold": 0.3},
    "cloud p>0.6": {"threshold": 0.6},
    "grow cloud 1 px": {"grow": 1},
    "grow cloud 2 px": {"grow": 2},
    "grow cloud 4 px": {"grow": 4},
    "grow cloud 2, shadow 2 px": {"grow": 2, "shadow": 2},
}


def score_folds(config: str, cv: Path, window: int = 512) -> dict[str, dict[str, Scores]]:
    """{variant: {dataset: pooled Scores}} over the k folds of ``cv``."""
    cfg = load_config(config)
    plan = json.loads((cv / "folds.json").read_text())
    k = sum(1 for f in plan if f["name"].startswith("fold"))
    out: dict[str, dict[str, Scores]] = {v: {} for v in VARIANTS}
    for fold in make_folds(all_samples(cfg), k):
        weights = cv / fold.name / "best.safetensors"
        if not (cv / fold.name / "scores-model.npz").is_file():
            # `best` is rewritten each epoch while a fold trains: only a scored fold is done
            print(f"{fold.name}: not finished, skipped", file=sys.stderr)
            continue
        predict = _model_predict(weights, "cpu")
        for name, samples in fold.test.items():
            for sample in samples:
                x, label = sample.read(None, list(range(len(sample.bands))))
                ref = load_scheme(sample.scheme).bits(label, sample.id)
                has_data = np.isfinite(x).any(axis=0)
                ref[~has_data] = NO_DATA_BITS
                desc = np.stack([b.descriptor for b in sample.bands]).astype(np.float32)
                for r, c, h, w in tiles(ref.shape, window):
                    part = (slice(r, r + h), slice(c, c + w))
                    probs = predict(x[:, part[0], part[1]], desc, sample.bands)
                    for v, kw in VARIANTS.items():
                        s = out[v].setdefault(name, Scores())
                        pp = probs if kw is None else variant(probs, **kw)
                        s.update_probs(pp, ref[part], has_data[part])
        print(f"{fold.name}: scored", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("cv", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    scores = score_folds(args.config, args.cv)
    sets = sorted({d for v in scores.values() for d in v})
    print("| variant | " + " | ".join(f"{d} cloud / invalid F1" for d in sets) + " | mean |")
    print("|---" * (len(sets) + 2) + "|")
    for v, per in scores.items():
        cells, cl, inv = [], [], []
        for d in sets:
            s = per[d]
            # as the cross-validation reports them (`crossval._figures`)
            c = s.masks["cloud"].binary(CLOUD).f1
            i = s.masks["valid"].binary(INVALID).f1
            cells.append(f"{100 * c:.1f} / {100 * i:.1f}" if c is not None else "-")
            if c is not None:
                cl.append(c)
                inv.append(i)
        print(
            f"| {v} | "
            + " | ".join(cells)
            + f" | {100 * np.mean(cl):.1f} / {100 * np.mean(inv):.1f} |"
        )


if __name__ == "__main__":
    main()
