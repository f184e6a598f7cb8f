"""Sentinel-1 and DEM rasters as extra bands of a Scene, warped window by window onto its grid.

Any GeoTIFF in any CRS. SAR bands are recognised from the raster's band descriptions (VV, VH,
angle/incidence; "dB" or "linear" in the description or the file's units) or from a small
YAML (`--sar s1.tif --sensor`-style: a sensor definition whose bands are the file's bands).
Where the raster does not cover part of the scene, its bands are NaN there and the model
leaves them out; a raster that does not overlap the scene at all is an error.
"""

from __future__ import annotations

import re
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.scene import BandSource, Radiometry, Scene, replace_bands
from cloudmask_cli.sensors import Band, Sensor, get_sensor, load_sensor_file

_SAR_PATTERNS = (
    ("sar_vv", re.compile(r"(^|[^a-z])vv([^a-z]|$)", re.I)),
    ("sar_vh", re.compile(r"(^|[^a-z])vh([^a-z]|$)", re.I)),
    ("sar_angle", re.compile(r"angle|incidence|theta", re.I)),
)


def _open_meta(path: Path) -> dict:
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        with rasterio.open(path) as ds:
            return {
                "count": ds.count,
                "crs": ds.crs,
                "bounds": tuple(ds.bounds),
                "descriptions": list(ds.descriptions),
                "units": list(ds.units),
                "nodata": ds.nodata,
                "res": abs(ds.transform.a),
            }
    except RasterioError as exc:
        raise InputError(path, f"cannot read raster ({first_line(exc)})") from None


def _check_overlap(path: Path, meta: dict, scene: Scene) -> None:
    if meta["crs"] is None:
        raise InputError(path, "has no CRS; cannot place it on the product's grid")
    left, bottom, right, top = transform_bounds(meta["crs"], scene.crs, *meta["bounds"])
    sl, sb, sr, st = scene.bounds
    if right <= sl or left >= sr or top <= sb or bottom >= st:
        raise InputError(path, f"does not overlap the product {Path(scene.product).name}")


def sar_bands(path: Path, meta: dict, definition: Sensor | None) -> list[Band]:
    """The SAR band records of a raster, from a YAML or from its band descriptions."""
    if definition is not None:
        if len(definition.bands) != meta["count"]:
            raise InputError(
                path,
                f"has {meta['count']} bands, {definition.path} describes {len(definition.bands)}",
            )
        return list(definition.bands)
    template = get_sensor("sentinel1_sar")
    bands = []
    for i, desc in enumerate(meta["descriptions"]):
        text = f"{desc or ''} {meta['units'][i] or ''}"
        kind = next((k for k, pat in _SAR_PATTERNS if pat.search(text)), None)
        if kind is None and meta["count"] == 1:
            kind = _kind_from_name(path.name)
        if kind is None:
            raise InputError(
                path,
                f"band {i + 1} ({desc or 'no description'}) is not recognised as VV, VH or angle;"
                " set band descriptions or describe the bands in a YAML given with --sar-def",
            )
        base = next(b for b in template.bands if b.type == kind)
        units = base.units
        if kind != "sar_angle":
            units = "linear" if re.search(r"linear|power", text, re.I) else "db"
        bands.append(Band(name=base.name, type=kind, units=units, description=desc or ""))
    return bands


def _kind_from_name(name: str) -> str | None:
    for kind, pat in _SAR_PATTERNS:
        if pat.search(name.replace("_", " ")):
            return kind
    return None


def _radiometry(band: Band) -> Radiometry:
    # The model takes backscatter in dB; linear power is converted when the band is read.
    if band.units == "linear":
        return Radiometry(formula="10*log10(linear)", to_db=True)
    return Radiometry(scale=float(band.scale) if band.scale != "metadata" else 1.0)


def add_auxiliary(
    scene: Scene,
    sar: str | Path | None = None,
    dem: str | Path | None = None,
    sar_definition: str | Path | None = None,
) -> Scene:
    """The scene with Sentinel-1 and/or DEM bands appended (warped onto its grid when read)."""
    sources = list(scene.bands)
    if sar is not None:
        path = Path(sar)
        meta = _open_meta(path)
        _check_overlap(path, meta, scene)
        definition = load_sensor_file(sar_definition) if sar_definition else None
        for i, band in enumerate(sar_bands(path, meta, definition), start=1):
            nodata = (meta["nodata"],) if meta["nodata"] is not None else ()
            sources.append(
                BandSource(
                    band=band,
                    path=str(path),
                    index=i,
                    radiometry=_radiometry(band),
                    nodata=nodata,
                    resolution=meta["res"],
                    warp=True,
                )
            )
    if dem is not None:
        path = Path(dem)
        meta = _open_meta(path)
        _check_overlap(path, meta, scene)
        band = get_sensor("dem").bands[0]
        nodata = (meta["nodata"],) if meta["nodata"] is not None else ()
        sources.append(
            BandSource(
                band=band, path=str(path), index=1, nodata=nodata, resolution=meta["res"], warp=True
            )
        )
    new = replace_bands(scene, sources)
    new.metadata = {
        **scene.metadata,
        "auxiliary": {"sar": str(sar) if sar else None, "dem": str(dem) if dem else None},
    }
    return new
