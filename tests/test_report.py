"""`cloudmask batch --report report.html`: the page opened in a real headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cloudmask_cli.batch import run_batch
from cloudmask_cli.cli import app
from cloudmask_cli.demo.landsat import write_landsat
from cloudmask_cli.demo.sentinel2 import write_sentinel2

runner = CliRunner()


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless browser: install Debian's chromium (.ci/run installs it when it can)")


def _open(page: Path, tmp: Path, *args: str, fragment: str = "") -> tuple[str, str]:
    """(DOM after the scripts ran, the browser's log) of the page in a headless Chromium."""
    proc = subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
         *args, page.resolve().as_uri() + fragment],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def _console_errors(log: str) -> list[str]:
    return [
        ln for ln in log.splitlines() if ":CONSOLE" in ln and ("Uncaught" in ln or "rror" in ln)
    ]


class _Rows(HTMLParser):
    """The report's product rows and the attributes of its tags."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.body: dict = {}
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "tr" and "row" in (a.get("class") or "").split():
            self.rows.append(a)
        elif tag == "body":
            self.body = a
        elif tag == "a":
            self.links.append(a["href"])
        elif tag == "img":
            self.images.append(a["src"])


def _parse(dom: str) -> _Rows:
    p = _Rows()
    p.feed(dom)
    return p


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("products")
    bad = root / "d" / "LC08_L1TP_001001_20200101_20200102_02_T1.tar"
    bad.parent.mkdir()
    bad.write_bytes(b"not a tar at all")
    return [
        write_sentinel2(root / "a", size_10m=180, seed=1),
        write_landsat(root / "c", spacecraft="LC08", size=60, seed=3, tar=True),
        bad,
    ]


def test_html_report_in_a_real_browser(tmp_path, products, tiny_weights):
    _browser()  # skip before the work when there is no browser
    out = tmp_path / "out"
    report = tmp_path / "report.html"  # not in --out-dir: the links are relative to the page
    res = runner.invoke(app, ["batch", *map(str, products), "--out-dir", str(out), "--weights",
                              str(tiny_weights), "--device", "cpu", "--resolution", "60",
                              "--report", str(report)])  # fmt: skip
    assert res.exit_code == 1, res.output  # one product failed
    page = report.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "needs the network"
    assert 'http-equiv="refresh"' not in page, "a finished report does not refresh"

    dom, log = _open(report, tmp_path, "--dump-dom", fragment="#sort=cloud-desc")
    assert _console_errors(log) == [], _console_errors(log)
    parsed = _parse(dom)
    assert parsed.body.get("data-ready") == "1", "the page's script ran"
    assert len(parsed.rows) == len(products), "one row per product"
    # sorted by the script, cloudiest first, the failure (no cloud figure) last
    clouds = [r["data-cloud"] for r in parsed.rows]
    assert clouds[-1] == "" and parsed.rows[-1]["data-status"] == "failed"
    assert [float(c) for c in clouds[:-1]] == sorted(map(float, clouds[:-1]), reverse=True)
    assert parsed.body.get("data-sort") == "cloud-desc"
    assert "not a recognised product" in dom, "the failure's error text"
    for href in parsed.links:  # mask and sidecar of each masked product
        assert (report.parent / href).is_file(), href
    assert len(parsed.links) == 4
    assert len(parsed.images) == 2
    for src in parsed.images:  # thumbnails inside the page
        assert src.startswith("data:image/jpeg;base64,")
        Image.open(__import__("io").BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()

    shot = tmp_path / "shot.png"
    _, log = _open(report, tmp_path, f"--screenshot={shot}", "--window-size=1280,1000")
    assert _console_errors(log) == []
    rgb = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(rgb, axis=0)}
    assert (255, 240, 240) in colours, "the failed row is drawn"
    assert (90, 143, 208) in colours, "the cloud-fraction histogram is drawn"
    assert len(colours) > 200, "thumbnails are drawn"


def test_report_is_written_as_the_batch_goes_and_links_quicklooks(tmp_path, products, tiny_weights):
    report = tmp_path / "out" / "report.html"
    seen: list[str] = []

    def peek(r) -> None:
        seen.append(report.read_text())

    options = {"weights": str(tiny_weights), "device": "cpu", "resolution": 60.0, "quicklooks": True,
               "quicklook_size": 400}  # fmt: skip
    results = run_batch(products[:2], tmp_path / "out", options, report=report, on_result=peek)
    assert [r.status for r in results] == ["done", "done"]
    first = _parse(seen[0])  # after the first product: one done, one still to come
    assert [r["data-status"] for r in first.rows] == ["done", "pending"]
    assert 'http-equiv="refresh"' in seen[0]
    final = _parse(report.read_text())
    assert [r["data-status"] for r in final.rows] == ["done", "done"]
    for r, src in zip(results, final.images, strict=True):  # the quicklook files, relative
        assert not src.startswith("data:") and (report.parent / src).resolve() == Path(r.quicklook)
        assert max(Image.open(r.quicklook).size) <= 400
    # again: complete products are skipped, their figures and quicklooks still in the report
    again = run_batch(products[:2], tmp_path / "out", options, report=report)
    assert [r.status for r in again] == ["skipped", "skipped"]
    rows = _parse(report.read_text())
    assert [r["data-status"] for r in rows.rows] == ["skipped", "skipped"]
    assert all(r["data-cloud"] for r in rows.rows) and len(rows.images) == 2


def test_unwritable_report_fails_before_any_product(tmp_path, products, tiny_weights):
    report = tmp_path / "missing" / "report.html"
    res = runner.invoke(app, ["batch", *map(str, products[:2]), "--out-dir", str(tmp_path / "o"),
                              "--weights", str(tiny_weights), "--report", str(report)])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert res.output.strip().startswith(f"cloudmask: error: {report}: ")
    assert not any((tmp_path / "o").iterdir()), "no product was masked"
