"""What the spectral water and snow tests (`cloudmask_cli/inference/refine.py`) change: one model
scored with and without them on the same pixels, every labelled sample of a config's datasets.

    python benchmarks/quality/spectral_tests.py [--weights W] [--config benchmarks/quality/recipe-h.yaml]

Prints per dataset cloud F1, invalid F1, and water / shadow recall and precision. With the bundled
weights most of these samples are training data (the figures overstate the model; the change
the tests make is what is read here). Cross-validated, the same pairing is the ``network`` row
of `cloudmask evaluate --cv` beside ``model``.
"""

from __future__ import annotations

import argparse

from cloudmask_cli.training.config import load_config
from cloudmask_cli.training.crossval import all_samples
from cloudmask_cli.training.evaluate import _model_predict, score_sets


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="default: the bundled weights")
    ap.add_argument("--config", default="benchmarks/quality/recipe-h.yaml")
    args = ap.parse_args()
    sets = list(all_samples(load_config(args.config)).items())
    print("tests | dataset | cloud F1 | invalid F1 | water R/P | shadow R/P")
    for spectral in (False, True):
        per_set, _ = score_sets(sets, _model_predict(args.weights, "cpu", spectral))
        for name, scores in per_set.items():
            r = scores.report()
            w, s = r.per_class["water"], r.per_class["cloud_shadow"]
            print(f"{'with' if spectral else 'without'} | {name} | {_pct(r.cloud.f1)} | "
                  f"{_pct(r.invalid.f1)} | {_pct(w.recall)}/{_pct(w.precision)} | "
                  f"{_pct(s.recall)}/{_pct(s.precision)}")  # fmt: skip


if __name__ == "__main__":
    main()
