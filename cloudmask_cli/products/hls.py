"""HLS v2 granules (Harmonized Landsat Sentinel-2, NASA LP DAAC): a folder of per-band COGs.

A granule as LP DAAC distributes it, ``HLS.<S30|L30>.T<tile>.<YYYYDDD>T<HHMMSS>.v2.0/``, holds
``<granule>.<band>.tif`` for each band, ``<granule>.Fmask.tif``, the angle bands
``SAA``/``SZA``/``VAA``/``VZA`` (not used) and ``<granule>.cmr.xml`` (CMR ECHO10 granule
metadata). The folder, a folder holding one granule's files, or one band file of it is accepted.

- S30 (Sentinel-2 MSI, bands ``B01``..``B12``, ``B8A``): the Sentinel-2 sensor definition; the
  values are not Sentinel-2 L2A's: HLS resamples every band to 30 m on the MGRS tile (the grid
  Landsat uses) and adjusts them (BRDF-normalised NBAR, bandpass adjusted to OLI), so the working
  grid is 30 m.
- L30 (Landsat 8/9 OLI/TIRS, ``B01``..``B07``, ``B09``, ``B10``, ``B11``; no panchromatic band):
  the OLI/TIRS definition of the platform the cmr.xml names (Landsat 8 when it names none);
  ``B01`` is the sensor's ``B1``.

Values (HLS v2 user guide; the cmr.xml ``REF_SCALE_FACTOR``, ``THERM_SCALE_FACTOR``,
``ADD_OFFSET``, ``FILLVALUE``, ``QA_FILLVALUE`` where it has them, else the same documented
numbers the STAC reader uses): surface reflectance ``DN * 0.0001`` (int16), L30 ``B10``/``B11``
top-of-atmosphere brightness temperature in 0.01 degC, turned into kelvin (``DN * 0.01 +
273.15``); no data where a band is -9999 and where Fmask (uint8) is 255 (fill). The Fmask bits
(0 cirrus, reserved; 1 cloud; 2 adjacent to cloud/shadow; 3 cloud shadow; 4 snow/ice; 5 water;
6-7 aerosol level) are HLS's own cloud mask and never an input to the model.

The acquisition time is the cmr.xml's ``BeginningDateTime``, else the granule name's.
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
from rasterio.errors import RasterioError

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.products.stac import HLS, HLS_FMASK_FILL, HLS_NODATA
from cloudmask_cli.scene import BandSource, Mask, Radiometry, Scene
from cloudmask_cli.sensors import Band, Sensor, get_sensor

GRANULE = re.compile(
    r"^HLS\.(?P<kind>S30|L30)\.T(?P<tile>\d{2}[A-Z]{3})\."
    r"(?P<date>\d{7})T(?P<time>\d{6})\.v(?P<version>2\.\d+)$"
)
FILE = re.compile(
    r"^(?P<granule>HLS\.(?:S30|L30)\.T\d{2}[A-Z]{3}\.\d{7}T\d{6}\.v2\.\d+)\."
    r"(?P<layer>B\d\d|B8A|Fmask|SAA|SZA|VAA|VZA)\.tif$"
)
# the product's band files, in each sensor definition's order
BANDS = {
    "S30": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
            "B12"),
    "L30": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B09", "B10", "B11"),
}  # fmt: skip
PLATFORMS = {"LANDSAT-8": "landsat8_oli_tirs", "LANDSAT-9": "landsat9_oli2_tirs2"}
BAND_DTYPE, FMASK_DTYPE = "int16", "uint8"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


# -- detection ---------------------------------------------------------------------------
def _band_files(folder: Path) -> dict[str, dict[str, str]]:
    """``{granule id: {layer: path}}`` of the HLS files in a folder."""
    found: dict[str, dict[str, str]] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                m = FILE.match(entry.name)
                if m and entry.is_file():
                    found.setdefault(m["granule"], {})[m["layer"]] = entry.path
    except OSError:
        return {}
    return found


def _is_tiff(path: Path) -> bool:
    try:
        with builtins.open(path, "rb") as fh:  # this module's `open` is the reader
            return fh.read(4) in _TIFF_MAGIC
    except OSError:
        return False


def identify(path: Path) -> bool:
    """A folder holding HLS v2 band files, or one HLS v2 band file (a TIFF named as one)."""
    path = Path(path)
    if path.is_dir():
        return any(
            any(layer.startswith("B") for layer in layers) for layers in _band_files(path).values()
        )
    return path.is_file() and FILE.match(path.name) is not None and _is_tiff(path)


# -- the cmr.xml ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CMR:
    """What the reader takes from a granule's ``.cmr.xml``."""

    granule: str
    begin: str
    platform: str
    attributes: dict[str, str]

    def number(self, name: str, where: str) -> float | None:
        text = self.attributes.get(name)
        if text is None or not text.strip():
            return None
        try:
            return float(text.split(";")[0])
        except ValueError:
            raise InputError(where, f"{name} {text!r} is not a number") from None


