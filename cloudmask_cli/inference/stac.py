"""A STAC item for a written mask (``mask.tif`` -> ``mask.stac.json``), with pystac.

The mask is the item's ``data`` asset, described with the classification extension (each code's
value, name and colour of the style written, 255 as no data), the projection extension (code,
shape, transform, bbox) and the file extension (``file:size``, ``file:checksum`` as a sha2-256
multihash); the processing extension names the cloudmask version and the model with its SHA-256.
The geometry is the footprint of the mask's valid pixels in WGS84, traced on a coarse read of
the COG's overviews and simplified to about one coarse pixel. The item's datetime is the
product's acquisition time: an item is never written without one (`check_stac_source`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.features
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import transform_geom

from cloudmask_cli.classes import COLOURS, NODATA, STYLES
from cloudmask_cli.errors import InputError
from cloudmask_cli.records import Sidecar
from cloudmask_cli.remote import is_url

PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
FOOTPRINT_PIXELS = 1024  # the footprint is traced on a read at most this wide or high
_SHA2_256 = "1220"  # multihash prefix: function code 0x12 (sha2-256), digest length 0x20


def stac_path(output: Path) -> Path:
    """``mask.tif`` -> ``mask.stac.json`` (beside the mask)."""
    output = Path(output)
    return output.with_name(
        (output.name[: -len(output.suffix)] if output.suffix else output.name) + ".stac.json"
    )


def acquisition_time(product: str, metadata: dict[str, Any]) -> dt.datetime:
    """The product's acquisition time (UTC) from its metadata; none is an `InputError`."""
    from pystac.utils import str_to_datetime

    text = metadata.get("datetime")
    if not text:
        raise InputError(
            product, "has no acquisition time in its metadata: cannot write a STAC item (--stac)"
        )
    try:
        when = str_to_datetime(str(text))
    except (ValueError, OverflowError):
        raise InputError(product, f"acquisition time {text!r} is not a date and time") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def check_stac_source(product: str, metadata: dict[str, Any]) -> None:
    """Before any work: can an item be written for this product?"""
    acquisition_time(product, metadata)


def multihash_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return _SHA2_256 + digest.hexdigest()


def footprint(mask: Path) -> dict[str, Any] | None:
    """The valid pixels' outline in WGS84 (GeoJSON), simplified; None when none is valid."""
    from shapely.geometry import mapping, shape
    from shapely.ops import unary_union

    with rasterio.open(mask) as ds:
        factor = max(1.0, max(ds.width, ds.height) / FOOTPRINT_PIXELS)
        h, w = max(1, math.ceil(ds.height / factor)), max(1, math.ceil(ds.width / factor))
        # nearest on the mode-resampled overviews: no valid pixel is invented at the edges
        valid = ds.read(1, out_shape=(h, w), resampling=Resampling.nearest) != NODATA
        transform = ds.transform * Affine.scale(ds.width / w, ds.height / h)
        crs = ds.crs
    if not valid.any():
        return None
    parts = [
        shape(g)
        for g, _ in rasterio.features.shapes(
            valid.astype(np.uint8), mask=valid, transform=transform
        )
    ]
    outline = unary_union(parts).simplify(abs(transform.a), preserve_topology=True)
    geom = transform_geom(crs, "EPSG:4326", mapping(outline), antimeridian_cutting=True)
    return json.loads(json.dumps(geom))  # plain lists, not tuples


def _bbox(geom: dict[str, Any]) -> list[float]:
    from shapely.geometry import shape

    return [round(v, 7) for v in shape(geom).bounds]


def _classes(style: str, fractions: dict[str, float]) -> list[Any]:
    from pystac.extensions.classification import Classification

    classes = []
    for code, name, members in STYLES[style]:
        r, g, b = COLOURS[name]
        classes.append(
            Classification.create(
                value=code,
                name=name,
                description=(
                    name.replace("_", " ")
                    if members == (name,)
                    else f"{name.replace('_', ' ')}: {', '.join(members)}"
                ),
                color_hint=f"{r:02X}{g:02X}{b:02X}",
                percentage=round(100 * fractions[name], 4) if name in fractions else None,
            )
        )
    classes.append(Classification.create(value=NODATA, name="no_data", nodata=True,
                                         description="no data in the input"))  # fmt: skip
    return classes


def _model_digest(model: dict[str, Any]) -> str:
    # the full weights digest; the sidecar's short "sha256" only when no other is known
    return str(model.get("weights_sha256") or model.get("sha256") or "")


