"""Landsat MTL metadata: ODL ``.txt``, ``.xml`` or ``.json``; Collection 2, 1 and pre-collection.

All three encodings hold the same tree (a root group, then groups of ``KEY = value``), so each
is parsed into ``{group: {key: text}}`` and read through one lookup. Collection 1 and
pre-collection MTLs use other group names (``METADATA_FILE_INFO``, ``PRODUCT_METADATA``,
``RADIOMETRIC_RESCALING``) and a few other key names (``DATA_TYPE`` for the level,
``FILE_NAME_BAND_QUALITY`` for the QA band, ``FILE_DATE``), handled by listing alternatives.

Level-2 MTLs (L2SP, L2SR) repeat ``REFLECTANCE_MULT_BAND_n`` with surface-reflectance values in
``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS`` beside the Level-1 TOA values, and list the Level-1
product's file names in ``LEVEL1_PROCESSING_RECORD``: the plain lookup prefers non-Level-2 groups,
so it always yields the TOA coefficients; ``group=`` reads one group, and the Level-2 accessors
(`surface_reflectance`, `surface_temperature`, the file names of a Level-2 product) read only
their own groups, never falling back to Level-1 values.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudmask_cli.errors import InputError

MTL_SUFFIXES = ("_MTL.txt", "_MTL.xml", "_MTL.json")  # order of preference when several exist
ROOT_GROUPS = ("LANDSAT_METADATA_FILE", "L1_METADATA_FILE")
L2_SR_GROUP = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"
L2_ST_GROUP = "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS"
L2_RECORD_GROUP = "LEVEL2_PROCESSING_RECORD"
CONTENTS_GROUP = "PRODUCT_CONTENTS"  # this product's own files (Collection 2)

# A cheap content test: the root group of every MTL generation, or a Landsat spacecraft id.
_LANDSAT_RE = re.compile(
    rb"LANDSAT_METADATA_FILE|L1_METADATA_FILE|SPACECRAFT_ID\W+LANDSAT_\d", re.IGNORECASE
)
_ODL_LINE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$")


def looks_like_mtl(head: bytes) -> bool:
    """Whether the first bytes of a file are those of a Landsat MTL (any encoding)."""
    return bool(_LANDSAT_RE.search(head))


@dataclass(frozen=True)
class MTL:
    """A parsed MTL: ``groups[group][key]`` is the value as text (quotes removed)."""

    path: str
    groups: dict[str, dict[str, str]]

    # -- lookup -----------------------------------------------------------------------
    def get(self, *keys: str, group: str | None = None) -> str | None:
        """The first of ``keys`` present (Level-1 groups before Level-2 ones), else None."""
        for key in keys:
            for name in self._group_order(group):
                value = self.groups[name].get(key)
                if value not in (None, ""):
                    return value
        return None

    def _group_order(self, group: str | None) -> list[str]:
        if group is not None:
            return [group] if group in self.groups else []
        names = list(self.groups)
        return [g for g in names if not g.startswith("LEVEL2")] + [
            g for g in names if g.startswith("LEVEL2")
        ]

    def text(self, *keys: str, group: str | None = None) -> str:
        """Like `get`, but a missing key is an `InputError` that names it."""
        value = self.get(*keys, group=group)
        if value is None:
            where = f" in group {group}" if group else ""
            raise InputError(self.path, f"missing MTL key {' or '.join(keys)}{where}")
        return value

    def number(self, *keys: str, group: str | None = None) -> float:
        """A numeric value; missing or non-numeric is an `InputError` naming the key."""
        value = self.text(*keys, group=group)
        try:
            return float(value)
        except ValueError:
            raise InputError(self.path, f"MTL key {keys[0]} is not a number: {value!r}") from None

    # -- product ----------------------------------------------------------------------
    @property
    def product_id(self) -> str:
        return self.text("LANDSAT_PRODUCT_ID", "LANDSAT_SCENE_ID")

    @property
    def level(self) -> str:
        """L1TP, L1GT, L1GS, L2SP, ... (pre-collection: L1T, L1G)."""
        return self.text("PROCESSING_LEVEL", "DATA_TYPE")

    @property
    def collection(self) -> int:
        """1 or 2; 0 for a pre-collection product (no COLLECTION_NUMBER)."""
        value = self.get("COLLECTION_NUMBER")
        return int(float(value)) if value is not None else 0

    @property
    def spacecraft(self) -> str:
        return self.text("SPACECRAFT_ID")

    @property
    def is_level2(self) -> bool:
        return self.level.upper().startswith("L2") or L2_SR_GROUP in self.groups

    @property
    def _own_files(self) -> str | None:
        # a Level-2 MTL also names the Level-1 product's files: only its own contents count
        return CONTENTS_GROUP if self.is_level2 else None

    def band_file(self, key: str) -> str | None:
        """File name of band ``key`` ("4", "6_VCID_1"; Level-2 thermal "ST_B10"), None when
        the product lacks it."""
        return self.get(f"FILE_NAME_BAND_{key}", group=self._own_files)

    def qa_file(self) -> str | None:
        """The pixel QA raster: QA_PIXEL (Collection 2) or BQA (Collection 1)."""
        return self.get(
            "FILE_NAME_QUALITY_L1_PIXEL", "FILE_NAME_BAND_QUALITY", group=self._own_files
        )

    # -- radiometry -------------------------------------------------------------------
    def reflectance(self, key: str) -> tuple[float, float]:
        """Level-1 TOA reflectance rescaling (mult, add) of band ``key``, before sun correction."""
        return (
            self.number(f"REFLECTANCE_MULT_BAND_{key}"),
            self.number(f"REFLECTANCE_ADD_BAND_{key}"),
        )

    def radiance(self, key: str) -> tuple[float, float]:
        """Level-1 radiance rescaling (mult, add) in W/(m2 sr um)."""
        return (
            self.number(f"RADIANCE_MULT_BAND_{key}"),
            self.number(f"RADIANCE_ADD_BAND_{key}"),
        )

    def thermal(self, key: str) -> tuple[float, float]:
        """Planck constants (K1, K2) of thermal band ``key``."""
        return self.number(f"K1_CONSTANT_BAND_{key}"), self.number(f"K2_CONSTANT_BAND_{key}")

    def surface_reflectance(self, key: str) -> tuple[float, float]:
        """Level-2 surface reflectance scaling (mult, add); only in Level-2 MTLs."""
        return (
            self.number(f"REFLECTANCE_MULT_BAND_{key}", group=L2_SR_GROUP),
            self.number(f"REFLECTANCE_ADD_BAND_{key}", group=L2_SR_GROUP),
        )

    def surface_temperature(self, key: str) -> tuple[float, float]:
        """Level-2 surface temperature scaling (mult, add) to kelvin of ``key`` ("ST_B10")."""
        return (
            self.number(f"TEMPERATURE_MULT_BAND_{key}", group=L2_ST_GROUP),
            self.number(f"TEMPERATURE_ADD_BAND_{key}", group=L2_ST_GROUP),
        )

    @property
    def sun_elevation(self) -> float:
        return self.number("SUN_ELEVATION")

    # -- description ------------------------------------------------------------------
    def datetime(self) -> str | None:
        """Acquisition time as ISO 8601 (UTC), from DATE_ACQUIRED and SCENE_CENTER_TIME."""
        date = self.get("DATE_ACQUIRED")
        if date is None:
            return None
        time = self.get("SCENE_CENTER_TIME")
        if time is None:
            return date
        # Keep microseconds: the MTL gives 7 fractional digits, ISO parsers accept at most 6.
        match = re.match(r"(\d\d:\d\d:\d\d)(\.\d{1,6})?", time)
        return f"{date}T{match.group(1)}{match.group(2) or ''}Z" if match else f"{date}T{time}"

    def summary(self) -> dict[str, Any]:
        """What `Scene.metadata` reports about the product."""

        def num(key: str) -> float | None:
            value = self.get(key)
            try:
                return float(value) if value is not None else None
            except ValueError:
                return None

        def processing(*keys: str) -> str | None:
            # a Level-2 product was made by its Level-2 processing, not the Level-1 one
            own = self.get(*keys, group=L2_RECORD_GROUP) if self.is_level2 else None
            return own or self.get(*keys)

        path, row = num("WRS_PATH"), num("WRS_ROW")
        return {
            "product_id": self.product_id,
            "scene_id": self.get("LANDSAT_SCENE_ID"),
            "level": self.level,
            "values": (
                "surface reflectance, surface temperature (K)"
                if self.is_level2
                else "top-of-atmosphere reflectance, brightness temperature (K)"
            ),
            "collection": self.collection,
            "collection_category": self.get("COLLECTION_CATEGORY"),
            "spacecraft": self.spacecraft,
            "sensor_id": self.get("SENSOR_ID"),
            "datetime": self.datetime(),
            "wrs_path": int(path) if path is not None else None,
            "wrs_row": int(row) if row is not None else None,
            "sun_elevation": num("SUN_ELEVATION"),
            "sun_azimuth": num("SUN_AZIMUTH"),
            "earth_sun_distance": num("EARTH_SUN_DISTANCE"),
            "cloud_cover": num("CLOUD_COVER"),
            "processing_software": processing("PROCESSING_SOFTWARE_VERSION"),
            "processing_date": processing("DATE_PRODUCT_GENERATED", "FILE_DATE"),
            "station_id": self.get("STATION_ID"),
            "mtl": Path(self.path).name,
        }


# -- parsing ------------------------------------------------------------------------------
def parse_mtl(text: str, path: str = "<MTL>") -> MTL:
    """Parse an MTL in any of its encodings (chosen from the content, not the name)."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("<"):
        groups = _parse_xml(stripped, path)
    elif stripped.startswith("{"):
        groups = _parse_json(stripped, path)
    else:
        groups = _parse_odl(stripped, path)
    if not any(groups.values()):
        raise InputError(path, "not a Landsat MTL (no KEY = value entries)")
    return MTL(path=path, groups=groups)


