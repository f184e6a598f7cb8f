"""`cloudmask batch`: many products, a corrupt one, resume after a kill, a Dask LocalCluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from cloudmask_cli.batch import expand_inputs, is_complete, output_for, run_batch
from cloudmask_cli.cli import app
from cloudmask_cli.demo.landsat import write_landsat
from cloudmask_cli.demo.sentinel2 import write_sentinel2

runner = CliRunner()


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("products")
    good = [
        write_sentinel2(root / "a", size_10m=120, seed=1),
        write_sentinel2(root / "b", level="L2A", size_10m=120, seed=2, zipped=True),
        write_landsat(root / "c", spacecraft="LC08", size=60, seed=3, tar=True),
    ]
    bad = root / "d" / "LC08_L1TP_001001_20200101_20200102_02_T1.tar"
    bad.parent.mkdir()
    bad.write_bytes(b"not a tar at all")
    return [*good, bad]


def _options(tiny_weights: Path) -> dict:
    return {"weights": str(tiny_weights), "device": "cpu", "resolution": 60.0}


def test_expand_inputs_globs_and_lists(tmp_path, products):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# products\n{products[0]}\n\n{products[2]}\n")
    got = expand_inputs([f"@{listing}", str(products[1].parent / "*.zip"), str(products[0])])
    assert got == [products[0].resolve(), products[2].resolve(), products[1].resolve()]
    assert output_for(products[1], tmp_path, "{name}.tif").name == products[1].name[:-4] + ".tif"


def test_batch_reports_the_corrupt_product_and_finishes_the_others(
    tmp_path, products, tiny_weights
):
    report = tmp_path / "report.csv"
    res = runner.invoke(
        app,
        [
            "batch",
            *map(str, products),
            "--out-dir",
            str(tmp_path / "out"),
            "--weights",
            str(tiny_weights),
            "--device",
            "cpu",
            "--resolution",
            "60",
            "--report",
            str(report),
        ],
    )
    assert res.exit_code == 1, res.output
    rows = report.read_text().splitlines()
    assert rows[0].startswith("product,output,status,error,seconds,cloud_fraction")
    status = {Path(r.split(",")[0]).name: r.split(",")[2] for r in rows[1:]}
    assert list(status.values()).count("done") == 3
    assert status[products[3].name] == "failed"
    assert products[3].name in res.output and "not" in res.output
    masks = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(masks) == 6 and all(m.endswith((".tif", ".tif.json")) for m in masks)
    # run again: everything complete is skipped, the corrupt one fails again
    again = run_batch(products, tmp_path / "out", _options(tiny_weights))
    assert [r.status for r in again] == ["skipped", "skipped", "skipped", "failed"]


def test_two_local_workers_give_the_same_masks(tmp_path, products, tiny_weights):
    one = run_batch(products[:3], tmp_path / "one", _options(tiny_weights), workers=1)
    two = run_batch(products[:3], tmp_path / "two", _options(tiny_weights), workers=2)
    assert [r.status for r in one] == [r.status for r in two] == ["done"] * 3
    for a, b in zip(one, two, strict=True):
        with rasterio.open(a.output) as da, rasterio.open(b.output) as db:
            np.testing.assert_array_equal(da.read(), db.read())


def test_interrupted_batch_leaves_no_partial_output_and_resumes(tmp_path, products, tiny_weights):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "cloudmask_cli.cli",
        "batch",
        *map(str, products[:3]),
        "--out-dir",
        str(out),
        "--weights",
        str(tiny_weights),
        "--device",
        "cpu",
        "-q",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(out.glob("*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
    for tif in out.glob("*.tif"):
        assert is_complete(tif), f"{tif.name} exists without its sidecar"
    done_before = len(list(out.glob("*.json")))
    assert 1 <= done_before <= 3
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert len(list(out.glob("*.json"))) == 3


def test_dask_local_cluster_matches_local_run(tmp_path, products, tiny_weights):
    distributed = pytest.importorskip("distributed")
    local = run_batch(products, tmp_path / "local", _options(tiny_weights))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = run_batch(
            products, tmp_path / "dask", _options(tiny_weights), scheduler=cluster.scheduler_address
        )
    assert [r.status for r in remote] == [r.status for r in local] == ["done"] * 3 + ["failed"]
    for a, b in zip(local[:3], remote[:3], strict=True):
        with rasterio.open(a.output) as da, rasterio.open(b.output) as db:
            np.testing.assert_array_equal(da.read(), db.read())
        side = json.loads(Path(b.output + ".json").read_text())
        assert side["model"]["name"] == "tiny-test"


@pytest.mark.parametrize("case", ["out-dir-is-file", "unwritable", "output-is-folder"])
def test_bad_out_dir_or_output_fails_before_any_product(tmp_path, products, tiny_weights, monkeypatch,
                                                        case):  # fmt: skip
    from cloudmask_cli.scene import Scene

    reads = []
    real_read = Scene.read
    monkeypatch.setattr(
        Scene, "read", lambda self, *a, **k: reads.append(1) or real_read(self, *a, **k)
    )
    out = tmp_path / "out"
    if case == "out-dir-is-file":
        out.write_text("not a folder")
        named, problem = out, "is not a folder"
    elif case == "unwritable":
        out.mkdir()
        out.chmod(0o555)
        if os.access(out, os.W_OK):  # root ignores modes; /sys refuses new files even to root
            out = Path("/sys")
            try:
                (out / ".cloudmask-test").touch()
                pytest.skip("no unwritable folder here")
            except OSError:
                pass
        named, problem = (
            out / (products[0].name[: -len(".SAFE")] + "_cloudmask.tif"),
            "cannot write",
        )
    else:
        out.mkdir()
        named = out / (products[1].name[: -len(".zip")] + "_cloudmask.tif")
        named.mkdir()
        problem = "is a folder"
    before = sorted(tmp_path.rglob("*"))
    res = runner.invoke(app, ["batch", *map(str, products[:3]), "--out-dir", str(out),
                              "--weights", str(tiny_weights), "--device", "cpu", "--resolution", "60"])  # fmt: skip
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and line.startswith(f"cloudmask: error: {named}: "), line
    assert problem in line, line
    assert reads == [], "no product was read"
    assert sorted(tmp_path.rglob("*")) == before, "nothing was written"


@pytest.mark.parametrize(
    ("style", "fractions", "expected"),
    [
        # cloud_shadow is no cloud: the report's cloud fraction once counted it ("cloud" in its name)
        ("4class", {"clear": 0.65, "thick_cloud": 0.1, "thin_cloud": 0.05, "cloud_shadow": 0.2}, 0.15),
        ("7class", {"land": 0.5, "water": 0.1, "snow": 0.0, "thin_cloud": 0.1,
                    "thick_cloud": 0.2, "cloud_shadow": 0.1}, 0.3),
        ("cloud", {"not_cloud": 0.6, "cloud": 0.4}, 0.4),
        ("valid", {"valid": 0.7, "invalid": 0.3}, None),  # cloud and shadow together: not known
    ],
)  # fmt: skip
def test_cloud_fraction_counts_the_cloud_classes_of_the_style(style, fractions, expected) -> None:
    from cloudmask_cli.records import Sidecar

    side = Sidecar(cloudmask_version="0", product="p", product_id="p", style=style,
                   class_fractions=fractions, valid_fraction=1.0)  # fmt: skip
    got = side.cloud_fraction  # what a batch's report, CSV and summary count
    assert got == (pytest.approx(expected) if expected is not None else None)
