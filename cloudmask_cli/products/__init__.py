"""Product readers and detection. ``open_product(path)`` -> `Scene`.

Each reader module has ``identify(path) -> bool`` (a cheap look at the content, never the name
alone) and ``open(path, sensor=None) -> Scene``. They are tried in `READERS` order.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from cloudmask_cli.errors import InputError
from cloudmask_cli.remote import is_url
from cloudmask_cli.scene import Scene
from cloudmask_cli.sensors import Sensor, get_sensor


def _readers() -> list[ModuleType]:
    from cloudmask_cli.products import hls, landsat, perusat1, sentinel2, stac, stack

    return [sentinel2, landsat, perusat1, hls, stac, stack]


def detect(path: str | Path) -> ModuleType:
    """The reader module that recognises ``path``'s content."""
    if is_url(path):  # only STAC items are read from a URL (their assets may be anywhere)
        from cloudmask_cli.products import stac

        return stac
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file or folder")
    for reader in _readers():
        if reader.identify(p):
            return reader
    if p.is_dir():
        raise InputError(
            p, "not a recognised product folder (Sentinel-2 SAFE, Landsat, PerúSat-1, HLS v2)"
        )
    raise InputError(
        p, "not a recognised product (SAFE .zip, Landsat .tar, or a GeoTIFF/VRT with --sensor)"
    )


def _is_hls(path: Path) -> bool:
    from cloudmask_cli.products import hls

    return hls.identify(path)


def open_product(
    path: str | Path | Any,
    sensor: str | Path | Sensor | None = None,
    resolution: float | None = None,
) -> Scene:
    """Open a product as a `Scene` on its default grid, or at ``resolution`` metres.

    ``path`` is a file or folder, an http(s) URL to a STAC item, or a `pystac.Item`.
    ``sensor`` (a bundled name, a YAML path, or a `Sensor`) overrides the definition the
    reader would pick; a plain raster stack needs one.
    """
    sens = get_sensor(sensor) if isinstance(sensor, (str, Path)) else sensor
    if not isinstance(path, (str, Path)):  # a pystac.Item (from a collection or a search)
        from cloudmask_cli.products import stac

        scene = stac.open_item(path, sensor=sens)
        p: str | Path = scene.product
    else:
        p = path if is_url(path) else Path(path)
        reader: ModuleType
        if sens is not None and isinstance(p, Path) and p.is_file() and p.suffix.lower() in {
            ".tif", ".tiff", ".vrt"} and not _is_hls(p):  # fmt: skip
            from cloudmask_cli.products import stack

            reader = stack
        else:
            reader = detect(p)
        scene = reader.open(p, sensor=sens)
    if resolution is not None:
        if resolution <= 0:
            raise InputError(p, f"resolution must be positive, got {resolution}")
        scene = scene.with_resolution(resolution)
    return scene


def product_id(scene: Scene) -> str:
    """The source product's identifier: the metadata's, else the product's file name."""
    meta = scene.metadata
    if meta.get("product_id"):
        return str(meta["product_id"])
    if meta.get("product_uri"):  # Sentinel-2
        return str(meta["product_uri"]).removesuffix(".SAFE")
    from cloudmask_cli.batch import product_name

    return product_name(Path(scene.product))


__all__ = ["detect", "open_product", "product_id"]
