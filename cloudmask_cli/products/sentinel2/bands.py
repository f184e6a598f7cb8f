"""The band files of a granule as band sources, with their quality masks, checked to lie on the
tile's grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.products.archive import Archive
from cloudmask_cli.products.sentinel2.jp2 import check_jp2
from cloudmask_cli.products.sentinel2.metadata import (
    BAND_IN_NAME,
    BAND_ORDER,
    Granule,
    ProductMetadata,
    TileMetadata,
    tile_of,
)
from cloudmask_cli.scene import BandSource, Mask
from cloudmask_cli.sensors import Band, Sensor

# MSK_QUALIT_Bxx.jp2 (baseline >= 04.00): 8 layers, each 0 (clear) or 1 (flagged).
QUALIT_LAYERS = {
    1: "ANC_LOST",
    2: "ANC_DEG",
    3: "MSI_LOST",
    4: "MSI_DEG",
    5: "QT_DEFECTIVE_PIXELS",
    6: "QT_NODATA_PIXELS",
    7: "QT_PARTIALLY_CORRECTED_PIXELS",
    8: "QT_SATURATED_PIXELS_L1A",
}
# Layers where the DN is not a measurement: lost MSI packets, defective detector pixels
# (interpolated from neighbours), no data. Degraded packets still carry a (noisier) measurement,
# lost/degraded *ancillary* data only blur geolocation, cross-talk pixels are corrected, and
# saturated pixels are mostly bright cloud or snow, which the model must see: those stay valid.
QUALIT_INVALID = (3, 5, 6)


# -- bands -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Opened:
    """A band source with what its header said (for the grid checks)."""

    source: BandSource
    crs: CRS | None
    bounds: tuple[float, float, float, float]
    resolution: float


def band_sources(
    files: Archive,
    meta: ProductMetadata,
    granule: Granule,
    tile: TileMetadata | None,
    sensor: Sensor,
    mtd: str,
) -> list[_Opened]:
    """One source per sensor band the granule lists, from its finest file present."""
    trimmed = _trimmed_folders(files, granule) if meta.level == "L2A" else set()
    out = []
    for band in sensor.bands:
        key = band.source or band.name
        listed = sorted(
            (f for f in granule.files if _band_of(f) == key), key=lambda f: _file_res(f, band)
        )
        present = [f for f in listed if files.exists(f)]
        holes = [f for f in listed if f not in present and _folder(f) not in trimmed]
        if holes:
            raise InputError(files.display(holes[0]), f"band {key} file listed in {mtd} is missing")
        if present:
            out.append(_open_band(files, meta, tile, band, key, present[0]))
        # else: not in this product (L2A has no B10), or only in resolution folders trimmed away
    return out


def _trimmed_folders(files: Archive, granule: Granule) -> set[str]:
    """L2A resolution folders (``R10m``...) with none of their spectral band files present.

    A product cut down to whole resolution levels (the shared T29UNU keeps only ``R60m``) is
    coherent, and its bands are read from the coarser folders; a single missing file in a folder
    that has the others is a broken product and an error.
    """
    by_folder: dict[str, list[str]] = {}
    for f in granule.files:
        if _band_of(f):
            by_folder.setdefault(_folder(f), []).append(f)
    return {d for d, fs in by_folder.items() if not any(files.exists(f) for f in fs)}


def _folder(rel: str) -> str:
    return str(PurePosixPath(rel).parent)


def _band_of(rel: str) -> str:
    match = BAND_IN_NAME.search(PurePosixPath(rel).stem)
    return match.group(1) if match else ""


def _file_res(rel: str, band: Band) -> float:
    """The resolution an L2A file name states (``_20m``), else the band's nominal one."""
    match = BAND_IN_NAME.search(PurePosixPath(rel).stem)
    if match and match.group(2):
        return float(match.group(2))
    return band.resolution or 0.0


def _open_band(
    files: Archive,
    meta: ProductMetadata,
    tile: TileMetadata | None,
    band: Band,
    key: str,
    rel: str,
) -> _Opened:
    check_jp2(files, rel)
    crs, bounds, res, count, dtype = _header(files, rel)
    if dtype != "uint16":
        raise InputError(files.display(rel), f"band {key} is {dtype}, Sentinel-2 DN are uint16")
    source = BandSource(
        band=band,
        path=files.gdal_path(rel),
        index=1,
        radiometry=meta.radiometry(key),
        nodata=(0,),  # SPECIAL_VALUE NODATA = 0 in every baseline
        masks=_quality_masks(files, meta, tile, key),
        resolution=res,
    )
    return _Opened(source, crs, bounds, res)


