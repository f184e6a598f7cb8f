"""A tiny PerúSat-1 DIMAP V2 delivery in the real layout, for tests and demos.

`write_perusat1` writes what CONIDA delivers, shrunk::

    DS_PER1_<time>_PS1_W077S12_000001/
      PER_LIST.XML
      VOL_PER1_ORT_001_000001/PER_VOL.XML
        IMG_PER1_ORT_MS_000001/DIM_PER1_<time>_ORT_MS_000001.XML, IMG_...TIF, IMG_...TFW
        IMG_PER1_ORT_P_000001/...                               (with ``pan=True``)

The DIM is generated here with the elements and nesting of the real DIMAP V2 schema that
readers use (never copied from a real product); values are plausible for PerúSat-1: the
spectral ranges of the bundled sensor YAML, gains and solar irradiances of the order of real
products, a Lima-like scene in UTM 18S. The image is 12-bit DN in uint16: coastal desert,
vegetation and sea with texture, a few clouds with their shadows, and the slanted no-data edge
of an ortho footprint (DN 0). DN are computed from a known reflectance field with the inverse of
the reader's formula, so tests can check the round trip.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from cloudmask_cli.products.perusat1 import earth_sun_distance
from cloudmask_cli.sensors import get_sensor

ACQUIRED = datetime(2019, 1, 15, 15, 12, 30, 250000, tzinfo=timezone.utc)
SUN_ELEVATION = 63.4
SUN_AZIMUTH = 102.7
# L = DN / GAIN + BIAS (W m-2 sr-1 um-1); E_sun in W m-2 um-1.
GAINS = {"B0": 6.02, "B1": 5.77, "B2": 7.88, "B3": 10.3, "PAN": 10.42}
BIASES = {"B0": 0.0, "B1": 0.0, "B2": 0.0, "B3": 0.0, "PAN": 0.0}
SOLAR_IRRADIANCE = {"B0": 1982.7, "B1": 1826.1, "B2": 1540.5, "B3": 1094.7, "PAN": 1706.5}
CRS_CODE = 32718
# Upper-left corner, south of Lima. Real deliveries give the corner as ULXMAP (MS and P share
# it) and repeat it in the .TFW.
ORIGIN = (289_000.0, 8_642_000.0)
MS_RES, PAN_RES = 2.8, 0.7
MS_IDS = ("B0", "B1", "B2", "B3")
SATURATED = 4095
_NUMBER = "000001"
# Surface reflectance of each cover in B0..B3: sea, coastal desert, irrigated fields, town.
_COVERS = np.array(
    [
        [0.07, 0.06, 0.035, 0.015],
        [0.11, 0.16, 0.23, 0.29],
        [0.04, 0.08, 0.05, 0.38],
        [0.10, 0.11, 0.12, 0.15],
    ],
    dtype=np.float32,
)
_CLOUD = np.array([0.62, 0.60, 0.59, 0.57], dtype=np.float32)


def write_perusat1(
    path: Path,
    *,
    size: int = 256,
    seed: int = 0,
    clouds: bool = True,
    pan: bool = False,
    spectral: str = "MS",
    rgb_order: bool = False,
    tiles: int = 1,
) -> Path:
    """Write a delivery into the folder ``path``; return its root (``path/DS_PER1_...``).

    ``spectral="MS"`` writes a 4-band product of ``size`` x ``size`` pixels at 2.8 m, ``"PMS"``
    the same at 0.7 m (pan-sharpened). ``pan=True`` adds the P product over the same ground
    (4x the pixels at 0.7 m). ``rgb_order=True`` stores the bands red, green, blue, NIR and says
    so in the TIFF ImageDescription ("B2 B1 B0 B3"), as some PerúSat-1 images do. ``tiles``
    splits the 4-band image into that many row tiles (``_R1C1.TIF``, ``_R2C1.TIF``, ...), as
    large products are delivered.
    """
    if spectral not in ("MS", "PMS"):
        raise ValueError(f"spectral must be 'MS' or 'PMS', got {spectral!r}")
    rng = np.random.default_rng(seed)
    rho, valid = simulate_reflectance(rng, size, clouds)
    stamp = ACQUIRED.strftime("%Y%m%d%H%M%S")
    root = Path(path) / f"DS_PER1_{stamp}{ACQUIRED.microsecond // 100000}_PS1_W077S12_{_NUMBER}"
    volume = root / f"VOL_PER1_ORT_001_{_NUMBER}"
    res = MS_RES if spectral == "MS" else PAN_RES
    dn = _to_dn(rho, MS_IDS, valid)
    products = [_write_product(volume, spectral, res, dn, rgb_order, tiles)]
    if pan:
        factor = round(res / PAN_RES)
        fine = np.repeat(np.repeat(rho, factor, axis=1), factor, axis=2)
        mask = np.repeat(np.repeat(valid, factor, axis=0), factor, axis=1)
        texture = 1.0 + 0.03 * _smooth(rng, fine.shape[1], 1.0)
        pan_rho = (fine[:3].mean(axis=0) * texture)[None]
        products.append(_write_product(volume, "P", PAN_RES, _to_dn(pan_rho, ("PAN",), mask)))
    _write_lists(root, volume, products)
    return root


# -- the scene ----------------------------------------------------------------------------------
def simulate_reflectance(
    rng: np.random.Generator, size: int, clouds: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """TOA reflectance ``(4, size, size)`` (B0..B3) and the valid-data mask of a scene."""
    # The coast runs north-south with the sea to the west, as around Lima.
    terrain = 0.5 * _smooth(rng, size, size / 10) + np.linspace(-1.5, 1.5, size)[None, :]
    moisture = _smooth(rng, size, size / 16)
    texture = 1.0 + 0.07 * _smooth(rng, size, 1.2) + 0.05 * _smooth(rng, size, size / 40)
    sea = terrain < -0.6
    fields = ~sea & (moisture > 0.7)
    town = ~sea & ~fields & (_smooth(rng, size, size / 30) > 1.0)
    cover = np.select([sea, fields, town], [0, 2, 3], default=1)
    rho = _COVERS[cover].transpose(2, 0, 1) * np.where(sea, 1.0, texture)[None]
    if clouds:
        opacity = _clouds(rng, size)
        rho *= 1.0 - 0.65 * _shadow(opacity, size)[None]
        rho = rho * (1 - opacity[None]) + _CLOUD[:, None, None] * opacity[None] * texture[None]
    return rho.astype(np.float32), _footprint(size)


def _smooth(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Unit-variance Gaussian-filtered noise (an FFT filter: periodic, which nothing minds)."""
    freq = np.fft.fftfreq(n)
    kernel = np.exp(-2 * (math.pi * sigma) ** 2 * (freq[:, None] ** 2 + freq[None, :] ** 2))
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * kernel).real
    return (field - field.mean()) / (field.std() + 1e-12)


