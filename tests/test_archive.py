"""A product's files seen the same way in a folder, a zip and a tar (products/archive.py)."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.transform

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.products.archive import Archive


@pytest.fixture()
def product(tmp_path: Path) -> Path:
    root = tmp_path / "P.SAFE"
    (root / "GRANULE" / "G1").mkdir(parents=True)
    (root / "MTD.xml").write_bytes(b"<meta>0123456789</meta>")
    profile = dict(driver="GTiff", width=8, height=4, count=1, dtype="uint16", crs="EPSG:32629",
                   transform=rasterio.transform.from_origin(0, 40, 10, 10))  # fmt: skip
    with rasterio.open(root / "GRANULE" / "G1" / "B01.tif", "w", **profile) as ds:
        ds.write(np.arange(32, dtype=np.uint16).reshape(1, 4, 8))
    return root


def _all_three(product: Path, tmp_path: Path) -> list[Archive]:
    files = sorted(p for p in product.rglob("*") if p.is_file())
    with zipfile.ZipFile(tmp_path / "p.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f"P.SAFE/{f.relative_to(product)}")
    with tarfile.open(tmp_path / "p.tar", "w") as tf:
        for f in files:
            tf.add(f, arcname=f"P.SAFE/{f.relative_to(product)}")
    return [
        Archive(product),
        Archive(tmp_path / "p.zip", "zip", "P.SAFE/"),
        Archive(tmp_path / "p.tar", "tar", "P.SAFE/"),
    ]


def test_folder_zip_and_tar_read_alike(product: Path, tmp_path: Path) -> None:
    for files in _all_three(product, tmp_path):
        assert files.listdir() == ["MTD.xml"], files.kind
        assert files.listdir("GRANULE/G1") == ["B01.tif"]
        assert files.listdir("GRANULE") == [] and files.listdir("nowhere") == []
        assert files.exists("GRANULE/G1/B01.tif") and not files.exists("GRANULE/G1")
        assert files.read("MTD.xml") == b"<meta>0123456789</meta>"
        assert files.read("MTD.xml", 6) == b"<meta>"
        assert files.read_at("MTD.xml", 6, 4) == b"0123"
        assert files.size("MTD.xml") == 23
        # GDAL opens the raster in place, wherever it lies
        with rasterio.open(files.gdal_path("GRANULE/G1/B01.tif")) as ds:
            assert ds.read(1)[3, 7] == 31


def test_errors_name_the_file_where_it_can_be_found(product: Path, tmp_path: Path) -> None:
    folder, zipped, tarred = _all_three(product, tmp_path)
    assert folder.display("MTD.xml") == str(product / "MTD.xml")
    assert zipped.display("MTD.xml").startswith("/vsizip/") and zipped.display("MTD.xml").endswith(
        "p.zip/P.SAFE/MTD.xml"
    )
    assert tarred.display("MTD.xml") == f"{tmp_path / 'p.tar'}:MTD.xml"


def test_an_unreadable_archive_is_one_line_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all" * 4)
    with pytest.raises(InputError, match="bad.zip: not a readable zip archive"):
        Archive(bad, "zip")
    with pytest.raises(InputError, match="bad.zip: not a readable tar archive"):
        Archive(bad, "tar")


def test_first_line_of_an_exception() -> None:
    assert first_line(OSError("line one\nline two")) == "line one"
    assert first_line(ValueError("x" * 500)) == "x" * 200
    # an exception without a message is named by its type, not an empty string or a crash
    assert first_line(KeyError()) == "KeyError"
    assert first_line(RuntimeError("\n")) == "RuntimeError"
