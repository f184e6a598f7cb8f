"""PerúSat-1 DIMAP V2 products (MS, P, PMS): DN -> radiance -> TOA reflectance.

A delivery (``DS_PER1_*``) holds a volume (``VOL_PER1_*``) with one folder per product
(``IMG_PER1_*_MS_*``, ``IMG_PER1_*_P_*``); each has a ``DIM_*.XML`` (DIMAP V2) and its image as
GeoTIFF. The user may point at the delivery, the volume, a product folder or the DIM itself.
A folder with several products opens the 4-band one (MS, else PMS, else P); the pan product
opens when the user points at its DIM, or with a sensor YAML whose bands are pan only.

Radiometry, all from the DIM: ``L = DN / GAIN + BIAS`` (the convention the DIM states in
``Band_Radiance/MEASURE_DESC``), then ``rho = pi * L * d^2 / (E_sun * sin(sun_elevation))``,
with the per-band solar irradiance ``E_sun`` and the sun elevation at the scene centre. PerúSat-1
DIMs carry no Earth-Sun distance, so ``d`` (AU) comes from the acquisition date:
``d = 1 - 0.01672 * cos(0.9856 deg * (DOY - 4))``. Both steps are linear in DN, so each band's
`Radiometry` is ``scale = k / GAIN`` and ``offset = k * BIAS`` with
``k = pi * d^2 / (E_sun * sin(sun_elevation))``.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import rasterio
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.scene import BandSource, Radiometry, Scene
from cloudmask_cli.sensors import Band, Sensor, get_sensor

SENSOR_NAME = "perusat1_naomi"
# Which product a folder opens when nothing says otherwise: the 4-band ones first.
PREFERENCE = ("MS", "PMS", "P")
# delivery / VOL_* / IMG_* / DIM_*.XML: no need to look deeper (and no risk of walking a disk).
SEARCH_DEPTH = 3
MAX_XML_BYTES = 64 * 2**20
_DIM_NAME = re.compile(r"^DIM_.*\.XML$", re.IGNORECASE)
_MISSION = re.compile(
    r"<MISSION>\s*PER(?:1|USAT)?\s*</MISSION>|<METADATA_PROFILE>\s*PER1", re.IGNORECASE
)
_MEASURES = "Radiometric_Data/Radiometric_Calibration/Instrument_Calibration/Band_Measurement_List"


@dataclass(frozen=True)
class DimapBand:
    """One band's calibration as a DIM gives it."""

    band_id: str  # B0..B3, or PAN
    wavelength: tuple[float, float] | None  # nm
    gain: float  # L = DN / gain + bias
    bias: float
    solar_irradiance: float  # W/(m2 um)


@dataclass(frozen=True)
class Dimap:
    """What the reader needs from one product's DIM_*.XML."""

    path: Path
    spectral_processing: str  # MS, P or PMS
    level: str
    product_id: str
    spacecraft: str
    instrument: str
    acquired: datetime
    width: int
    height: int
    ulx: float | None
    uly: float | None
    xdim: float | None
    crs: CRS | None
    data_files: tuple[Path, ...]
    bands: tuple[DimapBand, ...]  # in BAND_ID order as the DIM lists them
    sun_elevation: float
    sun_azimuth: float | None
    nodata: float | None

    @property
    def band_ids(self) -> tuple[str, ...]:
        return tuple(b.band_id for b in self.bands)

    def band(self, band_id: str) -> DimapBand | None:
        key = _norm_id(band_id)
        return next((b for b in self.bands if b.band_id == key), None)

    @property
    def earth_sun_distance(self) -> float:
        return earth_sun_distance(self.acquired)


@dataclass(frozen=True)
class _Image:
    """A product's image as GDAL sees it."""

    path: str
    order: tuple[str, ...]  # BAND_ID of raster band 1, 2, ...
    order_source: str
    crs: CRS
    bounds: tuple[float, float, float, float]
    resolution: float


# -- public helpers ---------------------------------------------------------------------------
def earth_sun_distance(when: date) -> float:
    """Earth-Sun distance in AU on a date: ``1 - 0.01672 * cos(0.9856 deg * (DOY - 4))``."""
    doy = when.timetuple().tm_yday
    return 1.0 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4)))