def _href(path: Path, item_path: Path) -> str:
    """Relative to the item when beside it (the pair moves together), else absolute."""
    path, item_path = Path(os.path.abspath(path)), Path(os.path.abspath(item_path))
    return f"./{path.name}" if path.parent == item_path.parent else path.as_uri()


def build_item(
    mask: Path,
    sidecar: Sidecar,
    item_path: Path,
    probabilities: Path | None = None,
    sidecar_file: Path | None = None,
) -> Any:
    """The `pystac.Item` describing the finished ``mask`` (its run's ``sidecar``)."""
    import pystac
    from pystac.extensions.classification import ClassificationExtension
    from pystac.extensions.file import FileExtension
    from pystac.extensions.projection import ProjectionExtension

    style = sidecar.style
    model = sidecar.model
    source_id = sidecar.product_id
    geom = footprint(mask)
    now = dt.datetime.now(dt.timezone.utc)
    item = pystac.Item(
        id=f"{source_id}_cloudmask_{style}",
        geometry=geom,
        bbox=_bbox(geom) if geom else None,
        datetime=acquisition_time(sidecar.product, {"datetime": sidecar.datetime}),
        properties={
            "title": f"cloudmask {style} mask of {source_id}",
            "created": pystac.utils.datetime_to_str(now),
            "processing:software": {
                "cloudmask": sidecar.cloudmask_version,
                # the model that made the mask, pinned by its weights' digest
                model.get("name", "model"): f"sha256:{_model_digest(model)}",
            },
            "processing:datetime": pystac.utils.datetime_to_str(now),
            "processing:lineage": (
                f"cloudmask {sidecar.cloudmask_version} ({style}) with model "
                f"{model.get('name')} (sha256 {_model_digest(model)}) on {source_id} "
                f"({sidecar.product_type}) at {sidecar.resolution} m"
            ),
            "cloudmask:product_id": source_id,
            "cloudmask:style": style,
            "cloudmask:valid_fraction": sidecar.valid_fraction,
            "cloudmask:class_fractions": sidecar.class_fractions,
        },
    )
    item.stac_extensions.append(PROCESSING_SCHEMA)
    product = sidecar.product
    # a STAC item read from a URL is linked as it is; a local product by its file URI
    source_href = product if is_url(product) else Path(os.path.abspath(product)).as_uri()
    item.add_link(pystac.Link("derived_from", source_href, title=source_id))
    with rasterio.open(mask) as ds:
        shape, transform, bounds, crs = [ds.height, ds.width], ds.transform, ds.bounds, ds.crs
    asset = pystac.Asset(
        href=_href(mask, item_path),
        media_type=pystac.MediaType.COG,
        roles=["data"],
        title=f"cloud mask ({style})",
    )
    item.add_asset("mask", asset)
    ClassificationExtension.ext(asset, add_if_missing=True).classes = _classes(
        style, sidecar.class_fractions
    )
    epsg = crs.to_epsg()
    ProjectionExtension.ext(asset, add_if_missing=True).apply(
        code=f"EPSG:{epsg}" if epsg else None,
        wkt2=None if epsg else crs.to_wkt(),
        shape=shape,
        transform=list(transform)[:6],
        bbox=list(bounds),
    )
    FileExtension.ext(asset, add_if_missing=True).apply(
        checksum=multihash_sha256(mask), size=Path(mask).stat().st_size
    )
    if probabilities is not None:
        probs = pystac.Asset(
            href=_href(probabilities, item_path),
            media_type=pystac.MediaType.COG,
            roles=["data"],
            title="class probabilities (value / 254, 255 = no data), one band per class",
        )
        item.add_asset("probabilities", probs)
        FileExtension.ext(probs, add_if_missing=True).apply(
            checksum=multihash_sha256(probabilities), size=Path(probabilities).stat().st_size
        )
    if sidecar_file is not None:  # written after the item (the run's completion mark)
        item.add_asset(
            "metadata",
            pystac.Asset(
                href=_href(sidecar_file, item_path),
                media_type=pystac.MediaType.JSON,
                roles=["metadata"],
                title="cloudmask run sidecar",
            ),
        )
    return item


def write_item(
    item_path: Path,
    mask: Path,
    sidecar: Sidecar,
    probabilities: Path | None = None,
    sidecar_file: Path | None = None,
) -> None:
    """Write the item for ``mask`` to ``item_path`` (a temporary name, then renamed)."""
    item = build_item(mask, sidecar, item_path, probabilities, sidecar_file)
    tmp = item_path.with_name(f".{item_path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False),
                              indent=2))  # fmt: skip
    os.replace(tmp, item_path)
