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
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.products.archive import Archive, zip_members
from cloudmask_cli.scene import BandSource, Mask, Radiometry, Scene
from cloudmask_cli.sensors import Band, Sensor, get_sensor

SENSOR_NAME = "sentinel2_msi"
PRODUCT_MTD = {"MTD_MSIL1C.xml": "L1C", "MTD_MSIL2A.xml": "L2A"}
_OPER_PRODUCT_MTD = re.compile(r"^S2[A-D]_(?:OPER|USER)_MTD_SAFL(1C|2A)_.*\.xml$", re.IGNORECASE)
_TILE_MTD = re.compile(r"^(?:MTD_TL|S2[A-D]_(?:OPER|USER)_MTD_L(?:1C|2A)_TL_.*)\.xml$", re.I)
_BAND_IN_NAME = re.compile(r"_(B(?:0[1-9]|1[0-2]|8A))(?:_(\d+)m)?$")
_TILE_IN_ID = re.compile(r"_T(\d{2}[A-Z]{3})(?:_|$)")

# ESA's bandId order (PSD): bandId 0..12 -> band name, when a file has no Spectral_Information.
BAND_ORDER = tuple("B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12".split())

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

_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_J2K_START = b"\xff\x4f\xff\x51"  # SOC + SIZ: a raw codestream
_J2K_END = b"\xff\xd9"  # EOC


def _product_mtd_level(name: str) -> str | None:
    """The level a product-metadata file name announces (the name is ESA's format, not a guess)."""
    if name in PRODUCT_MTD:
        return PRODUCT_MTD[name]
    match = _OPER_PRODUCT_MTD.match(name)
    return f"L{match.group(1).upper()}" if match else None


@dataclass(frozen=True)
class _Located:
    files: Archive
    mtd: str  # product metadata, relative to the SAFE root
    granule: str | None = None  # a granule folder name the user pointed at


def _locate(path: Path) -> _Located | None:
    """Find the SAFE root and its product metadata from a folder, zip, granule folder or MTD."""
    if path.is_dir():
        mtd = _find_product_mtd(p.name for p in path.iterdir() if p.is_file())
        if mtd:
            return _Located(Archive(path), mtd)
        return _locate_granule_folder(path)
    if path.is_file() and _product_mtd_level(path.name):
        return _Located(Archive(path.parent), path.name)
    if path.is_file() and zipfile.is_zipfile(path):
        return _locate_in_zip(path)
    return None


def _find_product_mtd(names: Iterator[str] | list[str]) -> str | None:
    found = sorted(n for n in names if _product_mtd_level(n))
    return found[0] if found else None


def _locate_granule_folder(path: Path) -> _Located | None:
    """A granule folder (``SAFE/GRANULE/<granule>``): lets one tile of a multi-tile product open."""
    if path.parent.name != "GRANULE" or not (path / "IMG_DATA").is_dir():
        return None
    safe = path.parent.parent
    mtd = _find_product_mtd([p.name for p in safe.iterdir() if p.is_file()])
    return _Located(Archive(safe), mtd, granule=path.name) if mtd else None


def _locate_in_zip(path: Path) -> _Located | None:
    infos = zip_members(path)
    names = [i.filename for i in infos]
    for name in sorted(names, key=lambda n: n.count("/")):
        parts = name.split("/")
        if len(parts) <= 2 and _product_mtd_level(parts[-1]):
            root = "/".join(parts[:-1]) + "/" if len(parts) == 2 else ""
            return _Located(Archive(path, "zip", root, members=infos), parts[-1])
    return None


