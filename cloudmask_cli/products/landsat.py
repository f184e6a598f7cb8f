"""Landsat 4-9 products, folder or ``.tar``: Level-1 (Collection 2, 1 and pre-collection) and
Collection 2 Level-2 (L2SP, L2SR).

The MTL (``*_MTL.txt``, ``.xml`` or ``.json``: any one is enough) names every band file and
holds the radiometry; the band GeoTIFFs give the grid. A ``.tar`` is read in place: the MTL
through `tarfile`, the rasters through GDAL ``/vsitar/`` paths; nothing is extracted.

Physical values (USGS Landsat Level-1 product guide):

- reflective bands: TOA reflectance ``(REFLECTANCE_MULT_BAND_n * DN + REFLECTANCE_ADD_BAND_n)
  / sin(SUN_ELEVATION)`` (scene-centre sun elevation, as USGS prescribes);
- thermal bands: radiance ``RADIANCE_MULT * DN + RADIANCE_ADD``, then brightness temperature
  ``K2 / ln(K1 / L + 1)`` in kelvin.

Invalid pixels: DN 0 (fill) in every band; bit 0 (fill) of QA_PIXEL (Collection 2) or BQA
(Collection 1, "designated fill") for the whole scene; for Landsat 7 SLC-off products, each
band's gap mask ``*_GM_<band>.TIF``, where 0 marks a scan gap (or fill) and 1 valid data.

Level-2 products (USGS Landsat Collection 2 Level-2 science product guide) carry other
quantities, as Sentinel-2 L2A does beside L1C; the level is in ``Scene.metadata`` and the
product type, and the values reach the model as what they are:

- ``SR_B<n>``: surface reflectance ``REFLECTANCE_MULT_BAND_n * DN + REFLECTANCE_ADD_BAND_n`` from
  ``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS`` (no sun-elevation division: already corrected);
- ``ST_B10`` (Landsat 8/9) or ``ST_B6`` (4-7): surface temperature in kelvin,
  ``TEMPERATURE_MULT_BAND_ST_Bn * DN + TEMPERATURE_ADD_BAND_ST_Bn`` from
  ``LEVEL2_SURFACE_TEMPERATURE_PARAMETERS``, fed as the sensor's thermal band (Landsat 7: as
  ``B6``, one band where Level-1 has two gains);
- no data: DN 0 and QA_PIXEL bit 0, as in Level-1.

The Level-1 rescaling a Level-2 MTL also carries is never used for its pixels: a band without
its Level-2 coefficients is an error.
"""

from __future__ import annotations

import math
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.products.archive import Archive, tar_members
from cloudmask_cli.products.mtl import (
    MTL,
    MTL_SUFFIXES,
    ROOT_GROUPS,
    decode,
    looks_like_mtl,
    parse_mtl,
)
from cloudmask_cli.scene import BandSource, Mask, Radiometry, Scene
from cloudmask_cli.sensors import Band, Sensor, get_sensor

# MTL SPACECRAFT_ID -> bundled sensor definition.
SENSORS = {
    "LANDSAT_4": "landsat4_tm",
    "LANDSAT_5": "landsat5_tm",
    "LANDSAT_7": "landsat7_etm",
    "LANDSAT_8": "landsat8_oli_tirs",
    "LANDSAT_9": "landsat9_oli2_tirs2",
}
GAP_VALUE = 0  # in *_GM_*.TIF: 0 = scan gap or fill, 1 = valid (checked on a real LE07 product)
QA_FILL_BIT = 1  # bit 0 of QA_PIXEL / BQA
LEVEL2 = ("L2SP", "L2SR")  # Collection 2 Level-2: with and without surface temperature
_HEAD = 4096  # bytes read to recognise an MTL


