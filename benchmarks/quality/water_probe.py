"""What a model says on SCL's water and shadow pixels of T29UNU, tile by tile and band set by band set.

    python benchmarks/quality/water_probe.py WEIGHTS [WEIGHTS ...] --tiles 512_512,256_768
    python benchmarks/quality/water_probe.py WEIGHTS --resolution 20 --patch 768 --tiles 1536_1536

Tiles are named ``<row>_<col>`` of the ``scl`` adapter's grid at that resolution and patch.
For each: mean p(water) and p(shadow) over the pixels SCL calls water, over those it calls
shadow, and the share of its water the argmax calls water / shadow; with all bands, and with
the visible bands, visible + NIR, and NIR + SWIR alone (a model that reads the spectrum must
tell the lough, NIR ~0.01, from shadowed vegetation, NIR ~0.12, at least on the last).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.training.adapters import open_dataset
from cloudmask_cli.training.evaluate import _model_predict

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "products" / "sentinel2"
T29 = SHARED / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
SUBSETS = {"all": None, "visible": ["B02", "B03", "B04"], "visible+NIR": ["B02", "B03", "B04", "B8A"],
           "NIR+SWIR": ["B8A", "B11", "B12"]}  # fmt: skip
SCL_WATER, SCL_SHADOW = 6, 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--tiles", required=True, help="comma-separated <row>_<col> tile names")
    ap.add_argument("--product", default=str(T29))
    ap.add_argument("--resolution", type=float, default=60.0)
    ap.add_argument("--patch", type=int, default=256)
    args = ap.parse_args()
    samples = open_dataset(
        "scl", args.product, None, {"resolution": args.resolution, "patch": args.patch}
    )
    by_tile = {"_".join(s.id.rsplit("_", 2)[-2:]): s for s in samples}
    water, shadow = CLASSES.index("water"), CLASSES.index("cloud_shadow")
    print(
        "| weights | tile | bands | p(water), p(shadow) on SCL water | on SCL shadow | SCL water called water / shadow |"
    )
    print("|---|---|---|---|---|---|")
    for weights in args.weights:
        predict = _model_predict(weights, "cpu", spectral=False)  # the network alone
        for tile in args.tiles.split(","):
            s = by_tile[tile]
            x, label = s.read()
            names = [b.name for b in s.bands]
            w, sh = label == SCL_WATER, label == SCL_SHADOW
            for subset, keep in SUBSETS.items():
                idx = list(range(len(names))) if keep is None else [names.index(n) for n in keep]
                bands = [s.bands[i] for i in idx]
                desc = np.stack([b.descriptor for b in bands]).astype(np.float32)
                prob = predict(x[idx], desc, bands)
                top = prob.argmax(0)[w]
                print(f"| {weights} | {tile} | {subset} | {prob[water][w].mean():.2f}, {prob[shadow][w].mean():.2f} "
                      f"| {prob[water][sh].mean():.2f}, {prob[shadow][sh].mean():.2f} "
                      f"| {100 * (top == water).mean():.0f} % / {100 * (top == shadow).mean():.0f} % |")  # fmt: skip


if __name__ == "__main__":
    main()
