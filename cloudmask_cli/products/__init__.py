"""Product readers and detection. ``open_product(path)`` -> `Scene`.

Each reader module has ``identify(path) -> bool`` (a cheap look at the content, never the name
alone) and ``open(path, sensor=None) -> Scene``. They are tried in `READERS` order.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from cloudmask_cli.errors import InputError
from cloudmask_cli.scene import Scene
from cloudmask_cli.sensors import Sensor, get_sensor


def _readers() -> list[ModuleType]:
    from cloudmask_cli.products import landsat, perusat1, sentinel2, stack

    return [sentinel2, landsat, perusat1, stack]


def detect(path: str | Path) -> ModuleType:
    """The reader module that recognises ``path``'s content."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file or folder")
    for reader in _readers():
        if reader.identify(p):
            return reader
    if p.is_dir():
        raise InputError(p, "not a recognised product folder (Sentinel-2 SAFE, Landsat, PerúSat-1)")
    raise InputError(
        p, "not a recognised product (SAFE .zip, Landsat .tar, or a GeoTIFF/VRT with --sensor)"
    )


def open_product(
    path: str | Path,
    sensor: str | Path | Sensor | None = None,
    resolution: float | None = None,
) -> Scene:
    """Open a product as a `Scene` on its default grid, or at ``resolution`` metres.

    ``sensor`` (a bundled name, a YAML path, or a `Sensor`) overrides the definition the
    reader would pick; a plain raster stack needs one.
    """
    p = Path(path)
    sens = get_sensor(sensor) if isinstance(sensor, (str, Path)) else sensor
    if sens is not None and p.is_file() and p.suffix.lower() in {".tif", ".tiff", ".vrt"}:
        from cloudmask_cli.products import stack

        reader: ModuleType = stack
    else:
        reader = detect(p)
    scene = reader.open(p, sensor=sens)
    if resolution is not None:
        if resolution <= 0:
            raise InputError(p, f"resolution must be positive, got {resolution}")
        scene = scene.with_resolution(resolution)
    return scene


__all__ = ["detect", "open_product"]
