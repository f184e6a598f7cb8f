"""Where a SAFE and its product metadata are, from what the user names: the SAFE folder, its zip,
a granule folder of it, or its product metadata file."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cloudmask_cli.products.archive import Archive, zip_members
from cloudmask_cli.products.sentinel2.metadata import OPER_PRODUCT_MTD, PRODUCT_MTD


def _product_mtd_level(name: str) -> str | None:
    """The level a product-metadata file name announces (the name is ESA's format, not a guess)."""
    if name in PRODUCT_MTD:
        return PRODUCT_MTD[name]
    match = OPER_PRODUCT_MTD.match(name)
    return f"L{match.group(1).upper()}" if match else None


@dataclass(frozen=True)
class _Located:
    files: Archive
    mtd: str  # product metadata, relative to the SAFE root
    granule: str | None = None  # a granule folder name the user pointed at


def locate_safe(path: Path) -> _Located | None:
    """Find the SAFE root and its product metadata from a folder, zip, granule folder or MTD."""
    if path.is_dir():
        mtd = _find_product_mtd(p.name for p in path.iterdir() if p.is_file())
        if mtd:
            return _Located(Archive(path), mtd)
        return _locate_granule_folder(path)
    if path.is_file() and _product_mtd_level(path.name):
        return _Located(Archive(path.parent), path.name)
    if path.is_file() and zipfile.is_zipfile(path):
        return _locate_in_zip(path)
    return None


def _find_product_mtd(names: Iterator[str] | list[str]) -> str | None:
    found = sorted(n for n in names if _product_mtd_level(n))
    return found[0] if found else None


def _locate_granule_folder(path: Path) -> _Located | None:
    """A granule folder (``SAFE/GRANULE/<granule>``): lets one tile of a multi-tile product open."""
    if path.parent.name != "GRANULE" or not (path / "IMG_DATA").is_dir():
        return None
    safe = path.parent.parent
    mtd = _find_product_mtd([p.name for p in safe.iterdir() if p.is_file()])
    return _Located(Archive(safe), mtd, granule=path.name) if mtd else None


def _locate_in_zip(path: Path) -> _Located | None:
    infos = zip_members(path)
    names = [i.filename for i in infos]
    for name in sorted(names, key=lambda n: n.count("/")):
        parts = name.split("/")
        if len(parts) <= 2 and _product_mtd_level(parts[-1]):
            root = "/".join(parts[:-1]) + "/" if len(parts) == 2 else ""
            return _Located(Archive(path, "zip", root, members=infos), parts[-1])
    return None


def zip_holds_safe(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.split("/")[0].upper().endswith(".SAFE") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