def parse_cmr(data: bytes, where: str) -> CMR:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(where, f"not valid XML ({exc})") from None
    attributes = {}
    for attr in root.iter("AdditionalAttribute"):
        name = (attr.findtext("Name") or "").strip()
        values = [v.text.strip() for v in attr.iter("Value") if v.text and v.text.strip()]
        if name and values:
            attributes[name] = "; ".join(values)
    return CMR(
        granule=(root.findtext("GranuleUR") or "").strip(),
        begin=(root.findtext("Temporal/RangeDateTime/BeginningDateTime") or "").strip(),
        platform=(root.findtext("Platforms/Platform/ShortName") or "").strip(),
        attributes=attributes,
    )


# -- reading ---------------------------------------------------------------------------------
def _granule_of(path: Path) -> tuple[Path, str, dict[str, str]]:
    """The folder, the granule id and its files for a folder or a band file."""
    if path.is_file():
        m = FILE.match(path.name)
        if m is None:
            raise InputError(
                path, "not an HLS v2 band file (HLS.<S30|L30>.T<tile>.<time>.v2.0.<band>.tif)"
            )
        folder, gid = path.parent, m["granule"]
        return folder, gid, _band_files(folder).get(gid, {})
    granules = _band_files(path)
    if not granules:
        raise InputError(path, "holds no HLS v2 band file")
    if len(granules) > 1:
        ids = sorted(granules)
        raise InputError(
            path,
            f"holds {len(ids)} HLS granules ({ids[0]}, {ids[1]}...): give one granule's folder "
            "or one of its band files",
        )
    ((gid, files),) = granules.items()
    return path, gid, files


def _header(path: str, expected_dtype: str) -> dict[str, Any]:
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise InputError(path, "has no CRS")
            if ds.transform.b or ds.transform.d:
                raise InputError(path, "is on a rotated grid")
            if ds.dtypes[0] != expected_dtype:
                raise InputError(
                    path,
                    f"is {ds.dtypes[0]}, not {expected_dtype} as in an HLS v2 granule: "
                    "the scaling and no-data value would not apply",
                )
            return {"crs": ds.crs, "transform": ds.transform, "shape": (ds.height, ds.width),
                    "bounds": tuple(ds.bounds), "nodata": ds.nodata}  # fmt: skip
    except RasterioError as exc:
        raise InputError(path, f"cannot be read ({first_line(exc)})") from None


def _grid_text(h: dict[str, Any]) -> str:
    t = h["transform"]
    return (
        f"{h['crs'].to_string()} {h['shape'][1]}x{h['shape'][0]} @ {abs(t.a):g} m "
        f"from ({t.c:.0f}, {t.f:.0f})"
    )


def _check_grid(path: str, h: dict[str, Any], ref: dict[str, Any], ref_name: str) -> None:
    same = (
        h["crs"] == ref["crs"]
        and h["shape"] == ref["shape"]
        and h["transform"].almost_equals(ref["transform"], precision=1e-6)
    )
    if not same:
        raise InputError(
            path, f"is on another grid ({_grid_text(h)}) than {ref_name} ({_grid_text(ref)})"
        )


def _datetime(gid: str, cmr: CMR | None, where: str) -> str:
    if cmr is not None and cmr.begin:
        try:
            when = dt.datetime.fromisoformat(cmr.begin.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                where, f"BeginningDateTime {cmr.begin!r} is not a date and time"
            ) from None
        when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
    else:
        m = GRANULE.match(gid)
        assert m is not None
        try:
            when = dt.datetime.strptime(m["date"] + m["time"], "%Y%j%H%M%S")
        except ValueError:
            raise InputError(gid, f"{m['date']}T{m['time']} is not a YYYYDDDTHHMMSS time") from None
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _sensor_for(kind: str, cmr: CMR | None) -> Sensor:
    if kind == "S30":
        return get_sensor("sentinel2_msi")
    platform = cmr.platform.upper() if cmr is not None else ""
    return get_sensor(PLATFORMS.get(platform, "landsat8_oli_tirs"))


def _sensor_band(name: str, by_name: dict[str, Band]) -> Band | None:
    """``B04`` (the file) -> the sensor's ``B04`` (MSI) or ``B4`` (OLI)."""
    for cand in (name, f"B{int(name[1:])}" if name[1:].isdigit() else name):
        if cand in by_name:
            return by_name[cand]
    return None