def _clouds(rng: np.random.Generator, size: int) -> np.ndarray:
    """Opacity 0..1 of a few cumulus clouds with soft, lumpy edges."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    blobs = np.zeros((size, size))
    for _ in range(3):
        cy, cx = rng.uniform(0.15, 0.85, 2)
        r = rng.uniform(0.06, 0.12)
        blobs += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    lumps = 0.5 + 0.35 * _smooth(rng, size, size / 50)
    return np.clip((blobs * lumps - 0.25) * 2.5, 0, 1)


def _shadow(opacity: np.ndarray, size: int) -> np.ndarray:
    """The clouds' shadow: their opacity moved away from the sun (azimuth from north)."""
    shift = size // 12
    dx = -round(shift * math.sin(math.radians(SUN_AZIMUTH)))
    dy = round(shift * math.cos(math.radians(SUN_AZIMUTH)))  # rows grow southwards
    moved = np.zeros_like(opacity)
    src = opacity[max(0, -dy) : size - max(0, dy), max(0, -dx) : size - max(0, dx)]
    moved[max(0, dy) : size - max(0, -dy), max(0, dx) : size - max(0, -dx)] = src
    return moved * (1 - opacity)


def _footprint(size: int) -> np.ndarray:
    """Valid pixels of an ortho image of a tilted swath: no-data wedges at two corners."""
    yy, xx = np.mgrid[0:size, 0:size]
    return (xx + 0.5 * yy > 0.22 * size) & (xx + 0.5 * yy < 1.4 * size)


