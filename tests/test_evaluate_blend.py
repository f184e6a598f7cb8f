"""`evaluate` scores exactly what `cloudmask run` writes: the same overlapping windows, blended
the same way, on a product larger than one window."""

from __future__ import annotations

from typer.testing import CliRunner

from cloudmask_cli.cli import app
from cloudmask_cli.demo.sentinel2 import write_sentinel2
from cloudmask_cli.training.evaluate import evaluate


def test_evaluate_scores_the_mask_run_writes(tmp_path, tiny_weights) -> None:
    safe = write_sentinel2(tmp_path, level="L2A", size_10m=1300, seed=3)
    out = tmp_path / "mask.tif"
    # evaluate runs eager PyTorch one window at a time; the run is asked for both too (other
    # runtimes and batch sizes agree to ~1e-5, which can flip a near-tie pixel of this
    # untrained model: one did when the bilinear kernel's rounding changed)
    res = CliRunner().invoke(app, ["run", str(safe), "-o", str(out), "--weights",
                                   str(tiny_weights), "--resolution", "20",
                                   "--runtime", "torch", "--batch-size", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    # one sample: the whole 650 px product at 20 m, four 512 px windows overlapping by 138-374 px
    opts = {"resolution": 20.0, "patch": 1000}
    model = evaluate(safe.parent, kind="scl", options=opts, weights=tiny_weights, device="cpu")
    written = evaluate(safe.parent, kind="scl", options=opts, mask=out, style="7class")
    assert model["samples"] == written["samples"] == 1
    assert model["overall"]["per_class"] == written["overall"]["per_class"]
    assert model["overall"]["pixels"] > 300_000