def toa_radiometry(
    gain: float, bias: float, solar_irradiance: float, sun_elevation: float, distance: float
) -> Radiometry:
    """DN -> TOA reflectance as one linear `Radiometry` (see the module docstring)."""
    k = math.pi * distance**2 / (solar_irradiance * math.sin(math.radians(sun_elevation)))
    formula = (
        f"rho = pi * d^2 * (DN / {gain:g} + {bias:g}) / ({solar_irradiance:g} * "
        f"sin({sun_elevation:g} deg)), d = {distance:.6f} AU"
    )
    return Radiometry(scale=k / gain, offset=k * bias, formula=formula)


def find_dimaps(path: Path) -> list[Path]:
    """``DIM_*.XML`` files at ``path``: the file itself, or up to `SEARCH_DEPTH` folders down."""
    path = Path(path)
    if path.is_file():
        return [path] if path.suffix.lower() == ".xml" else []
    found: list[Path] = []
    _walk(path, SEARCH_DEPTH, found)
    return sorted(found)


def is_perusat_dimap(path: Path) -> bool:
    """A DIMAP document whose mission is PerúSat-1 (a look at the content, not the name)."""
    try:
        if path.stat().st_size > MAX_XML_BYTES:
            return False
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "<Dimap_Document" in text and _MISSION.search(text) is not None


def identify(path: Path) -> bool:
    try:
        return any(is_perusat_dimap(p) for p in find_dimaps(Path(path)))
    except OSError:
        return False


def parse_dimap(path: Path) -> Dimap:
    """Parse one product's DIM_*.XML; missing or contradictory metadata raises `InputError`."""
    x = _Xml(path)
    bands = _parse_bands(x)
    nbands = x.integer("Raster_Data/Raster_Dimensions/NBANDS")
    if nbands != len(bands):
        ids = " ".join(b.band_id for b in bands)
        raise InputError(path, f"NBANDS is {nbands} but the band measurements list {ids}")
    elevation, azimuth = _sun_angles(x)
    geo = "Geoposition/Geoposition_Insert/"
    return Dimap(
        path=Path(path),
        spectral_processing=_spectral_processing(x, bands),
        level=x.text("Processing_Information/Product_Settings/PROCESSING_LEVEL", ""),
        product_id=x.text("Dataset_Identification/DATASET_NAME", ""),
        spacecraft=_spacecraft(x),
        instrument=x.text(_STRIP + "INSTRUMENT", ""),
        acquired=_acquired(x),
        width=x.integer("Raster_Data/Raster_Dimensions/NCOLS"),
        height=x.integer("Raster_Data/Raster_Dimensions/NROWS"),
        ulx=x.number(geo + "ULXMAP", required=False),
        uly=x.number(geo + "ULYMAP", required=False),
        xdim=x.number(geo + "XDIM", required=False),
        crs=_crs(x),
        data_files=_data_files(x),
        bands=bands,
        sun_elevation=elevation,
        sun_azimuth=azimuth,
        nodata=_nodata(x),
    )


def open(path: Path, sensor: Sensor | None = None) -> Scene:  # noqa: A001 - reader protocol
    """Open a PerúSat-1 delivery, volume, product folder or DIM as a `Scene`.

    Without ``sensor`` (or with the bundled ``perusat1_naomi``) the 4-band product opens with
    its bands; a custom sensor takes exactly the bands it lists (matched on ``source`` =
    BAND_ID), from whichever product of the delivery has them.
    """
    path = Path(path)
    dimaps = _dimaps(path)
    if sensor is None or sensor.name == SENSOR_NAME:
        picks = _default_bands(path, dimaps, sensor or get_sensor(SENSOR_NAME))
    else:
        picks = _sensor_bands(path, dimaps, sensor)
    images: dict[str, _Image] = {}
    sources = []
    for band, dim, dband in picks:
        key = str(dim.path)
        if key not in images:
            images[key] = _open_image(dim)
        sources.append(_band_source(band, dim, dband, images[key]))
    first_dim, first = picks[0][1], images[str(picks[0][1].path)]
    return Scene(
        sensor=sensor or get_sensor(SENSOR_NAME),
        bands=sources,
        crs=first.crs,
        bounds=first.bounds,
        product=str(path),
        product_type=f"PerúSat-1 DIMAP {first_dim.level} {first_dim.spectral_processing}".strip(),
        metadata=_metadata(picks, images),
    )


# -- finding products ---------------------------------------------------------------------------
def _walk(folder: Path, depth: int, found: list[Path]) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for e in entries:
        if e.is_file() and _DIM_NAME.match(e.name):
            found.append(Path(e.path))
        elif depth > 1 and e.is_dir():
            _walk(Path(e.path), depth - 1, found)


