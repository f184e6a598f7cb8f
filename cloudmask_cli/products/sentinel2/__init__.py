"""Sentinel-2 MSI Level-1C and Level-2A: a ``.SAFE`` folder or a ``.zip`` of one.

Every processing baseline from 02.0x to 05.xx is read, in the compact naming (``MTD_MSIL1C.xml``,
``GRANULE/L1C_T.../IMG_DATA/T..._B02.jp2``) and in the old ``OPER`` naming of products made before
December 2016 (``S2A_OPER_MTD_SAFL1C_*.xml``, ``S2A_OPER_MSI_L1C_TL_*_B02.jp2``). A zip is read in
place: XML through `zipfile`, rasters through GDAL ``/vsizip/`` paths; nothing is extracted.

Everything comes from the product's own metadata, never from file or folder names:

- the product metadata (``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml`` or the OPER ``MTD_SAF*``): level,
  baseline, spacecraft, the band files (``Granule_List``), ``QUANTIFICATION_VALUE`` (L1C) or
  ``BOA_QUANTIFICATION_VALUE`` (L2A) and, per band, ``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET``;
- the granule metadata (``MTD_TL.xml`` or the OPER ``MTD_L1C_TL``): tile CRS and extent, mean sun
  angles, and the quality masks it lists.

Reflectance is ``(DN + offset) / quantification``. From baseline 04.00 ESA adds 1000 to every DN and
writes the offset (-1000) into the metadata, so a 04.00+ product without offsets is refused rather
than read 0.1 too bright; before 04.00 the offset is 0 unless the metadata says otherwise.

Valid data: DN 0 is "no data" in every band (the products' ``SPECIAL_VALUE NODATA``). From baseline
04.00 each band also has ``QI_DATA/MSK_QUALIT_Bxx.jp2`` (8 layers, one 0/1 raster each; see
`QUALIT_LAYERS`); the layers that mean "no measurement here" (`QUALIT_INVALID`) are applied to
their band. Older baselines carry these masks as GML polygons (``MSK_NODATA_Bxx.gml`` ...); they
are not rasterised here: their ``QT_NODATA_PIXELS`` are DN 0 in the image, and in the real products
we test on they hold only cross-talk corrections (still valid data), so DN 0 is the mask.

L2A products hold most bands at several resolutions (``R10m``/``R20m``/``R60m``); each band is read
from its finest file present, so a product trimmed to ``R60m`` (as the shared T29UNU tile) opens at
60 m. A band's native resolution is its file's pixel size, so the default working grid is the
finest band actually present.

The package: `locate` (the SAFE from a folder, zip, granule folder or MTD), `metadata` (product
and granule XML), `jp2` (JPEG 2000 completeness), `bands` (band sources, quality masks, grid).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from cloudmask_cli.errors import InputError
from cloudmask_cli.products.sentinel2.bands import (
    QUALIT_INVALID,
    QUALIT_LAYERS,
    band_sources,
    scene_metadata,
    tile_grid,
)
from cloudmask_cli.products.sentinel2.locate import locate_safe, zip_holds_safe
from cloudmask_cli.products.sentinel2.metadata import (
    BAND_ORDER,
    SENSOR_NAME,
    Granule,
    ProductMetadata,
    TileMetadata,
    choose_granule,
    parse_product_metadata,
    parse_tile_metadata,
    read_tile_metadata,
)
from cloudmask_cli.scene import Scene
from cloudmask_cli.sensors import Sensor, get_sensor


# -- reader protocol -------------------------------------------------------------------------
def identify(path: Path) -> bool:
    """A SAFE folder, a zip holding one, a granule folder of one, or its product MTD file."""
    path = Path(path)
    try:
        if locate_safe(path) is not None:
            return True
        # A zip with a .SAFE folder but no metadata is still ours: open() says what is missing.
        return path.is_file() and zipfile.is_zipfile(path) and zip_holds_safe(path)
    except (InputError, OSError):
        return False


def open(path: Path, sensor: Sensor | None = None) -> Scene:  # noqa: A001 - reader protocol
    """Open a Sentinel-2 L1C/L2A product as a `Scene` on its finest band's grid.

    Only headers and metadata are read here; every band file is checked (present, a complete
    JPEG 2000 file, on the tile's grid) so a broken product fails now, naming the file.
    """
    path = Path(path)
    located = locate_safe(path)
    if located is None:
        raise InputError(path, _not_a_safe_reason(path))
    files = located.files
    meta = parse_product_metadata(files.read(located.mtd), files.display(located.mtd))
    granule = choose_granule(meta, located.granule, files.display(located.mtd))
    tile = read_tile_metadata(files, granule.folder)
    sensor = sensor or get_sensor(SENSOR_NAME)
    sources = band_sources(files, meta, granule, tile, sensor, located.mtd)
    if not sources:
        raise InputError(files.display(located.mtd), "lists no Sentinel-2 band file (B01..B12)")
    crs, bounds = tile_grid(tile, sources)
    return Scene(
        sensor=sensor,
        bands=[s.source for s in sources],
        crs=crs,
        bounds=bounds,
        product=str(path),
        product_type=f"Sentinel-2 {meta.level} (SAFE {'zip' if files.kind == 'zip' else 'folder'})",
        metadata=scene_metadata(meta, tile, granule, [s.source for s in sources]),
    )


def _not_a_safe_reason(path: Path) -> str:
    if not path.exists():
        return "no such file or folder"
    if path.is_file() and zipfile.is_zipfile(path):
        return "zip holds no Sentinel-2 SAFE (no MTD_MSIL1C.xml, MTD_MSIL2A.xml or MTD_SAFL1C)"
    if path.is_file() and path.suffix.lower() == ".zip":  # the name only picks the message
        return "not a readable zip archive (damaged or incomplete download?)"
    if path.is_file():
        return "not a Sentinel-2 product (expected a .SAFE folder, its .zip, or its MTD_MSIL*.xml)"
    return "folder holds no MTD_MSIL1C.xml, MTD_MSIL2A.xml or S2x_OPER_MTD_SAFL1C_*.xml"


__all__ = [
    "BAND_ORDER",
    "QUALIT_INVALID",
    "QUALIT_LAYERS",
    "Granule",
    "ProductMetadata",
    "TileMetadata",
    "identify",
    "open",
    "parse_product_metadata",
    "parse_tile_metadata",
]
