"""STAC items as products: a local item JSON, an http(s) URL to one, or a `pystac.Item`.

Bands: each single-band data asset is matched to a band of the sensor's YAML by its
``eo:bands`` / STAC 1.1 ``bands`` entry: the name (``B04``, ``SR_B4`` -> ``B4``), else the
overlap of ``center_wavelength`` +- ``full_width_half_max``/2 with the YAML range, else the asset
key of the known collections (Earth Search ``red``, ``nir08``...; HLS and Planetary Computer
``B04``). The sensor comes from ``platform`` (or the HLS collection); ``--sensor`` overrides it.

Radiometry, never guessed (an item where it cannot be established is refused):

- ``raster:bands`` ``scale``/``offset`` of the asset, else the collection's documented
  convention: Landsat Collection 2 Level-2 (SR 2.75e-5, -0.2; ST 0.00341802, 149 K), HLS v2
  (reflectance 1e-4; L30 thermal 0.01 degC), Sentinel-2 ``DN / 10000`` plus the baseline offset;
- Sentinel-2: from ``s2:processing_baseline`` 04.00 the DN carry +1000 (offset -0.1 in
  reflectance), as in the SAFE reader; a ``raster:bands`` offset that contradicts the baseline is
  refused. Earth Search's legacy ``sentinel-2-l2a`` COGs are another case: where
  ``earthsearch:boa_offset_applied`` is true the +1000 was already removed from the DN (its
  ``raster:bands`` offset -0.1 is then stale, Element84/earth-search#9), and where it is false on
  a 04.00+ item the flag is known to be wrong on some items (earth-search#66, #71): refused.

Valid data: the ``raster:bands`` nodata (else the file's, else the YAML's) and, where the item
has them, SCL 0 (no data), QA_PIXEL bit 0 (fill) and HLS Fmask 255 (fill).
"""

from __future__ import annotations

import builtins
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import rasterio
from rasterio.errors import RasterioError

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.remote import display, gdal_path, is_url
from cloudmask_cli.scene import BandSource, Mask, Radiometry, Scene
from cloudmask_cli.sensors import Band, Sensor, get_sensor

S2_QUANTIFICATION = 10000.0  # BOA_/QUANTIFICATION_VALUE of every baseline
S2_BASELINE_OFFSET = -1000.0  # DN offset from baseline 04.00
LANDSAT_L2 = {"reflectance": (2.75e-05, -0.2), "brightness_temperature": (0.00341802, 149.0)}
HLS = {"reflectance": (1e-4, 0.0), "brightness_temperature": (0.01, 273.15)}  # degC -> K
HLS_NODATA = -9999.0
HLS_FMASK_FILL = 255

# Earth Search asset keys (common names) -> band names, per sensor family
_S2_KEYS = {"coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05",
            "rededge2": "B06", "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09",
            "cirrus": "B10", "swir16": "B11", "swir22": "B12"}  # fmt: skip
_OLI_KEYS = {"coastal": "B1", "blue": "B2", "green": "B3", "red": "B4", "nir08": "B5",
             "swir16": "B6", "swir22": "B7", "pan": "B8", "cirrus": "B9", "lwir11": "B10",
             "lwir12": "B11"}  # fmt: skip
_TM_KEYS = {"blue": "B1", "green": "B2", "red": "B3", "nir08": "B4", "swir16": "B5",
            "lwir": "B6", "lwir11": "B6", "swir22": "B7", "pan": "B8"}  # fmt: skip
_PLATFORMS = {"landsat-4": "landsat4_tm", "landsat-5": "landsat5_tm", "landsat-7": "landsat7_etm",
              "landsat-8": "landsat8_oli_tirs", "landsat-9": "landsat9_oli2_tirs2"}  # fmt: skip
_SKIP_ROLES = {"thumbnail", "overview", "visual", "metadata"}


