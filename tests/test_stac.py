"""`cloudmask run --stac` / `batch --stac`: a STAC item beside the mask, read back with pystac.

Schema validation: the STAC core schemas ship with pystac and are checked offline; the
extension schemas (classification, projection, file, processing) are only fetched from the
network, so without it their fields are checked field by field here instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from pystac.validation.stac_validator import GetSchemaError, JsonSchemaSTACValidator
from rasterio.warp import transform as warp_points
from shapely.geometry import Point, shape
from typer.testing import CliRunner

from cloudmask_cli import __version__
from cloudmask_cli.classes import COLOURS, STYLES
from cloudmask_cli.cli import app
from cloudmask_cli.demo.landsat import write_landsat
from cloudmask_cli.demo.sentinel2 import write_sentinel2
from cloudmask_cli.inference.stac import PROCESSING_SCHEMA, stac_path
from cloudmask_cli.products import open_product

runner = CliRunner()


@pytest.fixture(scope="module")
def s2(tmp_path_factory) -> Path:
    return write_sentinel2(tmp_path_factory.mktemp("s2"), level="L1C", size_10m=240, seed=1)


def _run(product: Path, out: Path, tiny_weights: Path, *extra: str) -> object:
    return runner.invoke(app, ["run", str(product), "-o", str(out), "--weights", str(tiny_weights),
                               "--device", "cpu", "--resolution", "60", *extra])  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_stac_path_is_beside_the_mask():
    assert stac_path(Path("out/mask.tif")) == Path("out/mask.stac.json")
    assert stac_path(Path("a.b.tif")) == Path("a.b.stac.json")
    assert stac_path(Path("mask")) == Path("mask.stac.json")


@pytest.mark.parametrize("style", ["7class", "cloud"])
def test_run_writes_a_stac_item_pystac_reads(tmp_path, s2, tiny_weights, style):
    out = tmp_path / "mask.tif"
    res = _run(s2, out, tiny_weights, "--stac", "--style", style)
    assert res.exit_code == 0, res.output
    item_file = tmp_path / "mask.stac.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.stac.json", "mask.tif",
                                                          "mask.tif.json"]  # fmt: skip
    item = pystac.Item.from_file(str(item_file))
    raw = json.loads(item_file.read_text())

    # core schema: offline (pystac ships it); extensions: only if the network is there
    JsonSchemaSTACValidator().validate_core(raw, pystac.STACObjectType.ITEM, raw["stac_version"])
    try:
        item.validate()
    except GetSchemaError:
        pass  # no network for the extension schemas: their fields are checked below

    scene = open_product(s2)
    source = scene.metadata["product_uri"].removesuffix(".SAFE")
    side = json.loads((tmp_path / "mask.tif.json").read_text())
    assert item.id == f"{source}_cloudmask_{style}"
    assert item.properties["cloudmask:product_id"] == source == side["product_id"]
    assert item.datetime == pystac.utils.str_to_datetime(scene.metadata["datetime"])
    assert "links" in raw and [ln["rel"] for ln in raw["links"]] == ["derived_from"]
    assert raw["links"][0]["href"] == Path(s2).resolve().as_uri()

    # the mask asset, relative to the item
    mask = item.assets["mask"]
    assert mask.href == "./mask.tif" and Path(mask.get_absolute_href()) == out
    assert mask.media_type == pystac.MediaType.COG and mask.roles == ["data"]
    assert item.assets["metadata"].href == "./mask.tif.json"

    # classification: every code of the style, its name and colour, 255 as no data
    classes = mask.extra_fields["classification:classes"]
    want = [
        (code, name, "".join(f"{v:02X}" for v in COLOURS[name])) for code, name, _ in STYLES[style]
    ]
    got = [(c["value"], c["name"], c.get("color_hint")) for c in classes if not c.get("nodata")]
    assert got == want
    assert [c["value"] for c in classes if c.get("nodata")] == [255]
    pct = {c["name"]: c["percentage"] for c in classes if "percentage" in c}
    assert pct == {k: pytest.approx(100 * v) for k, v in side["class_fractions"].items()}

    # projection: the mask's own grid
    with rasterio.open(out) as ds:
        crs, transform, hw, codes = ds.crs, ds.transform, [ds.height, ds.width], ds.read(1)
    assert mask.extra_fields["proj:code"] == f"EPSG:{crs.to_epsg()}"
    assert mask.extra_fields["proj:shape"] == hw
    assert mask.extra_fields["proj:transform"] == list(transform)[:6]

    # file: sha2-256 multihash and size of the bytes on disk
    assert mask.extra_fields["file:checksum"] == "1220" + _sha256(out)
    assert mask.extra_fields["file:size"] == out.stat().st_size

    # processing: cloudmask's version, the model's name and its full SHA-256
    assert PROCESSING_SCHEMA in item.stac_extensions
    software = item.properties["processing:software"]
    assert software == {"cloudmask": __version__, "tiny-test": f"sha256:{_sha256(tiny_weights)}"}
    assert side["model"]["weights_sha256"] == _sha256(tiny_weights)

    # geometry: the valid pixels' footprint in WGS84 (the demo has a no-data wedge)
    footprint = shape(item.geometry)
    assert footprint.is_valid and item.bbox == pytest.approx(list(footprint.bounds), abs=1e-6)
    rows, cols = np.nonzero(codes != 255)
    lon, lat = warp_points(crs, "EPSG:4326", *rasterio.transform.xy(transform, rows, cols))
    near = footprint.buffer(2 * 60 / 111e3)  # two 60 m pixels, in degrees
    assert np.mean([near.contains(Point(x, y)) for x, y in zip(lon, lat, strict=True)]) > 0.99
    rows, cols = np.nonzero(codes == 255)
    lon, lat = warp_points(crs, "EPSG:4326", *rasterio.transform.xy(transform, rows, cols))
    inside = np.mean([footprint.contains(Point(x, y)) for x, y in zip(lon, lat, strict=True)])
    assert inside < 0.2, "the no-data wedge is outside the footprint"


def test_stac_item_is_an_output_checked_before_any_work(tmp_path, s2, tiny_weights):
    out = tmp_path / "mask.tif"
    (tmp_path / "mask.stac.json").mkdir()
    res = _run(s2, out, tiny_weights, "--stac", "--overwrite")
    assert res.exit_code == 2 and "mask.stac.json: is a folder" in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.stac.json"]
    (tmp_path / "mask.stac.json").rmdir()
    (tmp_path / "mask.stac.json").write_text("{}")
    res = _run(s2, out, tiny_weights, "--stac")
    assert res.exit_code == 2 and "mask.stac.json: already exists" in res.output, res.output


def test_stac_for_a_product_without_acquisition_time_is_refused(tmp_path, tiny_weights):
    data = np.full((4, 30, 30), 1500, np.uint16)
    tif = tmp_path / "stack.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=30, height=30, count=4, dtype="uint16",
                       crs="EPSG:32633", transform=rasterio.Affine(30, 0, 4e5, 0, -30, 5e6),
                       nodata=0) as ds:  # fmt: skip
        ds.write(data)
    sensor = tmp_path / "s.yaml"
    sensor.write_text("name: s\nbands:\n" + "".join(
        f"  - {{name: {n}, type: reflectance, wavelength: {w}, scale: 0.0001}}\n"
        for n, w in (("b", [452, 512]), ("g", [533, 590]), ("r", [636, 673]), ("n", [851, 879]))
    ))  # fmt: skip
    res = runner.invoke(app, ["run", str(tif), "-o", str(tmp_path / "m.tif"), "--sensor",
                              str(sensor), "--weights", str(tiny_weights), "--stac"])  # fmt: skip
    assert res.exit_code == 2
    line = res.output.strip()
    assert "\n" not in line and "stack.tif: has no acquisition time" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml", "stack.tif"]


def test_batch_writes_one_item_per_product(tmp_path, s2, tiny_weights):
    landsat = write_landsat(tmp_path / "in", spacecraft="LC08", size=60, seed=3, tar=True)
    out = tmp_path / "out"
    args = ["batch", str(s2), str(landsat), "--out-dir", str(out), "--weights", str(tiny_weights),
            "--device", "cpu", "--resolution", "60", "-q"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0  # without --stac: no items
    assert not list(out.glob("*.stac.json"))
    res = runner.invoke(app, [*args, "--stac"])  # done before, but without items: redone
    assert res.exit_code == 0, res.output
    items = sorted(out.glob("*.stac.json"))
    assert [p.name for p in items] == [
        "LC08_L1TP_193024_20210724_20210724_02_T1_cloudmask.stac.json",
        s2.name.removesuffix(".SAFE") + "_cloudmask.stac.json",
    ]
    for path in items:
        item = pystac.Item.from_file(str(path))
        mask = Path(item.assets["mask"].get_absolute_href())
        assert mask.is_file() and mask.name == path.name.replace(".stac.json", ".tif")
        assert item.assets["mask"].extra_fields["file:checksum"] == "1220" + _sha256(mask)
        assert item.properties["cloudmask:product_id"] in path.name
        assert item.geometry is not None
    stamps = [os.stat(p).st_mtime_ns for p in items]
    assert runner.invoke(app, [*args, "--stac"]).exit_code == 0  # complete now: skipped
    assert [os.stat(p).st_mtime_ns for p in items] == stamps
