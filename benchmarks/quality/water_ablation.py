"""Which part of the training pipeline teaches "lake = shadow": train a short run on one
dataset with one part switched off, then score p(water) on T29UNU's SCL lakes.

    python benchmarks/quality/water_ablation.py benchmarks/quality/recipe-h.yaml --off bands
    python benchmarks/quality/water_ablation.py benchmarks/quality/recipe-h.yaml --off synthetic,ground

``--off``: any of ``bands`` (every band always fed), ``synthetic``, ``ground``, ``jitter``
(flips and rotations kept, no radiometric jitter); nothing: the recipe's pipeline as it is.
Prints, for the first four 512 px tiles holding SCL water of the tile's SCL grid at 60 m, the mean p(water)
over SCL's lakes, the mean p(shadow) over SCL's shadows and the share of the lakes called water.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.model.losses import ambiguous_cross_entropy
from cloudmask_cli.model.network import build_model
from cloudmask_cli.training import datasets as D
from cloudmask_cli.training.adapters import open_dataset
from cloudmask_cli.training.augment import Augmentation
from cloudmask_cli.training.config import load_config
from cloudmask_cli.training.ground import BrightGround
from cloudmask_cli.training.loop import load_splits, model_config
from cloudmask_cli.training.synthetic import SyntheticClouds

PARTS = ("bands", "synthetic", "ground", "jitter")
SCL_WATER, SCL_SHADOW = 6, 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--dataset", default="t29unu-scl", help="the recipe's dataset to train on")
    ap.add_argument("--off", default="", help=f"comma-separated parts off: {', '.join(PARTS)}")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    off = {p for p in args.off.split(",") if p}
    if off - set(PARTS):
        ap.error(f"--off: unknown part(s) {sorted(off - set(PARTS))}")
    torch.set_num_threads(1)
    cfg = load_config(args.recipe)
    spec = [d for d in cfg.datasets if d.name == args.dataset]
    if not spec:
        ap.error(f"{args.recipe} has no dataset {args.dataset!r}")
    cfg = dataclasses.replace(cfg, datasets=tuple(spec), selection_fraction=0.0)
    samples = load_splits(cfg)[0][0]
    bands = dataclasses.replace(cfg.bands, keep_all=1.0) if "bands" in off else cfg.bands
    aug = cfg.augment
    if "jitter" in off:
        aug = Augmentation(flips=aug.flips, rotations=aug.rotations)
    syn = (
        None
        if "synthetic" in off or cfg.synthetic is None
        else SyntheticClouds.from_config(cfg.synthetic)
    )
    ground = None if "ground" in off or cfg.ground is None else BrightGround.from_config(cfg.ground)
    ds = D.TrainingDataset(samples, cfg.crop, bands, aug, cfg.seed, syn, ground, None)
    net = build_model(model_config(cfg), seed=cfg.seed).train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.optimiser.lr, weight_decay=1e-4)
    rng = np.random.default_rng(cfg.seed)
    for step in range(args.steps):
        keys = [
            (step * cfg.batch_size + k, int(rng.integers(len(samples))))
            for k in range(cfg.batch_size)
        ]
        b = D.collate([ds[k] for k in keys])
        loss = ambiguous_cross_entropy(net(b["x"], b["descriptors"], b["band_mask"]), b["possible"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    tiles = open_dataset(spec[0].kind, spec[0].path, None, {"resolution": 60.0, "patch": 512})
    water, shadow = CLASSES.index("water"), CLASSES.index("cloud_shadow")
    pw, ps, found = [], [], []
    with torch.no_grad():
        for s in tiles:
            x, lab = s.read()
            if not (lab == SCL_WATER).any() or len(pw) == 4:
                continue
            desc = torch.from_numpy(np.stack([b.descriptor for b in s.bands]).astype(np.float32))
            p = net(torch.from_numpy(x)[None], desc).softmax(1)[0].numpy()
            lake, shade = lab == SCL_WATER, lab == SCL_SHADOW
            pw.append(p[water][lake].mean())
            ps.append(p[shadow][shade].mean())
            found.append((p.argmax(0)[lake] == water).mean())
    print(f"off={sorted(off) or 'nothing'} steps={args.steps}: p(water) on lakes {np.round(pw, 2)}, "
          f"p(shadow) on shadow {np.round(ps, 2)}, lakes called water {np.round(found, 2)}")  # fmt: skip


if __name__ == "__main__":
    main()