# -- product files: a folder or a tar, seen the same way -------------------------------------
def _list(path: Path) -> Archive:
    """A product folder, or a plain tar (as USGS delivers Collection 2) rooted at the folder
    holding its MTL (USGS's files are at the top; a re-packed product may sit in a folder)."""
    if path.is_dir():
        return Archive(path)
    members = tar_members(path)
    mtls = sorted((m.name for m in members if m.name.endswith(MTL_SUFFIXES)),
                  key=lambda n: n.count("/"))  # fmt: skip
    root = mtls[0].rsplit("/", 1)[0] + "/" if mtls and "/" in mtls[0] else ""
    return Archive(path, "tar", root, members=members)


def _is_tar(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(".tar")


def _mtl_names(files: Archive) -> list[str]:
    """MTL file names, txt before xml before json."""
    return [n for suffix in MTL_SUFFIXES for n in files.listdir() if n.endswith(suffix)]


# -- detection ---------------------------------------------------------------------------
def identify(path: Path) -> bool:
    """A folder or ``.tar`` holding an ``*_MTL.txt|xml|json`` whose content is a Landsat MTL."""
    path = Path(path)
    if not (path.is_dir() or _is_tar(path)):
        return False
    try:
        files = _list(path)
        return any(looks_like_mtl(files.read(n, _HEAD)) for n in _mtl_names(files))
    except (InputError, OSError, tarfile.TarError):
        return False


# -- opening -----------------------------------------------------------------------------
def open(path: Path, sensor: Sensor | None = None) -> Scene:  # noqa: A001 - reader protocol
    """A Landsat product (folder or ``.tar``) as a `Scene`: TOA values (Level-1) or surface
    reflectance and temperature (Level-2).

    With ``sensor`` (an override) every band it defines must be in the product; with the
    bundled definition, bands the MTL does not list (e.g. no TIRS in an OLI-only product)
    are left out.
    """
    path = Path(path)
    if not (path.is_dir() or _is_tar(path)):
        raise InputError(path, "not a Landsat product (expected a product folder or a .tar)")
    files = _list(path)
    mtl = _read_mtl(files)
    _check_level(mtl)
    sens = sensor if sensor is not None else _sensor_for(mtl)
    qa = _qa_mask(files, mtl)
    found = [_band_source(files, mtl, b, strict=sensor is not None) for b in sens.bands]
    bands, seen = [], set()
    for f in found:
        # Landsat 7 Level-2: both thermal gains of the sensor come from the one ST_B6 file
        if f is not None and f[0].path not in seen:
            seen.add(f[0].path)
            bands.append(f)
    if not bands:
        raise InputError(
            mtl.path, f"lists none of the {sens.name} band files (FILE_NAME_BAND_n keys)"
        )
    crs, bounds = _grid(bands)
    return Scene(
        sensor=sens,
        bands=[source for source, _ in bands],
        crs=crs,
        bounds=bounds,
        masks=[qa] if qa is not None else [],
        product=str(path),
        product_type=_product_type(mtl, sens),
        metadata=mtl.summary(),
    )


def _read_mtl(files: Archive) -> MTL:
    names = _mtl_names(files)
    if not names:
        raise InputError(
            files.source, "not a Landsat product: no *_MTL.txt, *_MTL.xml or *_MTL.json"
        )
    stems = {n.rsplit("_MTL.", 1)[0] for n in names}
    if len(stems) > 1:
        raise InputError(
            files.source, f"holds several Landsat products: {', '.join(sorted(stems))}"
        )
    name = names[0]
    where = files.display(name)
    mtl = parse_mtl(decode(files.read(name), where), where)
    if mtl.get("SPACECRAFT_ID") is None and not any(g in mtl.groups for g in ROOT_GROUPS):
        raise InputError(where, "not a Landsat MTL (no LANDSAT_METADATA_FILE group)")
    return mtl


def _check_level(mtl: MTL) -> None:
    level = mtl.level.upper()
    if mtl.is_level2 and level not in LEVEL2:
        raise InputError(
            mtl.path,
            f"PROCESSING_LEVEL {mtl.level}: not a Level-2 product cloudmask reads "
            f"({', '.join(LEVEL2)})",
        )
    if mtl.is_level2 and mtl.collection != 2:
        raise InputError(mtl.path, f"{mtl.level}: only Collection 2 Level-2 products are read")


def _sensor_for(mtl: MTL) -> Sensor:
    spacecraft = mtl.spacecraft.upper()
    if spacecraft not in SENSORS:
        raise InputError(
            mtl.path,
            f"SPACECRAFT_ID {spacecraft} is not supported (supported: {', '.join(SENSORS)})",
        )
    return get_sensor(SENSORS[spacecraft])


def _sun_divisor(mtl: MTL) -> float:
    elevation = mtl.sun_elevation
    if not 0 < elevation <= 90:
        raise InputError(
            mtl.path, f"SUN_ELEVATION = {elevation}: the sun is below the horizon, no reflectance"
        )
    return math.sin(math.radians(elevation))


def _mtl_key(band: Band, level2: bool = False) -> str:
    """YAML ``source`` (file suffix "B6_VCID_1") -> MTL band key ("6_VCID_1"); Level-2 thermal
    bands are keyed by their surface-temperature file ("ST_B10", "ST_B6")."""
    source = band.source or band.name
    key = source[1:] if source[:1].upper() == "B" else source
    if level2 and band.type == "brightness_temperature":
        return "ST_B" + key.split("_")[0]
    return key


@dataclass(frozen=True)
class _Header:
    crs: CRS
    bounds: tuple[float, float, float, float]
    resolution: float


def _band_source(
    files: Archive, mtl: MTL, band: Band, strict: bool
) -> tuple[BandSource, _Header] | None:
    key = _mtl_key(band, mtl.is_level2)
    name = mtl.band_file(key)
    if name is None:
        if strict:
            raise InputError(mtl.path, f"band {band.name}: no FILE_NAME_BAND_{key} in the MTL")
        return None
    if mtl.is_level2 and band.type == "brightness_temperature" and band.name != f"B{key[4:]}":
        band = replace(band, name=f"B{key[4:]}", description="surface temperature")
    gdal_path = _raster(files, name, "band file")
    header = _check_raster(files, name)
    source = BandSource(
        band=band,
        path=gdal_path,
        radiometry=radiometry(mtl, band),
        nodata=(0,),
        masks=_gap_masks(files, mtl, band),
        resolution=header.resolution,  # the file's, not the YAML's: products may be resampled
    )
    return source, header


def _raster(files: Archive, name: str, what: str) -> str:
    if not files.exists(name):
        raise InputError(files.display(name), f"{what} listed in the MTL is missing")
    return files.gdal_path(name)


def _check_raster(files: Archive, name: str) -> _Header:
    """Read the header (never the pixels). Unreadable and truncated files fail here."""
    try:
        with rasterio.open(files.gdal_path(name)) as ds:
            if ds.crs is None:
                raise InputError(files.display(name), "has no CRS")
            header = _Header(ds.crs, tuple(ds.bounds), abs(ds.transform.a))
            end = _last_block_end(ds)
    except RasterioError as exc:
        raise InputError(files.display(name), f"cannot read raster ({first_line(exc)})") from None
    if end is not None and end > files.size(name):
        raise InputError(
            files.display(name),
            f"truncated: {files.size(name)} bytes, but its image data runs to byte {end}",
        )
    return header


def _last_block_end(ds: rasterio.io.DatasetReader) -> int | None:
    """End (offset + size) of the last full-resolution TIFF block, when GDAL reports it."""
    if ds.driver != "GTiff":
        return None
    bw, bh = ds.block_shapes[0][1], ds.block_shapes[0][0]
    nx, ny = -(-ds.width // bw), -(-ds.height // bh)
    offset = ds.get_tag_item(f"BLOCK_OFFSET_{nx - 1}_{ny - 1}", "TIFF", bidx=1)
    size = ds.get_tag_item(f"BLOCK_SIZE_{nx - 1}_{ny - 1}", "TIFF", bidx=1)
    if offset is None or size is None:
        return None
    return int(offset) + int(size)


def radiometry(mtl: MTL, band: Band) -> Radiometry:
    """DN -> physical value of ``band``, from the MTL: TOA reflectance or brightness
    temperature (K) for Level-1, surface reflectance or surface temperature (K) for Level-2.

    The YAML ``source`` names the MTL keys ("B6_VCID_1" -> ``*_BAND_6_VCID_1``); a band
    with numeric ``scale``/``offset`` (a user's sensor YAML) keeps them.
    """
    if band.scale != "metadata" and band.offset != "metadata":
        return Radiometry(scale=float(band.scale), offset=float(band.offset))  # user's numbers
    if mtl.is_level2:
        return _level2_radiometry(mtl, band)
    key = _mtl_key(band)
    if band.type == "brightness_temperature":
        mult, add = mtl.radiance(key)
        k1, k2 = mtl.thermal(key)
        return Radiometry(
            scale=mult,
            offset=add,
            k1=k1,
            k2=k2,
            formula=f"K2 / ln(K1 / (RADIANCE_MULT_BAND_{key} * DN + RADIANCE_ADD_BAND_{key}) + 1)",
        )
    if band.type != "reflectance":
        raise InputError(mtl.path, f"band {band.name}: Landsat has no {band.type} band")
    mult, add = mtl.reflectance(key)
    return Radiometry(
        scale=mult,
        offset=add,
        divisor=_sun_divisor(mtl),
        formula=f"(REFLECTANCE_MULT_BAND_{key} * DN + REFLECTANCE_ADD_BAND_{key})"
        " / sin(SUN_ELEVATION)",
    )


def _level2_radiometry(mtl: MTL, band: Band) -> Radiometry:
    key = _mtl_key(band, level2=True)
    if band.type == "brightness_temperature":
        mult, add = mtl.surface_temperature(key)
        return Radiometry(
            scale=mult,
            offset=add,
            formula=f"TEMPERATURE_MULT_BAND_{key} * DN + TEMPERATURE_ADD_BAND_{key}"
            " (surface temperature, K)",
        )
    if band.type != "reflectance":
        raise InputError(mtl.path, f"band {band.name}: Landsat has no {band.type} band")
    mult, add = mtl.surface_reflectance(key)
    return Radiometry(
        scale=mult,
        offset=add,
        formula=f"REFLECTANCE_MULT_BAND_{key} * DN + REFLECTANCE_ADD_BAND_{key}"
        " (surface reflectance)",
    )


def _qa_mask(files: Archive, mtl: MTL) -> Mask | None:
    name = mtl.qa_file()
    if name is None:
        return None
    gdal_path = _raster(files, name, "QA band")
    _check_raster(files, name)
    label = "QA_PIXEL" if "QA_PIXEL" in name.upper() else "BQA"
    return Mask(path=gdal_path, invalid_bits=QA_FILL_BIT, name=f"{label} fill (bit 0)")


def _gap_masks(files: Archive, mtl: MTL, band: Band) -> tuple[Mask, ...]:
    """Landsat 7 SLC-off gap mask of this band, when the product has one."""
    source = band.source or band.name
    name = f"{mtl.product_id}_GM_{source}.TIF"
    if not files.exists(name):
        return ()
    _check_raster(files, name)
    return (Mask(path=files.gdal_path(name), invalid_values=(GAP_VALUE,), name="SLC-off gap mask"),)


def _grid(bands: list[tuple[BandSource, _Header]]) -> tuple[CRS, tuple[float, float, float, float]]:
    """CRS and bounds of the product: those of its first multispectral band."""
    _, ref = next(
        ((s, h) for s, h in bands if s.band.type == "reflectance" and not s.band.panchromatic),
        bands[0],
    )
    for source, header in bands:
        if header.crs != ref.crs:
            raise InputError(source.path, f"CRS {header.crs} differs from the product's {ref.crs}")
    return ref.crs, ref.bounds


def _product_type(mtl: MTL, sensor: Sensor) -> str:
    collection = f"Collection {mtl.collection}" if mtl.collection else "pre-collection"
    return f"{sensor.title} {collection} {mtl.level}"


__all__ = ["SENSORS", "identify", "open", "radiometry"]