def _dimaps(path: Path) -> list[Dimap]:
    if not path.exists():
        raise InputError(path, "no such file or folder")
    dims = [p for p in find_dimaps(path) if is_perusat_dimap(p)]
    if not dims:
        raise InputError(path, "no PerúSat-1 DIMAP (DIM_*.XML with mission PER1) found")
    return [parse_dimap(p) for p in dims]


def _default_bands(
    where: Path, dimaps: list[Dimap], sensor: Sensor
) -> list[tuple[Band, Dimap, DimapBand]]:
    kinds = [k for k in PREFERENCE if any(d.spectral_processing == k for d in dimaps)]
    kind = kinds[0] if kinds else dimaps[0].spectral_processing
    chosen = [d for d in dimaps if d.spectral_processing == kind]
    if len(chosen) > 1:
        names = ", ".join(d.path.name for d in chosen)
        raise InputError(where, f"holds {len(chosen)} {kind} products ({names}); point at one DIM")
    dim = chosen[0]
    picks = []
    for band in sensor.bands:
        dband = dim.band(band.source or band.name)
        if dband is not None:  # e.g. the pan band of the bundled sensor in an MS product
            picks.append((band, dim, dband))
    if not picks:
        raise InputError(
            dim.path, f"none of sensor {sensor.name}'s bands is in this product ({dim.band_ids})"
        )
    return picks


def _sensor_bands(
    where: Path, dimaps: list[Dimap], sensor: Sensor
) -> list[tuple[Band, Dimap, DimapBand]]:
    """Each band of a user's sensor from the one product (of the preferred kind) that has it."""
    rank = {k: i for i, k in enumerate(PREFERENCE)}
    ordered = sorted(dimaps, key=lambda d: rank.get(d.spectral_processing, len(rank)))
    picks = []
    for band in sensor.bands:
        source = band.source or band.name
        having = [(d, db) for d in ordered if (db := d.band(source)) is not None]
        if not having:
            raise InputError(
                where,
                f"band {band.name!r} (BAND_ID {source}) is in none of the products here "
                f"({', '.join(d.path.name for d in dimaps)})",
            )
        kind = having[0][0].spectral_processing
        best = [(d, db) for d, db in having if d.spectral_processing == kind]
        if len(best) > 1:
            names = ", ".join(d.path.name for d, _ in best)
            raise InputError(where, f"band {band.name!r} is in several products ({names})")
        picks.append((band, *best[0]))
    return picks


# -- the image --------------------------------------------------------------------------------
def _check_file(path: Path, dim: Path) -> None:
    if not path.is_file():
        raise InputError(path, f"image file missing (named in {dim.name})")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")


def _open_image(dim: Dimap) -> _Image:
    for f in dim.data_files:
        _check_file(f, dim.path)
    order, source = _band_order(dim.data_files[0], dim)
    # One file: read it directly. Tiles (R1C1, R2C1, ...): GDAL's DIMAP driver mosaics them
    # from the DIM (with its tile_R/tile_C attributes), overviews included.
    gdal_path = dim.data_files[0] if len(dim.data_files) == 1 else dim.path
    try:
        with rasterio.open(gdal_path) as ds:
            _check_shape(ds, dim, gdal_path)
            crs = _image_crs(ds, dim, gdal_path)
            _check_georef(ds, dim, gdal_path)
            return _Image(str(gdal_path), order, source, crs, tuple(ds.bounds), abs(ds.res[0]))
    except RasterioError as exc:
        raise InputError(gdal_path, f"cannot read image ({first_line(exc)})") from None


def _check_shape(ds: Any, dim: Dimap, path: Path) -> None:
    if ds.count != len(dim.bands):
        n = len(dim.bands)
        raise InputError(path, f"has {ds.count} bands but {dim.path.name} describes {n}")
    if (ds.width, ds.height) != (dim.width, dim.height):
        raise InputError(
            path,
            f"is {ds.width}x{ds.height} pixels but {dim.path.name} says {dim.width}x{dim.height}",
        )