def read_mtl(path: str | Path) -> MTL:
    """Read and parse an MTL file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(p, f"cannot read MTL ({exc.strerror or exc})") from None
    return parse_mtl(decode(raw, str(p)), str(p))


def decode(raw: bytes, path: str) -> str:
    """MTL bytes -> text (ASCII in practice; UTF-8 tolerated)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "not a text MTL file (cannot decode as UTF-8)") from None


def _parse_odl(text: str, path: str) -> dict[str, dict[str, str]]:
    """``GROUP = X`` / ``END_GROUP = X`` / ``KEY = value`` lines; keys go to the innermost group."""
    groups: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.strip() == "END":
            continue
        match = _ODL_LINE.match(line)
        if match is None:
            raise InputError(path, f"line {number}: not an MTL 'KEY = value' line: {line[:60]!r}")
        key, value = match.groups()
        if key == "GROUP":
            stack.append(value)
            groups.setdefault(value, {})
        elif key == "END_GROUP":
            if not stack:
                raise InputError(path, f"line {number}: END_GROUP = {value} without GROUP")
            stack.pop()
        else:
            groups.setdefault(stack[-1] if stack else "", {})[key] = _unquote(value)
    return groups


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse_xml(text: str, path: str) -> dict[str, dict[str, str]]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(path, f"not a valid MTL XML ({exc})") from None
    groups: dict[str, dict[str, str]] = {}

    def walk(elem: ET.Element) -> None:
        children = list(elem)
        groups.setdefault(_local(elem.tag), {})
        for child in children:
            if len(child):
                walk(child)
            else:
                groups[_local(elem.tag)][_local(child.tag)] = (child.text or "").strip()

    walk(root)
    return groups


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # drop an XML namespace, if any


def _parse_json(text: str, path: str) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not a valid MTL JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InputError(path, "not a Landsat MTL (JSON top level is not an object)")
    groups: dict[str, dict[str, str]] = {}

    def walk(name: str, node: dict[str, Any]) -> None:
        groups.setdefault(name, {})
        for key, value in node.items():
            if isinstance(value, dict):
                walk(key, value)
            elif value is not None:
                groups[name][key] = str(value)

    walk("", data)
    return groups


__all__ = ["MTL", "MTL_SUFFIXES", "decode", "looks_like_mtl", "parse_mtl", "read_mtl"]
