"""Any GeoTIFF/VRT stack plus a sensor YAML giving band order and scaling."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.scene import BandSource, InMemory, Radiometry, Scene
from cloudmask_cli.sensors import Sensor

SUFFIXES = {".tif", ".tiff", ".vrt"}


def identify(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SUFFIXES


def open(path: Path, sensor: Sensor | None = None) -> Scene:  # noqa: A001 - reader protocol
    if sensor is None:
        raise InputError(
            path, "a raster stack needs --sensor NAME|my.yaml to say what its bands are"
        )
    try:
        with rasterio.open(path) as ds:
            count, crs, bounds, res = ds.count, ds.crs, tuple(ds.bounds), abs(ds.transform.a)
            file_nodata = ds.nodata
            if ds.transform.b or ds.transform.d:
                raise InputError(path, "rotated grids are not supported; warp to north-up first")
    except RasterioError as exc:
        raise InputError(path, f"cannot read raster ({first_line(exc)})") from None
    if count != len(sensor.bands):
        raise InputError(
            path,
            f"has {count} bands but sensor {sensor.name} describes {len(sensor.bands)}"
            " (band order and count must match the YAML)",
        )
    if crs is None:
        raise InputError(path, "has no CRS; cloudmask needs a georeferenced raster")
    nodata = sensor.nodata if sensor.nodata is not None else file_nodata
    sources = band_sources(sensor, str(path), nodata, res)
    return Scene(
        sensor=sensor,
        bands=sources,
        crs=crs,
        bounds=bounds,
        product=str(path),
        product_type=f"raster stack ({sensor.name})",
        metadata={"level": "stack"},
    )


def band_sources(
    sensor: Sensor,
    path: str,
    nodata: float | None,
    resolution: float,
    memory: Sequence[InMemory] | None = None,
) -> list[BandSource]:
    """One source per band of ``sensor``, in its order: layer i of ``path`` (or the in-memory
    array ``memory[i]``), scaled as the YAML says (a stack has no metadata to scale it by)."""
    sources = []
    for i, band in enumerate(sensor.bands):
        if "metadata" in (band.scale, band.offset):
            raise InputError(
                sensor.path or sensor.name,
                f"band {band.name!r}: a stack has no metadata; give numeric scale and offset",
            )
        sources.append(
            BandSource(
                band=band,
                path=path,
                index=i + 1,
                radiometry=Radiometry(scale=float(band.scale), offset=float(band.offset)),
                nodata=(nodata,) if nodata is not None else (),
                resolution=resolution,
                memory=memory[i] if memory is not None else None,
            )
        )
    return sources
