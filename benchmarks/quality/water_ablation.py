"""Which part of the training pipeline teaches "lake = shadow": a short `cloudmask train` run
on one dataset of a recipe with one part switched off, then p(water) on T29UNU's SCL lakes.

    python benchmarks/quality/water_ablation.py benchmarks/quality/recipe-h.yaml --out runs/abl
    python benchmarks/quality/water_ablation.py benchmarks/quality/recipe-h.yaml --off bands --out runs/abl-bands

``--off``: any of ``bands`` (every band always fed), ``synthetic``, ``ground``, ``jitter``
(flips and rotations kept, no radiometric jitter); nothing: the recipe's pipeline as it is.
The run is the recipe's own training loop (schedule, moving average, recovery loss), cut to
``--steps``; its ``best`` weights are scored as `cloudmask run` would predict. Prints, for the
first four 512 px tiles at 60 m holding SCL water, the mean p(water) over SCL's lakes, the mean
p(shadow) over SCL's shadows and the share of the lakes called water.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.training.adapters import open_dataset
from cloudmask_cli.training.augment import Augmentation
from cloudmask_cli.training.config import load_config
from cloudmask_cli.training.evaluate import _model_predict
from cloudmask_cli.training.loop import train

PARTS = ("bands", "synthetic", "ground", "jitter")
SCL_WATER, SCL_SHADOW = 6, 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--dataset", default="t29unu-scl", help="the recipe's dataset to train on")
    ap.add_argument("--off", default="", help=f"comma-separated parts off: {', '.join(PARTS)}")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", required=True, help="folder for the run's checkpoints")
    args = ap.parse_args()
    off = {p for p in args.off.split(",") if p}
    if off - set(PARTS):
        ap.error(f"--off: unknown part(s) {sorted(off - set(PARTS))}")
    cfg = load_config(args.recipe)
    spec = [d for d in cfg.datasets if d.name == args.dataset]
    if not spec:
        ap.error(f"{args.recipe} has no dataset {args.dataset!r}")
    aug = cfg.augment
    changes = dict(
        datasets=tuple(spec), epochs=1, steps_per_epoch=args.steps, selection_fraction=0.0,
        val_max_batches=1,
        bands=dataclasses.replace(cfg.bands, keep_all=1.0) if "bands" in off else cfg.bands,
        augment=Augmentation(flips=aug.flips, rotations=aug.rotations) if "jitter" in off else aug,
        synthetic=None if "synthetic" in off else cfg.synthetic,
        ground=None if "ground" in off else cfg.ground,
    )  # fmt: skip
    train(dataclasses.replace(cfg, **changes), out=args.out)
    # the network alone: what it learnt, without the spectral tests of `cloudmask run`
    predict = _model_predict(Path(args.out) / "best.safetensors", "cpu", spectral=False)

    tiles = open_dataset(spec[0].kind, spec[0].path, None, {"resolution": 60.0, "patch": 512})
    water, shadow = CLASSES.index("water"), CLASSES.index("cloud_shadow")
    pw, ps, found = [], [], []
    for s in tiles:
        x, lab = s.read()
        if not (lab == SCL_WATER).any() or len(pw) == 4:
            continue
        desc = np.stack([b.descriptor for b in s.bands]).astype(np.float32)
        p = predict(x, desc, s.bands)
        lake, shade = lab == SCL_WATER, lab == SCL_SHADOW
        pw.append(p[water][lake].mean())
        ps.append(p[shadow][shade].mean())
        found.append((p.argmax(0)[lake] == water).mean())
    print(f"off={sorted(off) or 'nothing'} steps={args.steps}: p(water) on lakes {np.round(pw, 2)}, "
          f"p(shadow) on shadow {np.round(ps, 2)}, lakes called water {np.round(found, 2)}")  # fmt: skip


if __name__ == "__main__":
    main()
