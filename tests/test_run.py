"""End to end: products -> `cloudmask run` -> COG + sidecar, with a tiny random model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from affine import Affine
from rasterio.crs import CRS
from typer.testing import CliRunner

from cloudmask_cli.cli import app
from cloudmask_cli.demo.sentinel2 import write_sentinel2

runner = CliRunner()


@pytest.fixture(scope="session")
def s2_product(tmp_path_factory) -> Path:
    return write_sentinel2(tmp_path_factory.mktemp("s2"), level="L1C", size_10m=240, seed=1)


def _run(*args: str) -> object:
    return runner.invoke(app, ["run", *map(str, args)])


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_run_sentinel2_writes_cog_and_sidecar(tmp_path, s2_product, tiny_weights):
    out = tmp_path / "mask.tif"
    res = _run(s2_product, "-o", out, "--weights", tiny_weights, "--resolution", "20")
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.width == 120 and ds.height == 120 and ds.res == (20.0, 20.0)
        assert ds.crs.to_epsg() is not None and ds.colormap(1)
        codes = ds.read(1)
    assert set(np.unique(codes)) <= {0, 1, 2, 3, 4, 5, 255}
    side = json.loads(out.with_name("mask.tif.json").read_text())
    for key in (
        "class_fractions",
        "valid_fraction",
        "model",
        "sensor",
        "bands",
        "radiometry",
        "resolution",
        "windows",
        "device",
        "timings",
        "cloudmask_version",
    ):
        assert key in side
    assert side["model"]["sha256"] and side["sensor"] == "sentinel2_msi"
    assert 0 < side["valid_fraction"] < 1, "the demo's no-data wedge is 255"
    assert abs(sum(side["class_fractions"].values()) - 1) < 1e-3


def test_two_runs_are_identical_and_overwrite_is_explicit(tmp_path, s2_product, tiny_weights):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    for out in (a, b):
        assert (
            _run(
                s2_product,
                "-o",
                out,
                "--weights",
                tiny_weights,
                "--resolution",
                "60",
                "--device",
                "cpu",
            ).exit_code
            == 0
        )
    np.testing.assert_array_equal(_read(a), _read(b))
    res = _run(s2_product, "-o", a, "--weights", tiny_weights, "--resolution", "60")
    assert res.exit_code == 2 and "already exists" in res.output
    res = _run(s2_product, "-o", a, "--weights", tiny_weights, "--resolution", "60", "--overwrite")
    assert res.exit_code == 0


@pytest.mark.parametrize(
    "style,codes",
    [
        ("7class", {0, 1, 2, 3, 4, 5}),
        ("4class", {0, 1, 2, 3}),
        ("cloud", {0, 1}),
        ("valid", {0, 1}),
    ],
)
def test_styles_codes(tmp_path, s2_product, tiny_weights, style, codes):
    out = tmp_path / f"{style}.tif"
    probs = tmp_path / f"{style}-p.tif"
    res = _run(
        s2_product,
        "-o",
        out,
        "--weights",
        tiny_weights,
        "--resolution",
        "60",
        "--style",
        style,
        "--probabilities",
        probs,
    )
    assert res.exit_code == 0, res.output
    got = _read(out)
    assert set(np.unique(got)) - {255} <= codes
    with rasterio.open(probs) as ds:
        p = ds.read()
    valid = got != 255
    assert (p[:, ~valid] == 255).all()
    assert np.abs(p[:, valid].astype(int).sum(0) - 254).max() <= 7, "probabilities sum to 1"


def _stack(
    path: Path, data: np.ndarray, crs="EPSG:32633", res=30.0, origin=(400000, 5000000), nodata=0
) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs=crs,
        nodata=nodata,
        transform=Affine(res, 0, origin[0], 0, -res, origin[1]),
    ) as ds:
        ds.write(data)
    return path


def _rgbn_yaml(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "name": "rgbn",
                "nodata": 0,
                "bands": [
                    {
                        "name": "blue",
                        "type": "reflectance",
                        "wavelength": [452, 512],
                        "scale": 1e-4,
                    },
                    {
                        "name": "green",
                        "type": "reflectance",
                        "wavelength": [533, 590],
                        "scale": 1e-4,
                    },
                    {"name": "red", "type": "reflectance", "wavelength": [636, 673], "scale": 1e-4},
                    {"name": "nir", "type": "reflectance", "wavelength": [851, 879], "scale": 1e-4},
                ],
            }
        )
    )
    return path


def test_windows_where_only_one_band_lacks_data_are_masked(tmp_path, tiny_weights):
    """The windows are planned from a coarse read; one band with no data over part of the scene
    (as a 60 m band can) must not drop windows where the other bands have data."""
    rng = np.random.default_rng(1)
    data = rng.integers(200, 4000, (4, 1100, 1100)).astype(np.uint16)
    data[0, :, :600] = 0  # the blue band is empty over the left half, the others are not
    tif = _stack(tmp_path / "s.tif", data)
    out = tmp_path / "m.tif"
    res = _run(
        tif, "-o", out, "--weights", tiny_weights, "--sensor", _rgbn_yaml(tmp_path / "s.yaml")
    )
    assert res.exit_code == 0, res.output
    assert (_read(out) != 255).all()


@pytest.mark.parametrize("shape", [(37, 53), (517, 1029)])
def test_small_and_odd_sized_stacks(tmp_path, tiny_weights, shape):
    rng = np.random.default_rng(0)
    data = rng.integers(200, 4000, (4, *shape)).astype(np.uint16)
    data[:, :5, :7] = 0  # a no-data corner
    tif = _stack(tmp_path / "s.tif", data)
    out = tmp_path / "m.tif"
    res = _run(
        tif, "-o", out, "--weights", tiny_weights, "--sensor", _rgbn_yaml(tmp_path / "s.yaml")
    )
    assert res.exit_code == 0, res.output
    got = _read(out)
    assert got.shape == shape
    assert (got[:5, :7] == 255).all() and (got[5:, 7:] != 255).all()


def test_uniform_input_is_seam_free(tmp_path, tiny_weights):
    data = np.full((4, 1100, 1100), 1500, np.uint16)
    tif = _stack(tmp_path / "u.tif", data)
    probs = tmp_path / "p.tif"
    res = _run(
        tif,
        "-o",
        tmp_path / "m.tif",
        "--weights",
        tiny_weights,
        "--sensor",
        _rgbn_yaml(tmp_path / "s.yaml"),
        "--probabilities",
        probs,
    )
    assert res.exit_code == 0, res.output
    with rasterio.open(probs) as ds:
        p = ds.read().astype(float)
    # away from the image border (where the network's own padding shows) a uniform input
    # gives a uniform output: no seam where one window hands over to the next
    inner = p[:, 64:-64, 64:-64]
    assert (inner.max(axis=(1, 2)) - inner.min(axis=(1, 2))).max() <= 3


def test_aoi_limits_the_output(tmp_path, s2_product, tiny_weights):
    from rasterio.warp import transform_bounds

    from cloudmask_cli.products import open_product

    scene = open_product(s2_product, resolution=60)
    west, b, r, t = scene.bounds
    w, s, e, n = transform_bounds(scene.crs, "EPSG:4326", west, b, (west + r) / 2, (b + t) / 2)
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(
        json.dumps(
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
                },
            }
        )
    )
    out = tmp_path / "m.tif"
    res = _run(s2_product, "-o", out, "--weights", tiny_weights, "--resolution", "60", "--aoi", aoi)
    assert res.exit_code == 0, res.output
    got = _read(out)
    h, w_ = got.shape
    assert (got[: h // 2 - 2, :] == 255).all(), "north half is outside the area"
    assert (got[:, w_ // 2 + 2 :] == 255).all(), "east half is outside the area"
    assert (got[h // 2 + 2 :, : w_ // 2 - 2] != 255).mean() > 0.5


def test_sar_and_dem_in_other_crs_with_partial_cover(tmp_path, s2_product, tiny_weights):
    from rasterio.warp import transform_bounds

    from cloudmask_cli.auxiliary import add_auxiliary
    from cloudmask_cli.products import open_product

    scene = open_product(s2_product, resolution=60)
    west, b, r, t = transform_bounds(scene.crs, "EPSG:4326", *scene.bounds)
    # SAR in lat/lon covering the western half only; DEM in another UTM zone covering it all
    res_deg = (r - west) / 100
    sar = np.full((2, 200, 50), -12.0, np.float32)
    sar[1] = -19.0
    sar_path = tmp_path / "s1.tif"
    with rasterio.open(
        sar_path,
        "w",
        driver="GTiff",
        width=50,
        height=200,
        count=2,
        dtype="float32",
        crs="EPSG:4326",
        nodata=-99,
        transform=Affine(res_deg, 0, west, 0, -(t - b) / 100, t + (t - b) / 2),
    ) as ds:
        ds.write(sar)
        ds.set_band_description(1, "VV")
        ds.set_band_description(2, "VH")
    other = CRS.from_epsg(scene.crs.to_epsg() + 1)
    dl, db, dr, dt = transform_bounds(scene.crs, other, *scene.bounds)
    dem = np.arange(200 * 200, dtype=np.float32).reshape(1, 200, 200) % 900
    ext = dr - dl
    dem_path = _stack(
        tmp_path / "dem.tif",
        dem,
        crs=other,
        res=ext / 150,
        origin=(dl - 0.1 * ext, dt + 0.1 * ext),
        nodata=-9999,
    )
    aux = add_auxiliary(scene, sar=sar_path, dem=dem_path)
    assert aux.band_names[-3:] == ["VV", "VH", "elevation"]
    x = aux.read(rasterio.windows.Window(0, 0, *reversed(aux.shape)))
    w = aux.shape[1]
    assert np.isfinite(x[-3, :, : w // 3]).all() and np.isnan(x[-3, :, -(w // 3) :]).all()
    assert np.isfinite(x[-1]).all()
    np.testing.assert_allclose(x[-3, :, : w // 3], -12.0, atol=1e-4)
    a, b_ = tmp_path / "with.tif", tmp_path / "without.tif"
    assert (
        _run(
            s2_product,
            "-o",
            a,
            "--weights",
            tiny_weights,
            "--resolution",
            "60",
            "--sar",
            sar_path,
            "--dem",
            dem_path,
            "--probabilities",
            tmp_path / "pa.tif",
        ).exit_code
        == 0
    )
    assert (
        _run(
            s2_product,
            "-o",
            b_,
            "--weights",
            tiny_weights,
            "--resolution",
            "60",
            "--probabilities",
            tmp_path / "pb.tif",
        ).exit_code
        == 0
    )
    side = json.loads((tmp_path / "with.tif.json").read_text())
    assert side["bands"][-3:] == ["VV", "VH", "elevation"]
    assert not np.array_equal(_read(tmp_path / "pa.tif"), _read(tmp_path / "pb.tif"))


def test_sar_without_overlap_is_an_error_and_leaves_no_output(tmp_path, s2_product, tiny_weights):
    data = np.full((1, 20, 20), -10.0, np.float32)
    far = _stack(tmp_path / "far_vv.tif", data, crs="EPSG:4326", res=0.01, origin=(100, 10))
    out = tmp_path / "m.tif"
    res = _run(s2_product, "-o", out, "--weights", tiny_weights, "--sar", far)
    assert res.exit_code == 2
    assert "far_vv.tif" in res.output and "does not overlap" in res.output
    assert list(tmp_path.iterdir()) == [far]


def test_bad_product_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloudmask_cli.cli",
            "run",
            str(tmp_path / "nope"),
            "-o",
            str(tmp_path / "m.tif"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0]
    assert not (tmp_path / "m.tif").exists()


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder no file can be created in: read-only mode, or (as root, who ignores modes)
    /sys, which refuses new files even to root."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        return folder
    probe = Path("/sys") / ".cloudmask-test"
    try:
        probe.touch()
    except OSError:
        return Path("/sys")
    probe.unlink()
    pytest.skip("no unwritable folder here (root, and /sys accepts files)")


@pytest.mark.parametrize(
    "case",
    ["folder", "folder-overwrite", "no-parent", "parent-is-file", "unwritable", "probs-folder",
     "probs-no-parent", "sidecar-folder", "probs-is-mask"],
)  # fmt: skip
def test_bad_output_paths_fail_before_any_work(tmp_path, s2_product, tiny_weights, monkeypatch,
                                               case):  # fmt: skip
    # `run -o existing_folder --overwrite` computed the whole mask, then the final rename
    # raised IsADirectoryError: every output path is now checked before the first window
    from cloudmask_cli.scene import Scene

    reads = []
    real_read = Scene.read
    monkeypatch.setattr(
        Scene, "read", lambda self, *a, **k: reads.append(1) or real_read(self, *a, **k)
    )
    work = tmp_path / "work"
    work.mkdir()
    out, extra, named, problem = work / "m.tif", [], None, None
    if case.startswith("folder"):
        out.mkdir()
        extra = ["--overwrite"] if case == "folder-overwrite" else []
        named, problem = out, "is a folder"
    elif case == "no-parent":
        out = work / "missing" / "m.tif"
        named, problem = out, "does not exist"
    elif case == "parent-is-file":
        (work / "plain").write_text("x")
        out = work / "plain" / "m.tif"
        named, problem = out, "is not a folder"
    elif case == "unwritable":
        out = _unwritable_folder(tmp_path) / "m.tif"
        named, problem = out, "cannot write"
    elif case == "probs-folder":
        (work / "p.tif").mkdir()
        extra = ["--probabilities", work / "p.tif", "--overwrite"]
        named, problem = work / "p.tif", "is a folder"
    elif case == "probs-no-parent":
        extra = ["--probabilities", work / "nope" / "p.tif"]
        named, problem = work / "nope" / "p.tif", "does not exist"
    elif case == "sidecar-folder":
        (work / "m.tif.json").mkdir()
        extra = ["--overwrite"]
        named, problem = work / "m.tif.json", "is a folder"
    elif case == "probs-is-mask":
        extra = ["--probabilities", out]
        named, problem = out, "given for two outputs"
    before = sorted(work.rglob("*"))
    res = _run(s2_product, "-o", out, "--weights", tiny_weights, "--resolution", "60",
               "--device", "cpu", *extra)  # fmt: skip
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert line.startswith(f"cloudmask: error: {named}: ") and problem in line, line
    assert reads == [], "no window was read"
    assert sorted(work.rglob("*")) == before, "nothing was written"


@pytest.mark.parametrize("which", ["mask", "probabilities"])
def test_output_equal_to_an_input_file_is_refused_before_any_work(tmp_path, tiny_weights, which):
    """`run stack.tif -o stack.tif --overwrite` would replace the input by its own mask."""
    data = np.random.default_rng(0).integers(200, 4000, (4, 40, 50)).astype(np.uint16)
    tif = _stack(tmp_path / "s.tif", data)
    sensor = _rgbn_yaml(tmp_path / "s.yaml")
    before = tif.read_bytes()
    out, extra = (tif, []) if which == "mask" else (tmp_path / "m.tif", ["--probabilities", tif])
    res = _run(tif, "-o", out, "--weights", tiny_weights, "--sensor", sensor, "--overwrite",
               "--device", "cpu", *extra)  # fmt: skip
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and line.startswith(f"cloudmask: error: {tif}: "), line
    assert "input" in line, line
    assert tif.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif", "s.yaml"]


def test_output_folder_with_overwrite_is_one_line_exit_2(tmp_path, s2_product, tiny_weights):
    """The reported case, as a user types it: one line on stderr, exit 2, the folder intact."""
    folder = tmp_path / "some_existing_folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    proc = subprocess.run(
        [sys.executable, "-m", "cloudmask_cli.cli", "run", str(s2_product), "-o", str(folder),
         "--overwrite", "--weights", str(tiny_weights), "--device", "cpu"],
        capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(folder) in lines[0] and "is a folder" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["some_existing_folder"]
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_python_api_returns_georeferenced_dataarray(tmp_path, tiny_weights):
    import rioxarray  # noqa: F401
    import xarray as xr

    import cloudmask_cli

    rng = np.random.default_rng(1)
    arr = rng.uniform(0.02, 0.5, (4, 90, 70)).astype(np.float32)
    da = xr.DataArray(
        arr,
        dims=("band", "y", "x"),
        coords={
            "band": ["red", "green", "blue", "nir"],
            "y": 5e6 - 15 - 30 * np.arange(90),
            "x": 4e5 + 15 + 30 * np.arange(70),
        },
    )
    da = da.rio.write_crs("EPSG:32633")
    yml = tmp_path / "s.yaml"
    yml.write_text(
        yaml.safe_dump(
            {
                "name": "rgbn",
                "bands": [
                    {"name": "blue", "type": "reflectance", "wavelength": [452, 512]},
                    {"name": "green", "type": "reflectance", "wavelength": [533, 590]},
                    {"name": "red", "type": "reflectance", "wavelength": [636, 673]},
                    {"name": "nir", "type": "reflectance", "wavelength": [851, 879]},
                ],
            }
        )
    )
    out = cloudmask_cli.mask(da, sensor=yml, weights=tiny_weights, device="cpu")
    assert out.shape == (90, 70) and out.dtype == np.uint8
    assert out.rio.crs.to_epsg() == 32633
    assert out.rio.transform() == Affine(30, 0, 4e5, 0, -30, 5e6)
    assert set(np.unique(out.values)) <= {0, 1, 2, 3, 4, 5}


def test_sar_bands_from_a_yaml_and_linear_units(tmp_path, s2_product):
    from cloudmask_cli.auxiliary import add_auxiliary
    from cloudmask_cli.errors import InputError
    from cloudmask_cli.products import open_product

    scene = open_product(s2_product, resolution=60)
    l_, b_, r_, t_ = scene.bounds
    data = np.full((1, 40, 40), 0.01, np.float32)  # linear power 0.01 = -20 dB
    tif = _stack(tmp_path / "s1.tif", data, crs=scene.crs, res=(r_ - l_) / 40, origin=(l_, t_),
                 nodata=None)  # fmt: skip
    with pytest.raises(InputError, match="s1.tif: band 1"):
        add_auxiliary(scene, sar=tif)  # no description, no VV/VH in the name: never guessed
    definition = tmp_path / "s1.yaml"
    definition.write_text(yaml.safe_dump({"name": "s1-vh", "bands": [
        {"name": "VH", "type": "sar_vh", "units": "linear"}]}))  # fmt: skip
    aux = add_auxiliary(scene, sar=tif, sar_definition=definition)
    x = aux.read(rasterio.windows.Window(0, 0, 40, 40))
    np.testing.assert_allclose(x[-1], -20.0, atol=1e-4)


def test_concurrent_window_reads_match_sequential_reads(s2_product):
    """Read threads share one handle per file (one GDAL block cache): reads stay exact."""
    from concurrent.futures import ThreadPoolExecutor

    from rasterio.windows import Window

    from cloudmask_cli.products import open_product

    scene = open_product(s2_product, resolution=10)
    h, w = scene.shape
    windows = [Window(c, r, 64, 64) for r in range(0, h - 64, 40) for c in range(0, w - 64, 40)]
    expected = [scene.read(win) for win in windows]
    scene.close()
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(scene.read, windows * 3))
    scene.close()
    for a, b in zip(expected * 3, got, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isnan(np.stack(expected)).any(), "the demo's wedge and masks are exercised"


def test_default_batch_size_follows_the_device(tiny_weights):
    from cloudmask_cli.inference.engine import Engine, default_batch_size
    from cloudmask_cli.model.checkpoint import load_checkpoint

    model = load_checkpoint(tiny_weights)[0]
    assert Engine(model, torch.device("cpu")).batch_size == default_batch_size(torch.device("cpu"))
    assert default_batch_size(torch.device("cuda")) > default_batch_size(torch.device("cpu"))
    with pytest.raises(ValueError, match="at least 1"):
        Engine(model, torch.device("cpu"), batch_size=0)


def test_precision_defaults_follow_the_device(tiny_weights):
    from cloudmask_cli.inference.engine import Engine, default_precision
    from cloudmask_cli.model.checkpoint import load_checkpoint

    model = load_checkpoint(tiny_weights)[0]
    assert Engine(model, torch.device("cpu")).precision == "float32"
    # fp16 keeps masks far closer to float32 than bf16 (benchmarks/results.md)
    assert default_precision(torch.device("cuda")) == "float16"
    with pytest.raises(ValueError, match="--precision must be one of"):
        Engine(model, torch.device("cpu"), precision="float8")


class _Overflowing(torch.nn.Module):
    """Logits of ~1e5: fine in float32, infinite in float16 (max 65504)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 7, 1)
        with torch.no_grad():
            self.conv.weight.fill_(300.0)
            self.conv.bias.copy_(torch.arange(7, dtype=torch.float32))

    def forward(self, x, desc, band_mask=None):
        return self.conv(torch.nan_to_num(x))


