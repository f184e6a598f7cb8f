"""`cloudmask batch` on STAC inputs: item files and URLs, ItemCollections, static catalogues,
a STAC API search (pystac-client against the test's own API), and untrusted item ids."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest
from stac_fixtures import ApiServer, Server, earth_search_s2, save
from typer.testing import CliRunner

from cloudmask_cli.batch import expand_inputs, output_for, safe_name
from cloudmask_cli.cli import app
from cloudmask_cli.errors import InputError

runner = CliRunner()
KEYS = ["blue", "green", "red", "nir"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("data")
    return folder, earth_search_s2(folder / "cogs", keys=KEYS, href_prefix="./cogs/")


def _with_id(item: dict, new_id: str) -> dict:
    return dict(item, id=new_id)


def _batch(out: Path, tiny_weights: Path, *args: str) -> object:
    return runner.invoke(app, ["batch", *args, "--out-dir", str(out), "--weights", str(tiny_weights),
                               "--device", "cpu", "--resolution", "40"])  # fmt: skip


def test_items_itemcollection_and_catalogue(tmp_path, data, tiny_weights):
    folder, item = data
    one = save(_with_id(item, "one"), folder / "one.json")
    fc = {"type": "FeatureCollection", "features": [_with_id(item, "two"), _with_id(item, "three")]}
    (folder / "items.json").write_text(json.dumps(fc))
    cat = pystac.Catalog("cat", "a static catalogue")
    cat.add_item(pystac.Item.from_dict(_with_id(item, "four")))
    cat.normalize_hrefs(str(tmp_path / "catalog"))
    # the item moves into the catalogue's folder: point its assets at the COGs
    for it in cat.get_items():
        for a in it.assets.values():
            if a.href.startswith("./cogs/"):
                a.href = str(folder / a.href)
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    out = tmp_path / "out"
    res = _batch(out, tiny_weights, str(one), str(folder / "items.json"),
                 str(tmp_path / "catalog" / "catalog.json"), "--stac")  # fmt: skip
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir() if p.suffix == ".tif")
    assert names == [f"{n}_cloudmask.tif" for n in ("four", "one", "three", "two")]
    assert (out / "two_cloudmask.stac.json").is_file()
    side = json.loads((out / "three_cloudmask.tif.json").read_text())
    assert side["product_id"] == "three"


def test_item_urls_in_a_batch(tmp_path, data, tiny_weights):
    folder, item = data
    save(_with_id(item, "remote"), folder / "remote.json")
    with Server(folder) as srv:
        res = _batch(tmp_path / "out", tiny_weights, f"{srv.url}/remote.json")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "remote_cloudmask.tif").is_file()


@pytest.mark.parametrize(
    "item_id, name",
    [("../../evil", "evil"), ("/etc/cron.d/x", "etc_cron.d_x"), ("a/b\\c", "a_b_c"),
     ("..", None), ("spaces and *?:<>|", "spaces_and"), (".hidden", "hidden")],
)  # fmt: skip
def test_untrusted_item_ids_stay_inside_out_dir(tmp_path, data, item_id, name):
    _, item = data
    it = pystac.Item.from_dict(_with_id(item, item_id))
    out_dir = tmp_path / "out"
    if name is None:
        with pytest.raises(InputError, match="no usable file name"):
            output_for(it, out_dir, "{name}.tif")
        return
    out = output_for(it, out_dir, "{name}.tif")
    assert out == out_dir / f"{name}.tif" and out.parent == out_dir


def test_a_pattern_leaving_out_dir_is_refused(tmp_path, data):
    _, item = data
    it = pystac.Item.from_dict(_with_id(item, "x"))
    for pattern in ("../{name}.tif", "/tmp/{name}.tif", "{name}/../../x.tif"):
        with pytest.raises(InputError, match="outside --out-dir"):
            output_for(it, tmp_path / "out", pattern)
    assert safe_name("S2A_39QTA_20230628_0_L2A") == "S2A_39QTA_20230628_0_L2A"


def test_batch_with_a_hostile_id_writes_nothing_outside(tmp_path, data, tiny_weights):
    folder, item = data
    fc = {"type": "FeatureCollection", "features": [_with_id(item, "../escaped")]}
    (folder / "hostile.json").write_text(json.dumps(fc))
    out = tmp_path / "deep" / "out"
    res = _batch(out, tiny_weights, str(folder / "hostile.json"))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"]
    assert (out / "escaped_cloudmask.tif").is_file()


def test_stac_api_search(tmp_path, data, tiny_weights):
    folder, item = data
    items = [_with_id(item, "api-1"), _with_id(item, "api-2"),
             dict(_with_id(item, "other"), collection="landsat-c2-l2")]  # fmt: skip
    for it in items:  # an API returns absolute hrefs
        it["assets"] = {k: dict(a, href=str(folder / a["href"])) if a["href"].startswith("./")
                        else a for k, a in it["assets"].items()}  # fmt: skip
    pytest.importorskip("pystac_client", reason="cloudmask[stac] extra not installed")
    with ApiServer(folder, items) as srv:
        res = _batch(tmp_path / "out", tiny_weights, "--stac-api", srv.url, "--collection",
                     "sentinel-2-l2a", "--bbox", "48.1,18.8,48.3,19.0", "--datetime",
                     "2023-06-01/2023-07-01")  # fmt: skip
        searches = srv.stats["searches"]
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == [
        "api-1_cloudmask.tif", "api-2_cloudmask.tif"]  # fmt: skip
    body = searches[0]
    assert body["collections"] == ["sentinel-2-l2a"] and body["bbox"] == [48.1, 18.8, 48.3, 19.0]
    assert body["datetime"].startswith("2023-06-01")


def test_expand_inputs_keeps_urls_and_reads_collections(tmp_path, data):
    folder, item = data
    fc = {"type": "FeatureCollection", "features": [_with_id(item, "a"), _with_id(item, "b")]}
    (folder / "fc.json").write_text(json.dumps(fc))
    got = expand_inputs(["https://example.org/items/X1", str(folder / "fc.json")])
    assert got[0] == "https://example.org/items/X1"
    assert [g.id for g in got[1:]] == ["a", "b"]
    (folder / "empty.json").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(InputError, match="holds no item"):
        expand_inputs([str(folder / "empty.json")])
