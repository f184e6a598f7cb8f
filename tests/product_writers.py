"""Product variants only the tests need, built on the writers of `cloudmask_cli.demo`.

`cloudmask demo` and most tests use those writers as they are. The wrappers here take the same
arguments plus a variant `cloudmask demo` never writes: a Sentinel-2 product whose metadata lacks
its DN offsets (broken: the reader must refuse it) and a Landsat MTL encoded as XML or JSON
(USGS delivers them beside the ODL text; one alone tests each parser).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from cloudmask_cli.demo import landsat, sentinel2
from cloudmask_cli.demo.landsat import Tree

# The offsets block with its line, so the rest of the file is byte for byte what was written.
_OFFSETS = re.compile(rb"\n *<(Radiometric_Offset_List|BOA_ADD_OFFSET_VALUES_LIST)>.*?</\1>", re.S)


def write_sentinel2(path: Path, *, with_offsets: bool = True, **kw: Any) -> Path:
    """`sentinel2.write_sentinel2`; ``with_offsets=False`` then removes the 04.00+ DN offsets
    from the product metadata (a broken product)."""
    safe = sentinel2.write_sentinel2(path, **kw)
    if with_offsets:
        return safe
    if safe.suffix != ".SAFE":
        raise ValueError("with_offsets=False is written unzipped only")
    mtd = next(safe.glob("MTD_MSIL*.xml"))
    data, found = _OFFSETS.subn(b"", mtd.read_bytes())
    if found != 1:
        raise ValueError(f"{mtd.name} holds no DN offsets (baseline before 04.00?)")
    mtd.write_bytes(data)
    return safe


def to_xml(tree: Tree, indent: int = 0) -> str:
    """An MTL tree as USGS's ``_MTL.xml``."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>'] if indent == 0 else []
    pad = "  " * indent
    for key, value in tree.items():
        if isinstance(value, dict):
            out += [f"{pad}<{key}>", to_xml(value, indent + 1), f"{pad}</{key}>"]
        else:
            out.append(f"{pad}<{key}>{escape(str(value))}</{key}>")
    return "\n".join(out) + ("\n" if indent == 0 else "")


def to_json(tree: Tree) -> str:
    """An MTL tree as USGS's ``_MTL.json``: every value a string, as USGS writes them."""
    return json.dumps(tree, indent=4, default=str) + "\n"


_ENCODINGS = {"xml": to_xml, "json": to_json}


def write_landsat(
    path: Path,
    *,
    mtl_format: str = "txt",
    spacecraft: str = "LC08",
    size: int = 120,
    tar: bool = False,
    **kw: Any,
) -> Path:
    """`landsat.write_landsat` with the MTL as ``txt`` (ODL), ``xml`` or ``json``."""
    if mtl_format == "txt":
        return landsat.write_landsat(path, spacecraft=spacecraft, size=size, tar=tar, **kw)
    collection = kw.get("collection", 2)
    if mtl_format not in _ENCODINGS or collection != 2:
        raise ValueError(f"mtl_format {mtl_format!r} is not delivered for collection {collection}")
    files = landsat.product_files(spacecraft, size=size, **kw)
    pid = landsat.product_id(spacecraft)
    del files[f"{pid}_MTL.txt"]
    mtl = _ENCODINGS[mtl_format](landsat.mtl_tree(spacecraft, size=size))
    files[f"{pid}_MTL.{mtl_format}"] = mtl.encode()
    return landsat.write_product(Path(path), pid, files, tar)