def _band_order(tif: Path, dim: Dimap) -> tuple[tuple[str, ...], str]:
    """BAND_ID of each raster band.

    PerúSat-1 images come in two band orders: blue-green-red-NIR (B0 B1 B2 B3) or the display
    order red-green-blue-NIR, which the TIFF's ImageDescription then spells "B2 B1 B0 B3". The
    DIM does not say which, so the image's own description (or band descriptions) decides;
    without one, the DIM's BAND_ID order is used (as GDAL's DIMAP driver does).
    """
    ids = dim.band_ids
    try:
        with rasterio.open(tif) as ds:
            texts = (
                (ds.tags().get("TIFFTAG_IMAGEDESCRIPTION", ""), "TIFF ImageDescription"),
                (" ".join(d or "" for d in ds.descriptions), "band descriptions"),
            )
    except RasterioError as exc:
        raise InputError(tif, f"cannot read image ({first_line(exc)})") from None
    for text, source in texts:
        tokens = [_norm_id(t) for t in re.findall(r"\b(?:B\d|PAN|P)\b", text.upper())]
        tokens = [t for t in tokens if t in ids]
        if len(tokens) == len(ids) and sorted(tokens) == sorted(ids):
            return tuple(tokens), source
    return ids, "DIMAP BAND_ID order"


def _image_crs(ds: Any, dim: Dimap, path: Path) -> CRS:
    if ds.crs is None and dim.crs is None:
        raise InputError(path, f"has no CRS and {dim.path.name} gives none")
    if ds.crs is not None and dim.crs is not None:
        a, b = ds.crs.to_epsg(), dim.crs.to_epsg()
        if a is not None and b is not None and a != b:
            raise InputError(path, f"is in EPSG:{a} but {dim.path.name} says EPSG:{b}")
    return ds.crs if ds.crs is not None else dim.crs


def _check_georef(ds: Any, dim: Dimap, path: Path) -> None:
    t = ds.transform
    if t.is_identity:
        raise InputError(path, "has no georeferencing (no GeoTIFF tags, no .TFW world file)")
    if t.b or t.d:
        raise InputError(path, "rotated grids are not supported")
    if dim.xdim and abs(abs(t.a) - dim.xdim) > 1e-3 * dim.xdim:
        raise InputError(path, f"has {abs(t.a):g} m pixels but {dim.path.name} says {dim.xdim:g}")
    # PerúSat-1 gives the upper-left corner as ULXMAP/ULYMAP (MS and P share it) and repeats it
    # in the .TFW, which GDAL reads as a pixel centre: so allow up to a pixel of difference.
    if dim.ulx is not None and dim.uly is not None and dim.xdim:
        if abs(t.c - dim.ulx) > dim.xdim or abs(t.f - dim.uly) > dim.xdim:
            raise InputError(
                path,
                f"upper-left corner ({t.c:.2f}, {t.f:.2f}) contradicts {dim.path.name}'s "
                f"ULXMAP/ULYMAP ({dim.ulx:.2f}, {dim.uly:.2f})",
            )


# -- bands and metadata -----------------------------------------------------------------------
def _band_source(band: Band, dim: Dimap, dband: DimapBand, image: _Image) -> BandSource:
    if band.scale == "metadata" or band.offset == "metadata":
        rad = toa_radiometry(
            dband.gain,
            dband.bias,
            dband.solar_irradiance,
            dim.sun_elevation,
            dim.earth_sun_distance,
        )
    else:  # a user's YAML with numbers: their choice, applied as written
        rad = Radiometry(scale=float(band.scale), offset=float(band.offset))
    if dband.wavelength and band.type == "reflectance":
        # The product's own spectral range is the truth for its descriptor.
        band = replace(band, wavelength=dband.wavelength)
    # DIMAP V2 products mark no data with DN 0 (the YAML's nodata) when no Special_Value says so.
    nodata = dim.nodata if dim.nodata is not None else 0.0
    return BandSource(
        band=band,
        path=image.path,
        index=image.order.index(dband.band_id) + 1,
        radiometry=rad,
        nodata=(nodata,),
        resolution=dim.xdim or image.resolution,
    )


def _metadata(
    picks: list[tuple[Band, Dimap, DimapBand]], images: dict[str, _Image]
) -> dict[str, Any]:
    dim = picks[0][1]
    return {
        "level": dim.level,
        "processing": dim.spectral_processing,
        "product_id": dim.product_id,
        "spacecraft": dim.spacecraft,
        "instrument": dim.instrument,
        "datetime": dim.acquired.isoformat().replace("+00:00", "Z"),
        "sun_elevation": dim.sun_elevation,
        "sun_azimuth": dim.sun_azimuth,
        "earth_sun_distance": round(dim.earth_sun_distance, 6),
        "gains": {b.name: db.gain for b, _, db in picks},
        "biases": {b.name: db.bias for b, _, db in picks},
        "solar_irradiance": {b.name: db.solar_irradiance for b, _, db in picks},
        "dimap": sorted({str(d.path) for _, d, _ in picks}),
        "band_order": {p: f"{' '.join(i.order)} ({i.order_source})" for p, i in images.items()},
    }


