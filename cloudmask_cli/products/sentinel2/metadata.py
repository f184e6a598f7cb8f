"""The product metadata (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` or the OPER ``MTD_SAF*``) and the
granule metadata (``MTD_TL.xml``), parsed into what the reader needs; nothing from file names."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from cloudmask_cli.errors import InputError
from cloudmask_cli.products.archive import Archive
from cloudmask_cli.scene import Radiometry

SENSOR_NAME = "sentinel2_msi"
PRODUCT_MTD = {"MTD_MSIL1C.xml": "L1C", "MTD_MSIL2A.xml": "L2A"}
OPER_PRODUCT_MTD = re.compile(r"^S2[A-D]_(?:OPER|USER)_MTD_SAFL(1C|2A)_.*\.xml$", re.IGNORECASE)
_TILE_MTD = re.compile(r"^(?:MTD_TL|S2[A-D]_(?:OPER|USER)_MTD_L(?:1C|2A)_TL_.*)\.xml$", re.I)
BAND_IN_NAME = re.compile(r"_(B(?:0[1-9]|1[0-2]|8A))(?:_(\d+)m)?$")
_TILE_IN_ID = re.compile(r"_T(\d{2}[A-Z]{3})(?:_|$)")

# ESA's bandId order (PSD): bandId 0..12 -> band name, when a file has no Spectral_Information.
BAND_ORDER = tuple("B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12".split())


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
        return baseline_tuple(self.baseline, self.source)

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
    baseline_tuple(baseline, source)
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


def baseline_tuple(baseline: str, source: str) -> tuple[int, int]:
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


def choose_granule(meta: ProductMetadata, wanted: str | None, source: str) -> Granule:
    granules = meta.granules
    if wanted is not None:
        granules = tuple(g for g in granules if PurePosixPath(g.folder).name == wanted)
        if not granules:
            raise InputError(source, f"lists no granule {wanted}")
    if not granules:
        raise InputError(source, "lists no granule image files (Granule_List is empty)")
    if len(granules) > 1:
        tiles = ", ".join(tile_of(g.identifier) or g.identifier for g in granules[:5])
        more = "..." if len(granules) > 5 else ""
        raise InputError(
            source,
            f"holds {len(granules)} tiles ({tiles}{more}); cloudmask reads one tile per run: "
            f"open one granule folder, e.g. GRANULE/{PurePosixPath(granules[0].folder).name}",
        )
    return granules[0]


def tile_of(identifier: str) -> str:
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


def read_tile_metadata(files: Archive, granule_folder: str) -> TileMetadata | None:
    names = [n for n in files.listdir(granule_folder) if _TILE_MTD.match(n)]
    if not names:
        return None
    rel = f"{granule_folder}/{names[0]}"
    return parse_tile_metadata(files.read(rel), files.display(rel))