def _zip_holds_safe(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.split("/")[0].upper().endswith(".SAFE") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


# -- reader protocol -------------------------------------------------------------------------
def identify(path: Path) -> bool:
    """A SAFE folder, a zip holding one, a granule folder of one, or its product MTD file."""
    path = Path(path)
    try:
        if _locate(path) is not None:
            return True
        # A zip with a .SAFE folder but no metadata is still ours: open() says what is missing.
        return path.is_file() and zipfile.is_zipfile(path) and _zip_holds_safe(path)
    except (InputError, OSError):
        return False


def open(path: Path, sensor: Sensor | None = None) -> Scene:  # noqa: A001 - reader protocol
    """Open a Sentinel-2 L1C/L2A product as a `Scene` on its finest band's grid.

    Only headers and metadata are read here; every band file is checked (present, a complete
    JPEG 2000 file, on the tile's grid) so a broken product fails now, naming the file.
    """
    path = Path(path)
    located = _locate(path)
    if located is None:
        raise InputError(path, _not_a_safe_reason(path))
    files = located.files
    meta = parse_product_metadata(files.read(located.mtd), files.display(located.mtd))
    granule = _choose_granule(meta, located.granule, files.display(located.mtd))
    tile = _read_tile_metadata(files, granule.folder)
    sensor = sensor or get_sensor(SENSOR_NAME)
    sources = _band_sources(files, meta, granule, tile, sensor, located.mtd)
    if not sources:
        raise InputError(files.display(located.mtd), "lists no Sentinel-2 band file (B01..B12)")
    crs, bounds = _tile_grid(tile, sources)
    return Scene(
        sensor=sensor,
        bands=[s.source for s in sources],
        crs=crs,
        bounds=bounds,
        product=str(path),
        product_type=f"Sentinel-2 {meta.level} (SAFE {'zip' if files.kind == 'zip' else 'folder'})",
        metadata=_scene_metadata(meta, tile, granule, [s.source for s in sources]),
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


# -- product metadata ------------------------------------------------------------------------
@dataclass(frozen=True)
class Granule:
    """One granule (tile) of the product and its band files, relative to the SAFE root."""

    identifier: str
    files: tuple[str, ...]

    @property
    def folder(self) -> str:
        return self.files[0].split("/IMG_DATA/")[0] if self.files else ""


@dataclass(frozen=True)
class ProductMetadata:
    """What the product metadata says about radiometry and band files."""

    source: str  # the metadata file, for messages
    level: str  # "L1C" or "L2A"
    baseline: str  # as written, e.g. "04.00"
    spacecraft: str
    start_time: str
    quantification: float
    offsets: dict[str, float]  # band name -> DN offset; empty when the metadata has none
    granules: tuple[Granule, ...] = ()
    product_uri: str = ""

    @property
    def baseline_tuple(self) -> tuple[int, int]:
        return _baseline_tuple(self.baseline, self.source)

    @property
    def offset_tag(self) -> str:
        return "RADIO_ADD_OFFSET" if self.level == "L1C" else "BOA_ADD_OFFSET"

    @property
    def quantification_tag(self) -> str:
        return "QUANTIFICATION_VALUE" if self.level == "L1C" else "BOA_QUANTIFICATION_VALUE"

    def radiometry(self, band: str) -> Radiometry:
        """DN -> reflectance for one band: ``(DN + offset) / quantification``."""
        if self.offsets and band not in self.offsets:
            raise InputError(self.source, f"has {self.offset_tag} for some bands but not {band}")
        offset = self.offsets.get(band, 0.0)
        return Radiometry(
            scale=1.0,
            offset=offset,
            divisor=self.quantification,
            formula=f"(DN + {self.offset_tag}) / {self.quantification_tag}"
            if self.offsets
            else f"DN / {self.quantification_tag}",
        )


def parse_product_metadata(xml: bytes, source: str = "<MTD>") -> ProductMetadata:
    """Parse ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml`` (or the OPER ``MTD_SAF*``) content.

    Raises `InputError` naming ``source`` when it is not XML, has no baseline or quantification
    value, or lacks the offsets that baseline 04.00 and later require.
    """
    root = _parse_xml(xml, source)
    level = _product_level(root, source)
    baseline = _text(root, "PROCESSING_BASELINE")
    if not baseline:
        raise InputError(source, "no PROCESSING_BASELINE: cannot tell how DN map to reflectance")
    _baseline_tuple(baseline, source)
    meta = ProductMetadata(
        source=source,
        level=level,
        baseline=baseline,
        spacecraft=_text(root, "SPACECRAFT_NAME"),
        start_time=_text(root, "PRODUCT_START_TIME") or _text(root, "DATATAKE_SENSING_START"),
        quantification=_quantification(root, level, source),
        offsets=_offsets(root, level, source),
        granules=_granules(root),
        product_uri=_text(root, "PRODUCT_URI") or _text(root, "PRODUCT_URI_2A"),
    )
    if meta.baseline_tuple >= (4, 0) and not meta.offsets:
        raise InputError(
            source,
            f"processing baseline {baseline} needs {meta.offset_tag} values (DN offset, -1000 "
            "from 04.00) but the metadata has none",
        )
    return meta


def _parse_xml(xml: bytes, source: str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InputError(source, f"not valid XML ({exc})") from None


def _local(tag: str) -> str:
    """An element's name without its namespace (ESA changes namespaces between baselines)."""
    return tag.rsplit("}", 1)[-1]


def _iter(root: ET.Element, *names: str) -> Iterator[ET.Element]:
    return (el for el in root.iter() if _local(el.tag) in names)


def _text(root: ET.Element, *names: str) -> str:
    for el in _iter(root, *names):
        if el.text and el.text.strip():
            return el.text.strip()
    return ""


def _product_level(root: ET.Element, source: str) -> str:
    tag = _local(root.tag)
    for level in ("1C", "2A"):
        if tag.startswith(f"Level-{level}"):
            return f"L{level}"
    text = _text(root, "PROCESSING_LEVEL")
    for level in ("1C", "2A"):
        if level in text:
            return f"L{level}"
    raise InputError(source, f"not Sentinel-2 L1C/L2A product metadata (root element {tag})")


def _baseline_tuple(baseline: str, source: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2})\.(\d{1,2})", baseline)
    if not match:
        raise InputError(source, f"PROCESSING_BASELINE {baseline!r} is not like 04.00")
    return int(match.group(1)), int(match.group(2))


def _number(el: ET.Element, source: str) -> float:
    try:
        return float((el.text or "").strip())
    except ValueError:
        raise InputError(source, f"{_local(el.tag)} is not a number: {el.text!r}") from None


def _quantification(root: ET.Element, level: str, source: str) -> float:
    # L2A: BOA_QUANTIFICATION_VALUE (L2A_BOA_... in the 2017 "L2Ap" products); never the
    # L1C_TOA_ value some L2A files also carry.
    names: tuple[str, ...] = ("QUANTIFICATION_VALUE",)
    if level == "L2A":
        names = ("BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE")
    el = next(_iter(root, *names), None)
    if el is None:
        raise InputError(source, f"no {names[0]}: cannot turn DN into reflectance")
    value = _number(el, source)
    if value <= 0:
        raise InputError(source, f"{names[0]} must be positive, got {value}")
    return value


def _band_ids(root: ET.Element) -> dict[str, str]:
    """bandId -> band name from ``Spectral_Information``, else ESA's fixed order."""
    ids = {str(i): name for i, name in enumerate(BAND_ORDER)}
    for el in _iter(root, "Spectral_Information"):
        physical = el.get("physicalBand", "")
        if el.get("bandId") is not None and physical:
            ids[el.get("bandId", "")] = _band_name(physical)
    return ids


def _band_name(physical: str) -> str:
    """``B1`` -> ``B01``; ``B8A``, ``B10`` unchanged."""
    match = re.fullmatch(r"B(\d{1,2})(A?)", physical.strip().upper())
    if not match:
        return physical
    return f"B{match.group(1)}A" if match.group(2) else f"B{int(match.group(1)):02d}"


def _offsets(root: ET.Element, level: str, source: str) -> dict[str, float]:
    tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    ids = _band_ids(root)
    out: dict[str, float] = {}
    for el in _iter(root, tag):
        band_id = el.get("band_id", el.get("bandId"))
        if band_id not in ids:
            raise InputError(source, f"{tag} has an unknown band_id {band_id!r}")
        out[ids[band_id]] = _number(el, source)
    return out


def _granules(root: ET.Element) -> tuple[Granule, ...]:
    """Granules and their image files (compact ``IMAGE_FILE``, L2Ap ``IMAGE_FILE_2A``, OPER
    ``IMAGE_ID``), merged by identifier (L2Ap lists each granule once per resolution)."""
    files: dict[str, list[str]] = {}
    for el in _iter(root, "Granule", "Granules"):
        ident = el.get("granuleIdentifier", "")
        bucket = files.setdefault(ident, [])
        for child in el:
            name, text = _local(child.tag), (child.text or "").strip()
            if not text:
                continue
            if name in ("IMAGE_FILE", "IMAGE_FILE_2A"):
                bucket.append(_with_jp2(text))
            elif name == "IMAGE_ID":  # OPER naming: GRANULE/<granuleIdentifier>/IMG_DATA/<id>
                bucket.append(f"GRANULE/{ident}/IMG_DATA/{_with_jp2(text)}")
    return tuple(Granule(ident, tuple(f)) for ident, f in files.items() if f)


def _with_jp2(rel: str) -> str:
    return rel if rel.lower().endswith(".jp2") else f"{rel}.jp2"


def _choose_granule(meta: ProductMetadata, wanted: str | None, source: str) -> Granule:
    granules = meta.granules
    if wanted is not None:
        granules = tuple(g for g in granules if PurePosixPath(g.folder).name == wanted)
        if not granules:
            raise InputError(source, f"lists no granule {wanted}")
    if not granules:
        raise InputError(source, "lists no granule image files (Granule_List is empty)")
    if len(granules) > 1:
        tiles = ", ".join(_tile_of(g.identifier) or g.identifier for g in granules[:5])
        more = "..." if len(granules) > 5 else ""
        raise InputError(
            source,
            f"holds {len(granules)} tiles ({tiles}{more}); cloudmask reads one tile per run: "
            f"open one granule folder, e.g. GRANULE/{PurePosixPath(granules[0].folder).name}",
        )
    return granules[0]


def _tile_of(identifier: str) -> str:
    match = _TILE_IN_ID.search(identifier)
    return match.group(1) if match else ""


# -- granule (tile) metadata -----------------------------------------------------------------
@dataclass(frozen=True)
class TileMetadata:
    """What the granule metadata says: tile grid, sun angles, quality-mask files."""

    source: str
    tile_id: str = ""
    sensing_time: str = ""
    epsg: int | None = None
    bounds: tuple[float, float, float, float] | None = None
    sun_zenith: float | None = None
    sun_azimuth: float | None = None
    masks: dict[tuple[str, str], str] = field(default_factory=dict)  # (type, band) -> rel path


def parse_tile_metadata(xml: bytes, source: str = "<MTD_TL>") -> TileMetadata:
    """Parse ``MTD_TL.xml`` (or the OPER ``MTD_L1C_TL_*.xml``) content."""
    root = _parse_xml(xml, source)
    return TileMetadata(
        source=source,
        tile_id=_text(root, "TILE_ID"),
        sensing_time=_text(root, "SENSING_TIME"),
        epsg=_tile_epsg(root, source),
        bounds=_tile_bounds(root, source),
        sun_zenith=_mean_sun(root, "ZENITH_ANGLE", source),
        sun_azimuth=_mean_sun(root, "AZIMUTH_ANGLE", source),
        masks=_mask_files(root),
    )


def _tile_epsg(root: ET.Element, source: str) -> int | None:
    code = _text(root, "HORIZONTAL_CS_CODE")
    if not code:
        return None
    match = re.fullmatch(r"EPSG:(\d+)", code)
    if not match:
        raise InputError(source, f"HORIZONTAL_CS_CODE {code!r} is not an EPSG code")
    return int(match.group(1))


def _tile_bounds(root: ET.Element, source: str) -> tuple[float, float, float, float] | None:
    """Tile extent from the finest ``Geoposition`` (ULX/ULY, XDIM/YDIM) and its ``Size``."""
    positions = {el.get("resolution"): el for el in _iter(root, "Geoposition")}
    sizes = {el.get("resolution"): el for el in _iter(root, "Size")}
    common = [r for r in positions if r in sizes and r is not None]
    if not common:
        return None
    res = min(common, key=lambda r: float(r))
    pos, size = positions[res], sizes[res]
    vals = {_local(c.tag): _number(c, source) for c in list(pos) + list(size)}
    if not {"ULX", "ULY", "XDIM", "YDIM", "NROWS", "NCOLS"} <= vals.keys():
        return None
    left, top = vals["ULX"], vals["ULY"]
    right = left + vals["XDIM"] * vals["NCOLS"]
    bottom = top + vals["YDIM"] * vals["NROWS"]  # YDIM is negative (north-up)
    return (left, min(bottom, top), right, max(bottom, top))


def _mean_sun(root: ET.Element, name: str, source: str) -> float | None:
    for mean in _iter(root, "Mean_Sun_Angle"):
        for el in mean:
            if _local(el.tag) == name:
                return _number(el, source)
    return None


def _mask_files(root: ET.Element) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for el in _iter(root, "MASK_FILENAME"):
        rel = (el.text or "").strip()
        match = re.search(r"_(B(?:0[1-9]|1[0-2]|8A))(?:_|\.|$)", PurePosixPath(rel).name)
        if rel and el.get("type") and match:
            out[(el.get("type", ""), match.group(1))] = rel
    return out


def _read_tile_metadata(files: Archive, granule_folder: str) -> TileMetadata | None:
    names = [n for n in files.listdir(granule_folder) if _TILE_MTD.match(n)]
    if not names:
        return None
    rel = f"{granule_folder}/{names[0]}"
    return parse_tile_metadata(files.read(rel), files.display(rel))


# -- bands -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Opened:
    """A band source with what its header said (for the grid checks)."""

    source: BandSource
    crs: CRS | None
    bounds: tuple[float, float, float, float]
    resolution: float


def _band_sources(
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
    match = _BAND_IN_NAME.search(PurePosixPath(rel).stem)
    return match.group(1) if match else ""


def _file_res(rel: str, band: Band) -> float:
    """The resolution an L2A file name states (``_20m``), else the band's nominal one."""
    match = _BAND_IN_NAME.search(PurePosixPath(rel).stem)
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
    _check_jp2(files, rel)
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
    _check_jp2(files, rel)
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


# -- JPEG 2000 completeness --------------------------------------------------------------------
def _check_jp2(files: Archive, rel: str) -> None:
    """Refuse placeholders and truncated JPEG 2000 files before any pixel is decoded.

    GDAL decodes a truncated codestream without raising (it only logs), so a cut file would give
    silently wrong pixels. A complete JP2 is a chain of boxes whose lengths add up to the file
    size, and its codestream ends with the EOC marker (FFD9).
    """
    where = files.display(rel)
    size = files.size(rel)
    if size < len(_JP2_SIGNATURE) + 8:
        raise InputError(
            where, f"is {size} byte(s): not a JPEG 2000 image (placeholder or cut download)"
        )
    head = files.read_at(rel, 0, len(_JP2_SIGNATURE))
    if head.startswith(_J2K_START):
        _check_codestream_end(files, rel, size, where)
    elif head == _JP2_SIGNATURE:
        _check_boxes(files, rel, size, where)
    # Anything else (some trimmed test products carry GeoTIFFs named .jp2) is left to GDAL,
    # whose other drivers raise on truncated files.


def _check_boxes(files: Archive, rel: str, size: int, where: str) -> None:
    offset, codestream = 0, False
    while offset < size:
        header = files.read_at(rel, offset, 16)
        if len(header) < 8:
            raise InputError(where, f"is truncated: a JP2 box header at byte {offset} is cut")
        length, box = int.from_bytes(header[:4], "big"), header[4:8]
        if length == 1:  # a 64-bit length follows
            length = int.from_bytes(header[8:16], "big")
        elif length == 0:  # the last box runs to the end of the file
            length = size - offset
        if length < 8 or offset + length > size:
            raise InputError(
                where,
                f"is truncated: its '{box.decode('latin-1')}' box needs {offset + length} bytes "
                f"but the file has {size}",
            )
        if box == b"jp2c":
            codestream = True
            _check_codestream_end(files, rel, offset + length, where)
        offset += length
    if not codestream:
        raise InputError(where, "is truncated: no JPEG 2000 codestream (jp2c box)")


def _check_codestream_end(files: Archive, rel: str, end: int, where: str) -> None:
    if files.read_at(rel, end - 2, 2) != _J2K_END:
        raise InputError(where, "is truncated: its JPEG 2000 codestream has no end marker")


# -- grid --------------------------------------------------------------------------------------
def _tile_grid(
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


def _scene_metadata(
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
        "tile": _tile_of(tile.tile_id if tile and tile.tile_id else granule.identifier),
        "sun_zenith": tile.sun_zenith if tile else None,
        "sun_azimuth": tile.sun_azimuth if tile else None,
        "quantification": meta.quantification,
        "offsets": {n: meta.offsets.get(n, 0.0) for n in names},
        "product_uri": meta.product_uri,
        "granule": PurePosixPath(granule.folder).name,
        # listed in the metadata but only in resolution folders trimmed from the product
        "absent_bands": sorted(listed - set(names), key=BAND_ORDER.index),
    }


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