# -- XML --------------------------------------------------------------------------------------
_STRIP = "Dataset_Sources/Source_Identification/Strip_Source/"


class _Xml:
    """A parsed DIM with lookups that raise `InputError` naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            root = ET.parse(self.path).getroot()
        except (ET.ParseError, OSError) as exc:
            raise InputError(path, f"not a readable XML file ({first_line(exc)})") from None
        for el in root.iter():  # drop namespaces: element names are what DIMAP fixes
            if isinstance(el.tag, str) and "}" in el.tag:
                el.tag = el.tag.split("}", 1)[1]
        if root.tag != "Dimap_Document":
            raise InputError(path, f"not a DIMAP V2 document (root <{root.tag}>)")
        self.root = root

    def find(self, xpath: str) -> ET.Element | None:
        return self.root.find(xpath)

    def text(self, xpath: str, default: str | None = None, el: ET.Element | None = None) -> str:
        node = (self.root if el is None else el).find(xpath)
        value = node.text.strip() if node is not None and node.text else ""
        if value:
            return value
        if default is None:
            raise InputError(self.path, f"missing <{xpath}>")
        return default

    def number(
        self, xpath: str, el: ET.Element | None = None, required: bool = True, what: str = ""
    ) -> float | None:
        value = self.text(xpath, None if required else "", el)
        if not value:
            if required:
                raise InputError(self.path, f"{what}missing <{xpath}>")
            return None
        try:
            return float(value)
        except ValueError:
            raise InputError(self.path, f"{what}<{xpath}> is not a number: {value!r}") from None

    def integer(self, xpath: str) -> int:
        value = self.number(xpath)
        assert value is not None
        return int(value)


def _norm_id(band_id: str) -> str:
    key = band_id.strip().upper()
    return "PAN" if key == "P" else key


def _parse_bands(x: _Xml) -> tuple[DimapBand, ...]:
    measures = x.find(_MEASURES)
    if measures is None:
        raise InputError(x.path, f"missing <{_MEASURES}> (gains, biases, solar irradiance)")
    by_id: dict[str, dict[str, ET.Element]] = {}
    for el in measures:
        band_id = (el.findtext("BAND_ID") or "").strip()
        if band_id:
            by_id.setdefault(_norm_id(band_id), {})[el.tag] = el
    if not by_id:
        raise InputError(x.path, "no band in the Band_Measurement_List")
    return tuple(_parse_band(x, band_id, els) for band_id, els in by_id.items())


def _parse_band(x: _Xml, band_id: str, els: dict[str, ET.Element]) -> DimapBand:
    what = f"band {band_id}: "

    def value(tag: str, key: str, meaning: str) -> float:
        el = els.get(tag)
        if el is None or not (el.findtext(key) or "").strip():
            raise InputError(x.path, f"{what}no {key} in <{tag}> ({meaning})")
        number = x.number(key, el=el, what=what)
        assert number is not None
        return number

    gain = value("Band_Radiance", "GAIN", "needed for DN -> radiance")
    if gain <= 0:
        raise InputError(x.path, f"{what}GAIN must be positive, got {gain:g}")
    return DimapBand(
        band_id=band_id,
        wavelength=_wavelength(x, els.get("Band_Spectral_Range"), what),
        gain=gain,
        bias=value("Band_Radiance", "BIAS", "needed for DN -> radiance"),
        solar_irradiance=value("Band_Solar_Irradiance", "VALUE", "needed for reflectance"),
    )


def _wavelength(x: _Xml, el: ET.Element | None, what: str) -> tuple[float, float] | None:
    if el is None:
        return None
    lo = x.number("MIN", el=el, what=what)
    hi = x.number("MAX", el=el, what=what)
    unit = (el.findtext("MEASURE_UNIT") or "micrometers").strip().lower()
    if unit.startswith(("micro", "um", "µm")):
        factor = 1000.0
    elif unit.startswith(("nano", "nm")):
        factor = 1.0
    else:
        raise InputError(x.path, f"{what}unknown spectral range unit {unit!r}")
    assert lo is not None and hi is not None
    return (round(lo * factor, 3), round(hi * factor, 3))


def _spectral_processing(x: _Xml, bands: tuple[DimapBand, ...]) -> str:
    text = x.text("Processing_Information/Product_Settings/SPECTRAL_PROCESSING", "").upper()
    if text in ("P", "PAN"):
        return "P"
    if text:
        return text
    return "P" if [b.band_id for b in bands] == ["PAN"] else "MS"


def _spacecraft(x: _Xml) -> str:
    mission = x.text(_STRIP + "MISSION", "")
    index = x.text(_STRIP + "MISSION_INDEX", "")
    return f"{mission}{index}" if mission else "PER1"


def _acquired(x: _Xml) -> datetime:
    start = x.text("Geometric_Data/Refined_Model/Time/Time_Range/START", "")
    if not start:
        day = x.text(_STRIP + "IMAGING_DATE", "")
        start = f"{day}T{x.text(_STRIP + 'IMAGING_TIME', '00:00:00')}" if day else ""
    if not start:
        raise InputError(x.path, "no acquisition time (Time_Range/START or IMAGING_DATE)")
    return _parse_time(start, x.path)


def _parse_time(text: str, path: Path) -> datetime:
    """ISO times as DIMAP writes them (``Z``, 1 to 9 fraction digits), for any Python >= 3.10."""
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?)?", text)
    if not m:
        raise InputError(path, f"cannot read the acquisition time {text!r}")
    y, mo, d, h, mi, s, frac = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    return datetime(
        int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), micro, timezone.utc
    )


def _sun_angles(x: _Xml) -> tuple[float, float | None]:
    values = x.root.findall("Geometric_Data/Use_Area/Located_Geometric_Values")
    centre = [v for v in values if (v.findtext("LOCATION_TYPE") or "").strip().lower() == "center"]
    for node in centre + values:
        if node.find("Solar_Incidences/SUN_ELEVATION") is not None:
            elevation = x.number("Solar_Incidences/SUN_ELEVATION", el=node)
            azimuth = x.number("Solar_Incidences/SUN_AZIMUTH", el=node, required=False)
            assert elevation is not None
            if not 0 < elevation <= 90:
                raise InputError(x.path, f"sun elevation {elevation:g} deg is not in (0, 90]")
            return elevation, azimuth
    raise InputError(x.path, "missing <Solar_Incidences/SUN_ELEVATION> (needed for reflectance)")


def _crs(x: _Xml) -> CRS | None:
    code = x.text("Coordinate_Reference_System/Projected_CRS/PROJECTED_CRS_CODE", "") or x.text(
        "Coordinate_Reference_System/Geodetic_CRS/GEODETIC_CRS_CODE", ""
    )
    if not code:
        return None
    m = re.search(r"EPSG:+(\d+)", code, re.IGNORECASE)
    try:
        return CRS.from_epsg(int(m.group(1))) if m else CRS.from_user_input(code)
    except CRSError:
        raise InputError(x.path, f"unknown CRS {code!r}") from None


def _data_files(x: _Xml) -> tuple[Path, ...]:
    nodes = x.root.findall("Raster_Data/Data_Access/Data_Files/Data_File/DATA_FILE_PATH")
    hrefs = [n.get("href", "").strip() for n in nodes]
    if not any(hrefs):
        raise InputError(x.path, "missing <Data_File/DATA_FILE_PATH href=...> (the image)")
    return tuple(_resolve(x.path.parent, h) for h in hrefs if h)


def _resolve(folder: Path, href: str) -> Path:
    """``href`` relative to the DIM; matched case-insensitively (deliveries pass via Windows)."""
    path = folder / href
    if path.exists() or not path.parent.is_dir():
        return path
    for entry in path.parent.iterdir():
        if entry.name.upper() == path.name.upper():
            return entry
    return path


def _nodata(x: _Xml) -> float | None:
    for sv in x.root.findall("Raster_Data/Raster_Display/Special_Value"):
        if (sv.findtext("SPECIAL_VALUE_TEXT") or "").strip().upper() == "NODATA":
            # DIMAP V2 puts the value in SPECIAL_VALUE_COUNT (sic).
            return x.number("SPECIAL_VALUE_COUNT", el=sv, required=False)
    return None


__all__ = [
    "Dimap",
    "DimapBand",
    "earth_sun_distance",
    "find_dimaps",
    "identify",
    "is_perusat_dimap",
    "open",
    "parse_dimap",
    "toa_radiometry",
]
