"""Remote STAC items and COGs over a real HTTP server on 127.0.0.1 (range requests, no mocks).

GDAL reads the assets through /vsicurl/ from the test's own http.server (Range -> 206), which
counts the bytes it serves: a small --aoi fetches a small part of the files, a 404 asset is one
line naming it, and a server that stops answering mid-run leaves no output behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_geom
from stac_fixtures import ORIGIN, Server, earth_search_s2, file_bytes, save
from typer.testing import CliRunner

from cloudmask_cli.cli import app
from cloudmask_cli.remote import gdal_path

runner = CliRunner()
KEYS = ["blue", "green", "red", "nir", "scl"]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    # GDAL's own settings, read from the environment: a user's value wins over remote.py's
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.05")
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "10")


def _served(folder: Path, size_m: float) -> Path:
    """An Earth Search-shaped item with hrefs relative to itself, as a static catalogue has."""
    save(earth_search_s2(folder, size_m=size_m, keys=KEYS, href_prefix="./"), folder / "item.json")
    return folder


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return _served(tmp_path_factory.mktemp("small"), 1200.0)


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    return _served(tmp_path_factory.mktemp("large"), 25600.0)  # 2560 px at 10 m


def _run(url: str, out: Path, tiny_weights: Path, *extra: str) -> object:
    return runner.invoke(app, ["run", url, "-o", str(out), "--weights", str(tiny_weights),
                               "--device", "cpu", *extra])  # fmt: skip


def test_gdal_paths_for_the_cloud_schemes():
    assert gdal_path("https://h/x/B04.tif", "a") == "/vsicurl/https://h/x/B04.tif"
    assert gdal_path("s3://sentinel-cogs/a/B04.tif", "a") == "/vsis3/sentinel-cogs/a/B04.tif"
    assert gdal_path("gs://bucket/a.tif", "a") == "/vsigs/bucket/a.tif"
    assert gdal_path("az://container/a.tif", "a") == "/vsiaz/container/a.tif"
    assert gdal_path("file:///data/a.tif", "a") == "/data/a.tif"


def test_run_and_info_on_an_item_url(tmp_path, small, tiny_weights):
    with Server(small) as srv:
        url = f"{srv.url}/item.json"
        res = runner.invoke(app, ["info", url, "--json"])
        assert res.exit_code == 0, res.output
        info = json.loads(res.output)
        assert [b["name"] for b in info["bands"]] == ["B02", "B03", "B04", "B08"]
        assert info["bands"][0]["path"].startswith(f"/vsicurl/{srv.url}/")
        res = _run(url, tmp_path / "m.tif", tiny_weights, "--stac")
        assert res.exit_code == 0, res.output
        assert srv.stats["requests"] > 0
    with rasterio.open(tmp_path / "m.tif") as ds:
        codes = ds.read(1)
    assert codes.shape == (120, 120) and (codes[:, :10] == 255).all()
    assert (codes[:, 10:] != 255).all()
    item = json.loads((tmp_path / "m.stac.json").read_text())
    assert [lnk["href"] for lnk in item["links"] if lnk["rel"] == "derived_from"] == [url]


def test_small_aoi_fetches_a_small_part_of_the_files(tmp_path, large, tiny_weights):
    x, y = ORIGIN[0] + 12800, ORIGIN[1] - 12800  # the centre of the scene
    box = {"type": "Polygon", "coordinates": [[[x, y], [x + 200, y], [x + 200, y - 200],
                                               [x, y - 200], [x, y]]]}  # fmt: skip
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps(transform_geom("EPSG:32639", "EPSG:4326", box)))
    with Server(large) as srv:
        res = _run(f"{srv.url}/item.json", tmp_path / "m.tif", tiny_weights, "--aoi", str(aoi))
        assert res.exit_code == 0, res.output
        fetched = srv.stats["bytes"]
    total = file_bytes(large)
    assert 0 < fetched < 0.15 * total, (fetched, total, srv.stats["by_file"])
    with rasterio.open(tmp_path / "m.tif") as ds:
        codes = ds.read(1)
    assert 0 < (codes != 255).sum() <= 25 * 25  # ~20 x 20 px inside the AOI


def test_missing_asset_is_one_line_naming_it_exit_2_no_output(tmp_path, small, tiny_weights):
    folder = tmp_path / "srv"
    folder.mkdir()
    for p in small.iterdir():
        if p.name != "B04.tif":
            (folder / p.name).write_bytes(p.read_bytes())
    with Server(folder) as srv:
        res = _run(f"{srv.url}/item.json", tmp_path / "m.tif", tiny_weights)
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "asset 'red'" in line and "404" in line, line
    assert not list(tmp_path.glob("m.tif*")) and not list(tmp_path.glob(".m.tif*"))


def test_server_dying_mid_run_leaves_no_output_and_a_rerun_completes(tmp_path, large, tiny_weights):
    out = tmp_path / "out"
    out.mkdir()
    args = ("--resolution", "40")
    with Server(large) as srv:
        res = _run(f"{srv.url}/item.json", out / "ref.tif", tiny_weights, *args)
        assert res.exit_code == 0, res.output
        needed = srv.stats["bytes"]
    with rasterio.open(out / "ref.tif") as ds:
        reference = ds.read(1)
    with Server(large, die_after=needed // 2) as srv:
        res = _run(f"{srv.url}/item.json", out / "m.tif", tiny_weights, *args)
        assert srv.stats["dead"], "the server died during the run"
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "Traceback" not in line and line.startswith("cloudmask: error:")
    assert sorted(p.name for p in out.iterdir()) == ["ref.tif", "ref.tif.json"], "no leftovers"
    with Server(large) as srv:
        res = _run(f"{srv.url}/item.json", out / "m.tif", tiny_weights, *args)
        assert res.exit_code == 0, res.output
    with rasterio.open(out / "m.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), reference)