def open(path: Path, sensor: Sensor | None = None) -> Scene:  # noqa: A001 - reader protocol
    path = Path(path)
    folder, gid, files = _granule_of(path)
    m = GRANULE.match(gid)
    assert m is not None  # FILE only matches granule ids GRANULE matches
    kind = m["kind"]
    cmr_path = folder / f"{gid}.cmr.xml"
    cmr = None
    if cmr_path.is_file():
        cmr = parse_cmr(cmr_path.read_bytes(), str(cmr_path))
        if cmr.granule and cmr.granule != gid:
            raise InputError(cmr_path, f"describes granule {cmr.granule}, not {gid}")
    sens = sensor or _sensor_for(kind, cmr)
    where = str(cmr_path)
    ref_scale = HLS["reflectance"][0]
    therm_scale, kelvin = HLS["brightness_temperature"]
    add, fill, qa_fill = 0.0, HLS_NODATA, float(HLS_FMASK_FILL)
    ref_from = therm_from = "HLS v2 convention"
    if cmr is not None:
        if (v := cmr.number("REF_SCALE_FACTOR", where)) is not None:
            ref_scale, ref_from = v, "cmr.xml REF_SCALE_FACTOR"
        if (v := cmr.number("THERM_SCALE_FACTOR", where)) is not None:
            therm_scale, therm_from = v, "cmr.xml THERM_SCALE_FACTOR"
        add = cmr.number("ADD_OFFSET", where) or 0.0
        fill = v if (v := cmr.number("FILLVALUE", where)) is not None else fill
        qa_fill = v if (v := cmr.number("QA_FILLVALUE", where)) is not None else qa_fill

    by_name = {b.name: b for b in sens.bands}
    missing = [b for b in BANDS[kind] if b not in files]
    if missing:
        raise InputError(
            folder,
            f"HLS {kind} granule without band{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (no {gid}.{missing[0]}.tif)",
        )
    matched = [(name, band) for name in BANDS[kind] if (band := _sensor_band(name, by_name))]
    if not matched:
        raise InputError(folder, f"no band of this HLS {kind} granule is in sensor {sens.name}")
    order = {b.name: i for i, b in enumerate(sens.bands)}
    matched.sort(key=lambda nb: order[nb[1].name])

    ref: dict[str, Any] | None = None
    ref_name = ""
    sources = []
    for name, band in matched:
        file = files[name]
        h = _header(file, BAND_DTYPE)
        if ref is None:
            ref, ref_name = h, f"{gid}.{name}.tif"
        else:
            _check_grid(file, h, ref, ref_name)
        if band.type == "brightness_temperature":
            rad = Radiometry(
                scale=therm_scale,
                offset=kelvin,
                formula=f"DN * {therm_scale:g} (degC) + {kelvin:g} (TOA brightness temperature "
                f"in K; {therm_from})",
            )
        elif band.type == "reflectance":
            rad = Radiometry(
                scale=ref_scale,
                offset=add,
                formula=f"DN * {ref_scale:g} + {add:g} (surface reflectance, NBAR; {ref_from})",
            )
        else:
            raise InputError(file, f"sensor {sens.name} band {band.name} is {band.type}: "
                             "not a quantity of an HLS granule")  # fmt: skip
        nodata = {fill} | ({float(h["nodata"])} if h["nodata"] is not None else set())
        sources.append(
            BandSource(
                band=band,
                path=file,
                radiometry=rad,
                nodata=tuple(sorted(nodata)),
                resolution=abs(h["transform"].a),
            )
        )
    assert ref is not None
    masks = []
    fmask = files.get("Fmask")
    if fmask is not None:
        _check_grid(fmask, _header(fmask, FMASK_DTYPE), ref, ref_name)
        masks.append(Mask(fmask, invalid_values=(qa_fill,), name=f"Fmask fill ({qa_fill:g})"))

    attrs = cmr.attributes if cmr is not None else {}
    values = "surface reflectance (NBAR)" + (
        ", TOA brightness temperature (K)"
        if any(s.band.type == "brightness_temperature" for s in sources)
        else ""
    )
    title = "Sentinel-2 MSI" if kind == "S30" else "Landsat OLI/TIRS"
    return Scene(
        sensor=sens,
        bands=sources,
        crs=ref["crs"],
        bounds=ref["bounds"],
        masks=masks,
        product=str(folder),
        product_type=f"HLS v{m['version']} {kind} granule ({title}, harmonised to 30 m)",
        metadata={
            "level": f"surface reflectance (HLS v{m['version']} {kind}, like Sentinel-2 L2A)",
            "values": values,
            "product_id": gid,
            "tile": m["tile"],
            "datetime": _datetime(gid, cmr, where),
            "platform": cmr.platform if cmr is not None and cmr.platform else None,
            "cloud_cover": _number(attrs.get("CLOUD_COVERAGE")),
            "spatial_coverage": _number(attrs.get("SPATIAL_COVERAGE")),
            "sun_zenith": _number(attrs.get("MEAN_SUN_ZENITH_ANGLE")),
            "sun_azimuth": _number(attrs.get("MEAN_SUN_AZIMUTH_ANGLE")),
            "fmask": fmask,
            "cmr_xml": str(cmr_path) if cmr is not None else None,
        },
    )


def _number(text: str | None) -> float | None:
    try:
        return float(text.split(";")[0]) if text else None
    except ValueError:
        return None


__all__ = ["BANDS", "CMR", "identify", "open", "parse_cmr"]
