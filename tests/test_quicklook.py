"""Quicklooks: the PNG's pixels against the mask COG, the legend, fallbacks, bad paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import a_sidecar
from PIL import Image
from typer.testing import CliRunner

from cloudmask_cli.classes import colormap
from cloudmask_cli.cli import app
from cloudmask_cli.demo.sentinel2 import write_sentinel2
from cloudmask_cli.inference.writer import MaskWriter
from cloudmask_cli.products import open_product
from cloudmask_cli.quicklook import NODATA_RGB, pick_bands, write_quicklook

runner = CliRunner()


@pytest.fixture(scope="module")
def s2(tmp_path_factory) -> Path:
    return write_sentinel2(tmp_path_factory.mktemp("s2"), level="L1C", size_10m=600, seed=4)


def _stripes(shape: tuple[int, int]) -> np.ndarray:
    """Every 7class code in a vertical stripe, and no data in the top rows."""
    codes = np.zeros(shape, dtype=np.uint8)
    edges = np.linspace(0, shape[1], 7).round().astype(int)
    for k in range(6):
        codes[:, edges[k] : edges[k + 1]] = k
    codes[: shape[0] // 10] = 255
    return codes


def _panel(png: Path, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(Image.open(png).convert("RGB"))[box[1] : box[3], box[0] : box[2]]


def test_quicklook_mask_panel_and_legend_follow_the_cog_through_its_overviews(tmp_path, s2):
    scene = open_product(s2)  # 600 x 600 at 10 m
    codes = _stripes(scene.shape)
    mask = tmp_path / "mask.tif"
    with MaskWriter(mask, scene.grid, "7class") as w:
        w.write(codes)
        w.finish(a_sidecar())
    with rasterio.open(mask) as ds:
        assert ds.overviews(1), "the COG has overviews to read the quicklook from"
        table = {c: v[:3] for c, v in ds.colormap(1).items()}
    png = tmp_path / "q.png"
    look = write_quicklook(png, scene, mask, size=400)
    img = Image.open(png)
    assert max(img.size) <= 400 and look.size == img.size
    h, w = look.decimated
    assert max(h, w) < 600 and look.scale == 1, "decimated, not a full-resolution read"
    assert look.rendering == "true colour" and look.bands == ["B04", "B03", "B02"]

    panel = _panel(png, look.mask).reshape(h, w, 3)
    # each panel pixel against the full-resolution mask at its centre
    rows = ((np.arange(h) + 0.5) * 600 / h).astype(int)
    cols = ((np.arange(w) + 0.5) * 600 / w).astype(int)
    truth = codes[np.ix_(rows, cols)]
    expected = np.zeros((h, w, 3), dtype=np.uint8)
    for c in np.unique(truth):
        expected[truth == c] = NODATA_RGB if c == 255 else table[c]
    agree = (panel == expected).all(axis=2)
    assert agree.mean() > 0.97, agree.mean()
    # away from the stripes' edges (where the mode overview may move a boundary) exactly
    edge = np.zeros(600, dtype=bool)
    for e in [*np.linspace(0, 600, 7).round().astype(int)[1:-1], 60]:
        edge[max(0, e - 6) : e + 6] = True
    interior = ~edge[rows][:, None] & ~edge[cols][None, :]
    assert agree[interior].all()
    # the legend: one swatch per class (and no data) in the COG's colours, text beside it
    legend = {code: box for code, _, box in look.legend}
    assert set(legend) == {0, 1, 2, 3, 4, 5, 255}
    names = [name for _, name, _ in look.legend]
    assert names[:6] == ["land", "water", "snow", "thin_cloud", "thick_cloud", "cloud_shadow"]
    rgb = np.asarray(img.convert("RGB"))
    for code, (x0, y0, x1, y1) in legend.items():
        swatch = rgb[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].reshape(-1, 3)
        want = NODATA_RGB if code == 255 else table[code]
        assert (swatch == want).all(), code
        text = rgb[y0:y1, x1 + 2 : x1 + 40]
        assert (text.max(axis=2) < 120).any(), f"no text beside the swatch of {code}"
    # the image panel: the no-data wedge of the demo product is grey, the rest is an image
    image = _panel(png, look.image).reshape(h, w, 3)
    with rasterio.open(scene.bands[3].path) as b4:  # B04 decimated by GDAL, independently
        dn = b4.read(1, out_shape=(h, w), resampling=rasterio.enums.Resampling.average)
    nodata = dn == 0
    assert (image[nodata.nonzero()[0][:50], nodata.nonzero()[1][:50]] == NODATA_RGB).all()
    red = image[..., 0][~nodata].astype(float)
    assert red.std() > 10 and np.corrcoef(red, dn[~nodata])[0, 1] > 0.9, "red is B04"


def test_overlay_blends_the_class_colours_over_the_image(tmp_path, s2):
    scene = open_product(s2, resolution=20)
    codes = _stripes(scene.shape)
    mask = tmp_path / "mask.tif"
    with MaskWriter(mask, scene.grid, "7class") as w:
        w.write(codes)
        w.finish(a_sidecar())
    side = write_quicklook(tmp_path / "side.png", scene, mask, size=700)
    over = write_quicklook(tmp_path / "over.png", scene, mask, size=700, layout="overlay")
    assert over.image == over.mask and side.decimated == over.decimated
    h, w = over.decimated
    image = _panel(tmp_path / "side.png", side.image).reshape(h, w, 3).astype(float)
    blended = _panel(tmp_path / "over.png", over.image).reshape(h, w, 3).astype(float)
    truth = codes  # 300 x 300 grid, not decimated at this size
    assert (h, w) == truth.shape
    thick = truth == 4  # white over the image, half and half
    assert np.abs(blended[thick] - (image[thick] + 255) / 2).max() <= 1
    land = truth == 0  # the clear class is left as it is
    assert (blended[land] == image[land]).all()


def test_fallbacks_without_red_green_blue(s2):
    scene = open_product(s2, resolution=60)
    idx, how = pick_bands(scene.select(["B03", "B08", "B11", "B12"]))
    assert how == "false colour"
    names = scene.select(["B03", "B08", "B11", "B12"]).band_names
    assert [names[i] for i in idx] == ["B12", "B08", "B03"]  # longest, middle, shortest
    idx, how = pick_bands(scene.select(["B08"]))
    assert how == "single band" and idx == [0, 0, 0]


def test_run_quicklook_end_to_end(tmp_path, s2, tiny_weights):
    out = tmp_path / "mask.tif"
    png = tmp_path / "mask.png"
    res = runner.invoke(app, ["run", str(s2), "-o", str(out), "--weights", str(tiny_weights),
                              "--device", "cpu", "--resolution", "60", "--quicklook", str(png)])  # fmt: skip
    assert res.exit_code == 0, res.output
    side = json.loads(Path(str(out) + ".json").read_text())
    assert side["quicklook"] == str(png) and side["timings"]["quicklook_s"] < 5
    with rasterio.open(out) as ds:
        codes = ds.read(1)  # 100 x 100: enlarged, pixel for pixel, in the quicklook
    rgb = np.asarray(Image.open(png).convert("RGB"))
    assert max(rgb.shape[:2]) <= 1024
    cmap = colormap("7class")
    # the mask panel sits right of the image panel, below the title: find it by its size
    scale = (rgb.shape[1] - 3 * 8) // 2 // codes.shape[1]
    top, left = 44, 8 + codes.shape[1] * scale + 8
    panel = rgb[
        top : top + codes.shape[0] * scale : scale, left : left + codes.shape[1] * scale : scale
    ]
    for c in np.unique(codes):
        want = NODATA_RGB if c == 255 else cmap[c][:3]
        assert (panel[codes == c] == want).all(), c


@pytest.mark.parametrize("case", ["missing-folder", "extension", "unwritable"])
def test_bad_quicklook_path_fails_before_any_work(tmp_path, s2, tiny_weights, case, monkeypatch):
    from cloudmask_cli.scene import Scene

    reads = []
    real = Scene.read
    monkeypatch.setattr(Scene, "read", lambda self, *a, **k: reads.append(1) or real(self, *a, **k))
    png = {"missing-folder": tmp_path / "nope" / "q.png", "extension": tmp_path / "q.gif",
           "unwritable": Path("/sys/q.png")}[case]  # fmt: skip
    out = tmp_path / "mask.tif"
    res = runner.invoke(app, ["run", str(s2), "-o", str(out), "--weights", str(tiny_weights),
                              "--device", "cpu", "--quicklook", str(png)])  # fmt: skip
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and line.startswith(f"cloudmask: error: {png}: "), line
    assert reads == [] and not out.exists()


def test_info_quicklook_before_masking(tmp_path, s2):
    from cloudmask_cli.quicklook import look_before_masking

    png = tmp_path / "look.png"
    res = runner.invoke(app, ["info", str(s2), "--quicklook", str(png), "--quicklook-size", "300"])
    assert res.exit_code == 0, res.output
    assert max(Image.open(png).size) <= 300
    look = look_before_masking(open_product(s2), png, 300)  # an existing quicklook is replaced
    assert look.mask is None and look.legend == [] and look.rendering == "true colour"
    image = _panel(png, look.image)
    assert image.shape[:2] == look.decimated and image.std() > 10
    res = runner.invoke(app, ["info", str(s2), "--quicklook", str(tmp_path / "x.bmp")])
    assert res.exit_code == 2 and "x.bmp" in res.output
