"""Small products in real formats, with clouds, shadows and a no-data edge.

Used by the always-on tests and by ``cloudmask demo PATH`` so a new user has a product to try
at once. Each family's writer lives in its own module.
"""

from __future__ import annotations

from pathlib import Path

DEMO_KINDS = ("sentinel2", "landsat8", "landsat9", "landsat7", "perusat1")


def write_demo(path: str | Path, kind: str = "sentinel2", size: int = 600, seed: int = 0) -> Path:
    """Write a demo product of ``kind`` (one of `DEMO_KINDS`) into ``path``."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "sentinel2":
        from cloudmask_cli.demo.sentinel2 import write_sentinel2

        return write_sentinel2(folder, size_10m=size, seed=seed)
    if kind in ("landsat8", "landsat9", "landsat7"):
        from cloudmask_cli.demo.landsat import write_landsat

        craft = {"landsat8": "LC08", "landsat9": "LC09", "landsat7": "LE07"}[kind]
        return write_landsat(folder, spacecraft=craft, size=max(60, size // 3), seed=seed)
    if kind == "perusat1":
        from cloudmask_cli.demo.perusat1 import write_perusat1

        return write_perusat1(folder, size=size, seed=seed)
    raise ValueError(f"unknown demo kind {kind!r} ({', '.join(DEMO_KINDS)})")