def test_half_precision_overflow_is_redone_in_float32():
    from cloudmask_cli.inference.engine import Engine

    x = np.full((2, 4, 32, 32), 100.0, dtype=np.float32)
    desc = np.zeros((4, 74), dtype=np.float32)
    mask = np.ones((2, 4), dtype=bool)
    engine = Engine(_Overflowing(), torch.device("cpu"), batch_size=2, precision="float16")
    probs = engine.predict(x, desc, mask)
    assert engine.float32_retries == 1
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (probs.argmax(axis=1) == 6).all()  # the float32 answer (largest bias)


def test_run_records_precision_and_rejects_a_bad_one(s2_product, tiny_weights, tmp_path):
    out = tmp_path / "m.tif"
    bad = runner.invoke(app, ["run", str(s2_product), "-o", str(out), "--weights",
                              str(tiny_weights), "--device", "cpu", "--precision", "half"])  # fmt: skip
    assert bad.exit_code != 0 and "--precision must be one of" in bad.output
    assert not out.exists()
    ok = runner.invoke(app, ["run", str(s2_product), "-o", str(out), "--weights", str(tiny_weights),
                             "--device", "cpu", "--resolution", "60", "-q"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    side = json.loads(out.with_name("m.tif.json").read_text())
    assert (side["precision"], side["float32_retries"], side["oom_events"]) == ("float32", 0, 0)
    assert side["read_threads"] == 2  # the CPU default


def test_read_threads_default_follows_the_device():
    from cloudmask_cli.inference.engine import default_read_threads

    assert default_read_threads(torch.device("cpu")) == 2  # the model needs the cores
    assert 2 <= default_read_threads(torch.device("cuda")) <= 8


def test_help_shows_the_batch_size_defaults():
    # rich read "[default: ...]" in the help text as markup and dropped it
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "2 on CPU, 16 on CUDA" in result.output
    assert "float16 on CUDA, float32 on CPU" in result.output
    assert "2 on CPU, up to 8 on CUDA" in result.output


def _fresh_python(code: str, env: dict[str, str]) -> str:
    """stdout of ``code`` in a new interpreter whose environment lacks the variables cloudmask
    sets, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GDAL_CACHEMAX")}
    out = subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return out.stdout


@pytest.mark.parametrize(
    ("env", "expected"), [({}, "PASSIVE"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE")]
)
def test_openmp_workers_sleep_under_the_cli_unless_the_user_says_otherwise(env, expected):
    # must hold before torch loads (libgomp reads it once), so check it in a fresh interpreter
    code = (
        "import os, sys; sys.argv = ['cloudmask', '--version']\n"
        "from cloudmask_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import torch; print(os.environ['OMP_WAIT_POLICY'], os.environ['GDAL_CACHEMAX'])"
    )
    assert _fresh_python(code, env).split()[-2:] == [expected, "384"]


def test_importing_the_library_leaves_the_process_environment_alone():
    # a library user's process is not changed by an import: the CLI's entry and a run set what
    # they need (OpenMP's wait policy, GDAL's block cache), not `import cloudmask_cli`
    code = (
        "import os; before = dict(os.environ)\n"
        "import cloudmask_cli, cloudmask_cli.scene, cloudmask_cli.masker, cloudmask_cli.cli\n"
        "import cloudmask_cli.batch, cloudmask_cli.training.loop\n"
        "print(sorted(set(os.environ.items()) ^ set(before.items())))"
    )
    assert _fresh_python(code, {}).strip() == "[]"


def test_a_run_caps_the_gdal_block_cache_unless_the_user_sets_it(monkeypatch):
    import rasterio.env

    from cloudmask_cli.remote import gdal_env

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    with gdal_env():
        assert rasterio.env.getenv()["GDAL_CACHEMAX"] == 384 << 20  # bytes, as rasterio sets it
    monkeypatch.setenv("GDAL_CACHEMAX", "2048")
    with gdal_env():
        assert "GDAL_CACHEMAX" not in rasterio.env.getenv()  # GDAL reads the user's own


def test_evaluate_scores_the_masks_run_writes(tmp_path, tiny_weights):
    # `cloudmask evaluate` used the 7-class argmax for its cloud and invalid figures, so they
    # described another mask than `cloudmask run --style cloud|valid` writes
    from cloudmask_cli.training.evaluate import evaluate
    from cloudmask_cli.training.sample import write_sample

    rng = np.random.default_rng(3)
    data = rng.integers(100, 6000, (4, 96, 80)).astype(np.uint16)
    data[:, :9, :11] = 0  # no data
    names = {"B04": [649, 680], "B03": [542, 578], "B02": [459, 525], "B08": [780, 886]}
    sensor = tmp_path / "s2-like.yaml"
    sensor.write_text(yaml.safe_dump({"name": "s2-like", "nodata": 0, "bands": [
        {"name": n, "type": "reflectance", "wavelength": w, "scale": 1e-4} for n, w in names.items()
    ]}))  # fmt: skip
    image = np.where(data > 0, data * 1e-4, np.nan).astype(np.float32)
    label = rng.integers(0, 4, data.shape[1:]).astype(np.uint8)  # CloudSEN12 codes
    write_sample(tmp_path / "data", "s", image, label, sensor="sentinel2_msi", bands=list(names),
                 scheme="cloudsen12")  # fmt: skip
    tif = _stack(tmp_path / "s.tif", data)
    scored = evaluate(tmp_path / "data", weights=tiny_weights, device="cpu")["overall"]
    for style, key in (("cloud", "cloud"), ("valid", "invalid"), ("7class", "per_class")):
        out = tmp_path / f"{style}.tif"
        # evaluate runs eager PyTorch: so does this run (other runtimes agree to ~1e-5)
        res = _run(tif, "-o", out, "--weights", tiny_weights, "--sensor", sensor, "--style", style,
                   "--runtime", "torch")  # fmt: skip
        assert res.exit_code == 0, res.output
        assert evaluate(tmp_path / "data", mask=out)["overall"][key] == scored[key], style


def test_spectral_tests_only_add_water_and_snow(tmp_path, s2_product):
    """--no-spectral-tests gives the network's classes (the bundled model's: it calls the
    demo's lake shadow or land); with the tests (the default) the lake becomes water, no pixel
    changes to anything else, and the sidecar says which was run."""
    codes, sides = {}, {}
    for flag in ("--spectral-tests", "--no-spectral-tests"):
        out = tmp_path / f"{flag}.tif"
        res = _run(s2_product, "-o", out, "--resolution", "20", flag)
        assert res.exit_code == 0, res.output
        codes[flag], sides[flag] = _read(out), json.loads(Path(f"{out}.json").read_text())
    changed = codes["--spectral-tests"] != codes["--no-spectral-tests"]
    assert changed.sum() > 50, "the lake, called land or shadow, becomes water"
    assert set(np.unique(codes["--spectral-tests"][changed])) <= {1, 2}
    assert set(np.unique(codes["--no-spectral-tests"][changed])) <= {0, 5}
    assert sides["--spectral-tests"]["spectral_tests"] is True
    assert sides["--no-spectral-tests"]["spectral_tests"] is False


def test_flips_make_the_prediction_mirror_equivariant(tiny_weights):
    # test-time augmentation: the mean over a window and its mirror images, each mapped back,
    # answers a mirrored window with the mirrored answer; the bare network does not
    from cloudmask_cli.inference.engine import Engine
    from cloudmask_cli.model.checkpoint import load_checkpoint

    model = load_checkpoint(tiny_weights)[0]
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 0.6, (1, 4, 64, 64)).astype(np.float32)
    x[0, :, :10, :20] = np.nan  # no-data corner: not symmetric either
    desc = rng.normal(size=(4, 74)).astype(np.float32)
    mask = np.ones((1, 4), dtype=bool)
    mirrored = np.ascontiguousarray(x[..., ::-1])
    tta = Engine(model, torch.device("cpu"), batch_size=1, flips=True)
    plain = Engine(model, torch.device("cpu"), batch_size=1)
    a, b = tta.predict(x, desc, mask), tta.predict(mirrored, desc, mask)
    np.testing.assert_allclose(b, a[..., ::-1], atol=1e-5)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-5)
    p, q = plain.predict(x, desc, mask), plain.predict(mirrored, desc, mask)
    assert np.abs(q - p[..., ::-1]).max() > 1e-3
    # the flipped mean contains the plain pass: it is its average with the three mirror passes
    assert not np.allclose(a, p, atol=1e-4)


def test_run_with_flips_records_it_and_batch_passes_it_on(s2_product, tiny_weights, tmp_path):
    common = ["--weights", str(tiny_weights), "--device", "cpu", "--resolution", "60", "-q"]
    plain, flipped = tmp_path / "plain.tif", tmp_path / "flipped.tif"
    for out, extra in ((plain, []), (flipped, ["--flips"])):
        res = runner.invoke(app, ["run", str(s2_product), "-o", str(out), *common, *extra])
        assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "plain.tif.json").read_text())["flips"] is False
    assert json.loads((tmp_path / "flipped.tif.json").read_text())["flips"] is True
    import rasterio

    with rasterio.open(plain) as a, rasterio.open(flipped) as b:
        assert a.profile["width"] == b.profile["width"]
        assert (a.read(1) != b.read(1)).any()  # an untrained model is not mirror-symmetric
    res = runner.invoke(app, ["batch", str(s2_product), "--out-dir", str(tmp_path / "b"),
                              "--flips", *common[:-1], "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    (side,) = (tmp_path / "b").glob("*.json")
    assert json.loads(side.read_text())["flips"] is True