def identify(path: Path) -> bool:
    """A local JSON file holding a STAC Item (an ItemCollection or catalogue is for batch)."""
    if not (path.is_file() and path.suffix.lower() in (".json", ".geojson")):
        return False
    try:
        with builtins.open(path, "rb") as fh:  # this module's `open` is the reader
            data = json.loads(fh.read(64 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("type") == "Feature" and "stac_version" in data


def read_item(ref: str | Path) -> Any:
    """A `pystac.Item` from a local file or an http(s) URL; one-line errors."""
    import pystac

    text = str(ref)
    try:
        obj = pystac.read_file(text)
    except FileNotFoundError:
        raise InputError(text, "no such file") from None
    except Exception as exc:  # noqa: BLE001 - urllib, JSON and pystac raise many kinds
        raise InputError(text, f"cannot read a STAC item ({first_line(exc)})") from None
    if not isinstance(obj, pystac.Item):
        raise InputError(text, f"is a STAC {type(obj).__name__}, not an Item (use cloudmask batch)")
    return obj


def open(path: Path | str, sensor: Sensor | None = None) -> Scene:  # noqa: A001 - reader protocol
    return open_item(read_item(path), sensor=sensor)


@dataclass
class _Asset:
    key: str
    path: str  # GDAL path
    fields: dict[str, Any]
    where: str  # "<item>: asset 'red'", for messages


def open_item(item: Any, sensor: Sensor | None = None, base: str | None = None) -> Scene:
    """A `Scene` for a `pystac.Item`; ``base`` resolves relative hrefs of an item with no self
    href (one read from an ItemCollection file)."""
    source = item.get_self_href() or base or item.id
    props = item.properties
    sens = sensor or _sensor_for(item, source)
    family = _family(item, sens)
    assets = {k: _asset(item, k, a, source, base) for k, a in item.assets.items()}
    matched = _match(assets, sens, family, source)
    if not matched:
        raise InputError(source, f"no asset of this item matches a band of sensor {sens.name}")
    offsets: dict[str, float] = {}
    sources = []
    headers = {}
    for band, asset in matched:
        header = _header(asset)
        headers[band.name] = header
        rad, nodata = _radiometry(item, asset, band, family, source)
        offsets[band.name] = rad.offset
        if nodata is None:
            nodata = header["nodata"] if header["nodata"] is not None else sens.nodata
        sources.append(
            BandSource(
                band=band,
                path=asset.path,
                radiometry=rad,
                nodata=(nodata,) if nodata is not None else (),
                resolution=header["res"],
            )
        )
    crs = headers[sources[0].band.name]["crs"]
    for s in sources:
        if headers[s.band.name]["crs"] != crs:
            raise InputError(source, f"asset of band {s.band.name} is in another CRS than the rest")
    finest = min(sources, key=lambda s: s.resolution or math.inf)
    masks = _masks(assets, family)
    for m in masks:
        _header(next(a for a in assets.values() if a.path == m.path))
    when = item.datetime or item.common_metadata.start_datetime
    return Scene(
        sensor=sens,
        bands=sources,
        crs=crs,
        bounds=headers[finest.band.name]["bounds"],
        masks=masks,
        product=source,
        product_type=f"STAC item ({item.collection_id or 'no collection'}, {sens.title})",
        metadata={
            "level": _level(item, family),
            "product_id": item.id,
            "collection": item.collection_id,
            "platform": props.get("platform"),
            "datetime": when.isoformat() if when else None,
            "baseline": props.get("s2:processing_baseline"),
            "offsets": offsets,
            "stac_item": source,
        },
    )


# -- which sensor, which family of conventions -----------------------------------------------
def _sensor_for(item: Any, source: str) -> Sensor:
    platform = str(item.properties.get("platform") or "").lower().replace("_", "-")
    family = _collection_family(item)
    if family == "hls-l30" and platform not in _PLATFORMS:
        platform = "landsat-8"  # HLS L30: OLI bands, the same on Landsat 8 and 9
    if platform.startswith("sentinel-2") or family in ("hls-s30", "sentinel-2"):
        return get_sensor("sentinel2_msi")
    if platform in _PLATFORMS:
        return get_sensor(_PLATFORMS[platform])
    raise InputError(
        source,
        f"cannot tell the sensor (platform {platform or 'missing'!r}); give --sensor NAME|my.yaml",
    )


def _collection_family(item: Any) -> str:
    cid = (item.collection_id or "").lower()
    if cid.startswith("hlss30") or cid == "hls2-s30":
        return "hls-s30"
    if cid.startswith("hlsl30") or cid == "hls2-l30":
        return "hls-l30"
    if (
        "landsat" in cid
        and "l2" in cid
        or item.properties.get("landsat:correction")
        in (
            "L2SP",
            "L2SR",
        )
    ):
        return "landsat-l2"
    if "sentinel-2" in cid or "s2:processing_baseline" in item.properties:
        return "sentinel-2"
    return ""


def _family(item: Any, sensor: Sensor) -> str:
    family = _collection_family(item)
    if not family and sensor.name == "sentinel2_msi":
        return "sentinel-2"
    return family


def _level(item: Any, family: str) -> str:
    props = item.properties
    if family == "sentinel-2":
        ptype = str(props.get("s2:product_type") or item.collection_id or "").upper()
        return "L1C" if "1C" in ptype else "L2A"
    if family == "landsat-l2":
        return str(props.get("landsat:correction") or "L2SP")
    if family.startswith("hls"):
        return "HLS v2 " + family[-3:].upper()
    return str(props.get("processing:level") or "")


# -- assets -> bands --------------------------------------------------------------------------
def _asset(item: Any, key: str, asset: Any, source: str, base: str | None) -> _Asset:
    where = f"{source}: asset {key!r}"
    href = asset.get_absolute_href() or asset.href
    if base and not is_url(href) and not os.path.isabs(href) and not urlsplit(href).scheme:
        href = urljoin(base, href) if is_url(base) else str(Path(base).parent / href)
    return _Asset(key, gdal_path(href, where), dict(asset.extra_fields, roles=asset.roles), where)


def _eo(asset: _Asset) -> list[dict[str, Any]]:
    bands = asset.fields.get("eo:bands") or asset.fields.get("bands") or []
    return [b for b in bands if isinstance(b, dict)]


def _match(
    assets: dict[str, _Asset], sensor: Sensor, family: str, source: str
) -> list[tuple[Band, _Asset]]:
    """(band, asset) in the sensor's band order; each band and asset used once."""
    by_name = {b.name: b for b in sensor.bands}
    keys = _S2_KEYS if sensor.name == "sentinel2_msi" else (
        _OLI_KEYS if "oli" in sensor.name else _TM_KEYS)  # fmt: skip
    found: dict[str, tuple[Band, _Asset, float]] = {}
    for asset in sorted(assets.values(), key=lambda a: (a.key.endswith("-jp2"), a.key)):
        roles = set(asset.fields.get("roles") or ())
        eo = _eo(asset)
        if roles & _SKIP_ROLES or len(eo) > 1:
            continue
        band, score = _band_for(asset, eo[0] if eo else {}, sensor, by_name, keys)
        if band is None:
            continue
        held = found.get(band.name)
        if held is None or score > held[2]:
            found[band.name] = (band, asset, score)
    order = {b.name: i for i, b in enumerate(sensor.bands)}
    return [(b, a) for b, a, _ in sorted(found.values(), key=lambda t: order.get(t[0].name, 99))]


def _normal(name: str) -> str:
    name = name.upper().removeprefix("SR_").removeprefix("ST_")
    return name


def _candidates(name: str) -> list[str]:
    """``B4`` <-> ``B04`` (Landsat and Sentinel-2 spell band numbers differently)."""
    name = _normal(name)
    out = [name]
    if len(name) >= 2 and name[0] == "B" and name[1:].isdigit():
        out += [f"B{int(name[1:])}", f"B{int(name[1:]):02d}"]
    return out


def _band_for(
    asset: _Asset,
    eo: dict[str, Any],
    sensor: Sensor,
    by_name: dict[str, Band],
    keys: dict[str, str],
) -> tuple[Band | None, float]:
    for name in (eo.get("name"), asset.key):
        for cand in _candidates(str(name or "")):
            if cand in by_name:
                return by_name[cand], 3.0
    centre = eo.get("center_wavelength", eo.get("eo:center_wavelength"))
    if isinstance(centre, (int, float)):
        width = eo.get("full_width_half_max", eo.get("eo:full_width_half_max")) or 0.0
        lo, hi = 1000 * (centre - width / 2), 1000 * (centre + width / 2)
        best, best_iou = None, 0.0
        for b in sensor.bands:
            if b.wavelength is None or b.panchromatic:
                continue
            inter = min(hi, b.wavelength[1]) - max(lo, b.wavelength[0])
            union = max(hi, b.wavelength[1]) - min(lo, b.wavelength[0])
            iou = inter / union if union > 0 else float(b.wavelength[0] <= lo <= b.wavelength[1])
            if iou > best_iou:
                best, best_iou = b, iou
        if best is not None and best_iou >= 0.3:
            stripped = _normal(str(eo.get("name") or ""))
            if best.type == "brightness_temperature" and stripped and stripped not in by_name:
                best = replace(best, name=stripped)  # Landsat 7 ST_B6: one band for two gains
            return best, 1.0 + best_iou
    key = asset.key.lower().removesuffix("-jp2")
    if key in keys and keys[key] in by_name:
        return by_name[keys[key]], 0.5
    return None, 0.0


def _header(asset: _Asset) -> dict[str, Any]:
    """Open the raster (a few range requests for a COG): readable, georeferenced, its grid."""
    try:
        with rasterio.open(asset.path) as ds:
            if ds.crs is None:
                raise InputError(asset.where, f"{display(asset.path)} has no CRS")
            return {
                "crs": ds.crs,
                "bounds": tuple(ds.bounds),
                "res": abs(ds.transform.a),
                "nodata": ds.nodata,
            }
    except RasterioError as exc:
        raise InputError(asset.where, f"cannot be read: {first_line(exc)}") from None


def _masks(assets: dict[str, _Asset], family: str) -> list[Mask]:
    out = []
    for key, asset in assets.items():
        k = key.lower()
        if k == "scl":
            out.append(Mask(asset.path, invalid_values=(0,), name="SCL no data (0)"))
        elif k == "qa_pixel":
            out.append(Mask(asset.path, invalid_bits=1, name="QA_PIXEL fill (bit 0)"))
        elif k == "fmask" and family.startswith("hls"):
            out.append(Mask(asset.path, invalid_values=(HLS_FMASK_FILL,), name="Fmask fill"))
    return out


# -- radiometry -------------------------------------------------------------------------------
def _raster_band(asset: _Asset) -> dict[str, Any]:
    rb = asset.fields.get("raster:bands") or []
    if rb and isinstance(rb[0], dict):
        return rb[0]
    bands = asset.fields.get("bands") or []  # STAC 1.1: raster fields inside "bands"
    return bands[0] if bands and isinstance(bands[0], dict) else {}


def _radiometry(
    item: Any, asset: _Asset, band: Band, family: str, source: str
) -> tuple[Radiometry, float | None]:
    rb = _raster_band(asset)
    scale = rb.get("scale", rb.get("raster:scale"))
    offset = rb.get("offset", rb.get("raster:offset"))
    nodata = rb.get("nodata", rb.get("raster:nodata"))
    given = scale is not None or offset is not None
    scale = float(scale) if scale is not None else 1.0
    offset = float(offset) if offset is not None else 0.0
    if family == "sentinel-2":
        return _sentinel2(item, asset, given, scale, offset), nodata
    if given:
        return Radiometry(
            scale=scale, offset=offset, formula="DN * scale + offset (raster:bands)"
        ), nodata
    if family == "landsat-l2" and band.type in LANDSAT_L2:
        s, o = LANDSAT_L2[band.type]
        return Radiometry(scale=s, offset=o, formula="Landsat C2 L2 convention"), nodata
    if family.startswith("hls") and band.type in HLS:
        s, o = HLS[band.type]
        nodata = HLS_NODATA if nodata is None else nodata
        return Radiometry(scale=s, offset=o, formula="HLS v2 convention"), nodata
    raise InputError(
        asset.where,
        f"no raster:bands scale/offset and no known convention for collection "
        f"{item.collection_id!r}: cannot turn DN into {band.type.replace('_', ' ')}",
    )


def _sentinel2(item: Any, asset: _Asset, given: bool, scale: float, offset: float) -> Radiometry:
    from cloudmask_cli.products.sentinel2.metadata import baseline_tuple

    props = item.properties
    baseline = props.get("s2:processing_baseline") or props.get("sentinel:processing_baseline")
    if not baseline:
        raise InputError(
            asset.where,
            "Sentinel-2 item without s2:processing_baseline: cannot tell whether the DN carry "
            "the 04.00 offset (-1000)",
        )
    shifted = baseline_tuple(str(baseline), asset.where) >= (4, 0)
    flag = props.get("earthsearch:boa_offset_applied", props.get("sentinel:boa_offset_applied"))
    if shifted and flag is False:
        raise InputError(
            asset.where,
            f"baseline {baseline} with earthsearch:boa_offset_applied false: known to be wrong on "
            "some items, so the DN offset cannot be established (use sentinel-2-c1-l2a)",
        )
    expected = S2_BASELINE_OFFSET if shifted and flag is not True else 0.0
    if not given:
        scale = 1.0 / S2_QUANTIFICATION
    elif flag is not True and abs(offset - expected * scale) > 1e-9:
        raise InputError(
            asset.where,
            f"raster:bands offset {offset:g} contradicts processing baseline {baseline} "
            f"(expected {expected * scale:g})",
        )
    return Radiometry(
        scale=scale,
        offset=expected * scale,
        formula=f"DN * {scale:g} + {expected * scale:g} (baseline {baseline}"
        + (", offset already removed from the DN)" if flag is True and shifted else ")"),
    )


__all__ = ["identify", "open", "open_item", "read_item"]