def _to_dn(rho: np.ndarray, band_ids: tuple[str, ...], valid: np.ndarray) -> np.ndarray:
    """Reflectance -> DN with the inverse of the reader's formula; DN 0 outside the footprint."""
    d = earth_sun_distance(ACQUIRED)
    sin_e = math.sin(math.radians(SUN_ELEVATION))
    dn = np.zeros(rho.shape, dtype=np.uint16)
    for i, band_id in enumerate(band_ids):
        radiance = rho[i] * SOLAR_IRRADIANCE[band_id] * sin_e / (math.pi * d**2)
        values = np.rint((radiance - BIASES[band_id]) * GAINS[band_id])
        dn[i] = np.where(valid, np.clip(values, 1, SATURATED), 0)
    return dn


# -- files --------------------------------------------------------------------------------------
def _write_product(
    volume: Path, kind: str, res: float, dn: np.ndarray, rgb_order: bool = False, tiles: int = 1
) -> Path:
    """One IMG_* folder: DIM, GeoTIFF(s) and world file. Returns the DIM's path."""
    ids = ("PAN",) if kind == "P" else MS_IDS
    name = f"PER1_{ACQUIRED.strftime('%Y%m%d%H%M%S')}_ORT_{kind}_{_NUMBER}"
    folder = volume / f"IMG_PER1_ORT_{kind}_{_NUMBER}"
    folder.mkdir(parents=True, exist_ok=True)
    order = ("B2", "B1", "B0", "B3") if rgb_order and kind != "P" else ids
    dn = dn[[ids.index(b) for b in order]]
    rows = -(-dn.shape[1] // tiles)  # large products come as row tiles R1C1, R2C1, ...
    files = []
    for r in range(tiles):
        suffix = f"_R{r + 1}C1" if tiles > 1 else ""
        files.append(f"IMG_{name}{suffix}.TIF")
        origin = (ORIGIN[0], ORIGIN[1] - r * rows * res)
        part = dn[:, r * rows : (r + 1) * rows]
        _write_tif(folder / files[-1], part, res, origin, " ".join(order) if rgb_order else "")
    if tiles == 1:
        tfw = f"{res}\n0\n0\n{-res}\n{ORIGIN[0]}\n{ORIGIN[1]}\n"
        (folder / f"IMG_{name}.TFW").write_text(tfw)
    dim = folder / f"DIM_{name}.XML"
    tree = _dim_tree(name, kind, ids, dn.shape[1:], res, files, rows)
    ET.indent(tree, "    ")
    tree.write(dim, encoding="UTF-8", xml_declaration=True)
    return dim


def _write_tif(
    path: Path, dn: np.ndarray, res: float, origin: tuple[float, float], description: str
) -> None:
    count, height, width = dn.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": "uint16",
        "crs": f"EPSG:{CRS_CODE}",
        "transform": Affine(res, 0, origin[0], 0, -res, origin[1]),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(dn)
        if description:
            ds.update_tags(TIFFTAG_IMAGEDESCRIPTION=description)
        levels = [f for f in (2, 4, 8) if min(width, height) // f >= 64]
        if levels:
            ds.build_overviews(levels, Resampling.average)


def _el(parent: ET.Element, tag: str, text: object = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = str(text)
    return el


def _path(parent: ET.Element, tags: str) -> ET.Element:
    """Nested elements ``A/B/C`` under ``parent``; returns the innermost."""
    for tag in tags.split("/"):
        parent = _el(parent, tag)
    return parent


def _dim_tree(
    name: str,
    kind: str,
    ids: tuple[str, ...],
    shape: tuple[int, int],
    res: float,
    files: list[str],
    tile_rows: int,
) -> ET.ElementTree:
    doc = ET.Element("Dimap_Document", {"version": "1.0"})
    ident = _el(doc, "Metadata_Identification")
    _el(ident, "METADATA_FORMAT", "DIMAP", version="2.0")
    _el(ident, "METADATA_PROFILE", "PER1_ORTHO")
    dataset = _el(doc, "Dataset_Identification")
    _el(dataset, "DATASET_TYPE", "RASTER_ORTHO")
    _el(dataset, "DATASET_NAME", f"ORT_{name.rsplit('_ORT_', 1)[0]}_000")
    crs = _path(doc, "Coordinate_Reference_System/Projected_CRS")
    _el(crs, "PROJECTED_CRS_NAME", "UTM18S")
    _el(crs, "PROJECTED_CRS_CODE", f"urn:ogc:def:crs:EPSG::{CRS_CODE}")
    _geoposition(doc, res)
    settings = _path(doc, "Processing_Information/Product_Settings")
    _el(settings, "PROCESSING_LEVEL", "ORTHO")
    _el(settings, "SPECTRAL_PROCESSING", kind)
    _raster_data(doc, ids, shape, files, tile_rows)
    _radiometric_data(doc, ids)
    _geometric_data(doc)
    strip = _path(doc, "Dataset_Sources/Source_Identification/Strip_Source")
    for tag, text in (("MISSION", "PER"), ("MISSION_INDEX", 1), ("INSTRUMENT", "NAOMI")):
        _el(strip, tag, text)
    _el(strip, "INSTRUMENT_INDEX", 1)
    _el(strip, "IMAGING_DATE", ACQUIRED.strftime("%Y-%m-%d"))
    _el(strip, "IMAGING_TIME", ACQUIRED.strftime("%H:%M:%S"))
    return ET.ElementTree(doc)


def _geoposition(doc: ET.Element, res: float) -> None:
    geo = _el(doc, "Geoposition")
    raster_crs = _el(geo, "Raster_CRS")
    for tag, text in (("RASTER_GEOMETRY", "GROUND"), ("PIXEL_ORIENTATION", "UL")):
        _el(raster_crs, tag, text)
    insert = _el(geo, "Geoposition_Insert")
    _el(insert, "ULXMAP", f"{ORIGIN[0]:.2f}", unit="M")
    _el(insert, "ULYMAP", f"{ORIGIN[1]:.2f}", unit="M")
    _el(insert, "XDIM", res, unit="M")
    _el(insert, "YDIM", res, unit="M")


def _raster_data(
    doc: ET.Element, ids: tuple[str, ...], shape: tuple[int, int], files: list[str], rows: int
) -> None:
    raster = _el(doc, "Raster_Data")
    access = _el(raster, "Data_Access")
    _el(access, "DATA_FILE_ORGANISATION", "BAND_COMPOSITE")
    _el(access, "DATA_FILE_FORMAT", "image/geotiff")
    _el(access, "DATA_FILE_TILES", str(len(files) > 1).lower())
    data_files = _el(access, "Data_Files")
    for r, name in enumerate(files, start=1):
        tile = {"tile_R": str(r), "tile_C": "1"} if len(files) > 1 else {}
        _el(_el(data_files, "Data_File", **tile), "DATA_FILE_PATH", href=name)
    dims = _el(raster, "Raster_Dimensions")
    for tag, value in (("NROWS", shape[0]), ("NCOLS", shape[1]), ("NBANDS", len(ids))):
        _el(dims, tag, value)
    if len(files) > 1:
        tiling = _path(dims, "Tile_Set/Regular_Tiling")
        _el(tiling, "NTILES_SIZE", nrows=str(rows), ncols=str(shape[1]))
        _el(tiling, "NTILES_COUNT", ntiles_R=str(len(files)), ntiles_C="1")
        _el(tiling, "OVERLAP_ROW", 0)
        _el(tiling, "OVERLAP_COL", 0)
    encoding = _el(raster, "Raster_Encoding")
    for tag, text in (("DATA_TYPE", "INTEGER"), ("NBITS", 16), ("SIGN", "UNSIGNED")):
        _el(encoding, tag, text)
    display = _el(raster, "Raster_Display")
    if len(ids) == 4:
        order = _el(display, "Band_Display_Order")
        for tag, band in zip(
            ("RED", "GREEN", "BLUE", "ALPHA"), ("B2", "B1", "B0", "B3"), strict=True
        ):
            _el(order, f"{tag}_CHANNEL", band)
    for text, value in (("NODATA", 0), ("SATURATED", SATURATED)):
        special = _el(display, "Special_Value")
        _el(special, "SPECIAL_VALUE_TEXT", text)
        _el(special, "SPECIAL_VALUE_COUNT", value)


def _radiometric_data(doc: ET.Element, ids: tuple[str, ...]) -> None:
    radiometric = _el(doc, "Radiometric_Data")
    dynamic = _el(radiometric, "Dynamic_Range")
    _el(dynamic, "ACQUISITION_RANGE", 12)
    _el(dynamic, "PRODUCT_RANGE", 12)
    measures = _path(radiometric, "Radiometric_Calibration/Instrument_Calibration")
    measures = _el(measures, "Band_Measurement_List")
    sensor = get_sensor("perusat1_naomi")
    ranges = {b.source: b.wavelength for b in sensor.bands}
    for band_id in ids:
        lo, hi = ranges[band_id] or (0.0, 0.0)
        el = _measure(measures, "Band_Spectral_Range", band_id, "micrometers")
        _el(el, "MIN", f"{lo / 1000:g}")
        _el(el, "MAX", f"{hi / 1000:g}")
    for band_id in ids:
        el = _measure(measures, "Band_Radiance", band_id, "watt/m2/steradians/micrometers")
        _el(el, "GAIN", GAINS[band_id])
        _el(el, "BIAS", BIASES[band_id])
    for band_id in ids:
        el = _measure(measures, "Band_Solar_Irradiance", band_id, "W/(m^2*um)")
        _el(el, "VALUE", SOLAR_IRRADIANCE[band_id])


def _measure(parent: ET.Element, tag: str, band_id: str, unit: str) -> ET.Element:
    el = _el(parent, tag)
    _el(el, "BAND_ID", band_id)
    if tag == "Band_Radiance":
        _el(el, "MEASURE_DESC", "Raw radiometric counts (DN) to TOA Radiance (L). L=DN/GAIN+BIAS")
    _el(el, "MEASURE_UNIT", unit)
    return el


def _geometric_data(doc: ET.Element) -> None:
    geometric = _el(doc, "Geometric_Data")
    time_range = _path(geometric, "Refined_Model/Time/Time_Range")
    for tag, when in (("START", ACQUIRED), ("END", ACQUIRED + timedelta(seconds=3.2))):
        _el(time_range, tag, when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-1] + "Z")
    values = _path(geometric, "Use_Area/Located_Geometric_Values")
    _el(values, "LOCATION_TYPE", "Center")
    angles = _el(values, "Acquisition_Angles")
    _el(angles, "INCIDENCE_ANGLE", 12.4)
    _el(angles, "VIEWING_ANGLE", 11.0)
    sun = _el(values, "Solar_Incidences")
    _el(sun, "SUN_AZIMUTH", SUN_AZIMUTH)
    _el(sun, "SUN_ELEVATION", SUN_ELEVATION)


def _write_lists(root: Path, volume: Path, dims: list[Path]) -> None:
    """PER_LIST.XML (delivery) and PER_VOL.XML (volume): DIMAP documents listing components."""
    for folder, name, targets in (
        (root, "PER_LIST.XML", [volume / "PER_VOL.XML"]),
        (volume, "PER_VOL.XML", dims),
    ):
        doc = ET.Element("Dimap_Document", {"version": "1.0"})
        ident = _el(doc, "Metadata_Identification")
        _el(ident, "METADATA_FORMAT", "DIMAP", version="2.0")
        _el(ident, "METADATA_PROFILE", "DATASET")
        components = _el(doc, "Dataset_Components")
        for target in targets:
            component = _el(components, "Component")
            _el(component, "COMPONENT_TYPE", "DIMAP", version="2.0")
            _el(component, "COMPONENT_PATH", href=str(target.relative_to(folder)))
        tree = ET.ElementTree(doc)
        ET.indent(tree, "    ")
        tree.write(folder / name, encoding="UTF-8", xml_declaration=True)
