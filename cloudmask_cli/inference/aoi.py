"""Area of interest: a GeoJSON polygon (WGS84, RFC 7946) placed on a Scene's grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rasterio.features import geometry_mask
from rasterio.warp import transform_geom
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape
from shapely.ops import unary_union

from cloudmask_cli.errors import InputError
from cloudmask_cli.scene import Grid


class AOI:
    """A polygon in the grid's CRS; which windows touch it and which pixels lie inside."""

    def __init__(self, path: str | Path, grid: Grid) -> None:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(path, "no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError(path, "not valid GeoJSON") from None
        geoms = _geometries(data)
        if not geoms:
            raise InputError(path, "has no polygon geometry")
        src_crs = "EPSG:4326"
        crs_name = (data.get("crs") or {}).get("properties", {}).get("name")
        if crs_name:  # legacy GeoJSON crs member
            src_crs = crs_name
        try:
            merged = unary_union([shape(g) for g in geoms])
            self.geometry = shape(transform_geom(src_crs, grid.crs, mapping(merged)))
        except Exception as exc:  # noqa: BLE001 - shapely/GDAL raise many kinds
            raise InputError(path, f"cannot use the geometry ({exc})") from None
        if self.geometry.is_empty or not self.geometry.intersects(box(*grid.bounds)):
            raise InputError(path, "the area of interest does not overlap the product")
        self.grid = grid
        self.path = path

    def touches(self, window: Window) -> bool:
        return self.geometry.intersects(box(*self.grid.window_bounds(window)))

    def inside(self, window: Window) -> np.ndarray:
        """Boolean mask of the window's pixels whose centre lies inside the area."""
        return geometry_mask(
            [mapping(self.geometry)],
            out_shape=(int(window.height), int(window.width)),
            transform=self.grid.window_transform(window),
            invert=True,
        )


def _geometries(data: dict) -> list[dict]:
    kind = data.get("type")
    if kind == "FeatureCollection":
        return [f["geometry"] for f in data.get("features", []) if f.get("geometry")]
    if kind == "Feature":
        return [data["geometry"]] if data.get("geometry") else []
    if kind in ("Polygon", "MultiPolygon"):
        return [data]
    return []