def _header(
    files: Archive, rel: str
) -> tuple[CRS | None, tuple[float, float, float, float], float, int, str]:
    try:
        with rasterio.open(files.gdal_path(rel)) as ds:
            if ds.transform.b or ds.transform.d:
                raise InputError(files.display(rel), "rotated grid: not a Sentinel-2 tile raster")
            left, bottom, right, top = ds.bounds
            return ds.crs, (left, bottom, right, top), abs(ds.transform.a), ds.count, ds.dtypes[0]
    except RasterioError as exc:
        raise InputError(files.display(rel), f"cannot read raster ({first_line(exc)})") from None


def _quality_masks(
    files: Archive, meta: ProductMetadata, tile: TileMetadata | None, key: str
) -> tuple[Mask, ...]:
    """The no-measurement layers of the band's ``MSK_QUALIT`` (baseline >= 04.00)."""
    rel = tile.masks.get(("MSK_QUALIT", key)) if tile else None
    if rel is None or meta.baseline_tuple < (4, 0):
        return ()
    if not files.exists(rel):
        raise InputError(files.display(rel), f"quality mask of {key} listed in MTD_TL is missing")
    check_jp2(files, rel)
    count = _header(files, rel)[3]
    if count != len(QUALIT_LAYERS):
        raise InputError(
            files.display(rel), f"MSK_QUALIT has {count} layers, expected {len(QUALIT_LAYERS)}"
        )
    # One Mask over several layers: they are read in one call, which decodes the JP2 once.
    names = "/".join(QUALIT_LAYERS[layer] for layer in QUALIT_INVALID)
    return (
        Mask(
            path=files.gdal_path(rel),
            index=QUALIT_INVALID,
            invalid_values=(1,),
            name=f"MSK_QUALIT {key} {names}",
        ),
    )


# -- grid --------------------------------------------------------------------------------------
def tile_grid(
    tile: TileMetadata | None, sources: list[_Opened]
) -> tuple[CRS, tuple[float, float, float, float]]:
    """The tile's CRS and extent from MTD_TL (else the finest band's header); every band file
    must lie on it, since the Scene places bands by their coordinates."""
    finest = min(sources, key=lambda s: s.resolution)
    if tile is not None and tile.epsg is not None and tile.bounds is not None:
        crs, bounds, where = CRS.from_epsg(tile.epsg), tile.bounds, tile.source
    else:
        if finest.crs is None:
            raise InputError(finest.source.path, "has no CRS and the granule has no MTD_TL")
        crs, bounds, where = finest.crs, finest.bounds, finest.source.path
    for s in sources:
        _check_on_grid(s, crs, bounds, where)
    return crs, bounds


def _check_on_grid(
    s: _Opened, crs: CRS, bounds: tuple[float, float, float, float], where: str
) -> None:
    if s.crs is None or s.crs.to_epsg() != crs.to_epsg():
        raise InputError(s.source.path, f"is in {s.crs} but the tile ({where}) is in {crs}")
    if any(abs(a - b) > s.resolution / 2 for a, b in zip(s.bounds, bounds, strict=True)):
        raise InputError(
            s.source.path, f"covers {_fmt(s.bounds)} but the tile ({where}) is {_fmt(bounds)}"
        )


def _fmt(bounds: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in bounds) + ")"


def scene_metadata(
    meta: ProductMetadata,
    tile: TileMetadata | None,
    granule: Granule,
    sources: list[BandSource],
) -> dict[str, object]:
    names = [s.band.source or s.band.name for s in sources]
    listed = {_band_of(f) for f in granule.files} - {""}
    return {
        "level": meta.level,
        "baseline": meta.baseline,
        "spacecraft": meta.spacecraft,
        "datetime": (tile.sensing_time if tile and tile.sensing_time else meta.start_time),
        "tile": tile_of(tile.tile_id if tile and tile.tile_id else granule.identifier),
        "sun_zenith": tile.sun_zenith if tile else None,
        "sun_azimuth": tile.sun_azimuth if tile else None,
        "quantification": meta.quantification,
        "offsets": {n: meta.offsets.get(n, 0.0) for n in names},
        "product_uri": meta.product_uri,
        "granule": PurePosixPath(granule.folder).name,
        # listed in the metadata but only in resolution folders trimmed from the product
        "absent_bands": sorted(listed - set(names), key=BAND_ORDER.index),
    }
