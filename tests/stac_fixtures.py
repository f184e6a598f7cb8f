"""STAC items of the real collections' shapes, small COGs behind them, a range-serving HTTP server.

The item shapes follow real items: Earth Search v1 ``sentinel-2-l2a`` (S2A_39QTA_20230628_0_L2A:
common-name asset keys, ``eo:bands`` in micrometres, ``raster:bands`` scale 1e-4 offset -0.1,
``earthsearch:boa_offset_applied``, ``-jp2`` twins on s3), Planetary Computer ``sentinel-2-l2a``
(``B01``.. keys, ``eo:bands`` names, no ``raster:bands``), the stactools / Planetary Computer
``landsat-c2-l2`` example LC09_L2SP_010065_20220129_02_T1 (``SR_B*``/``ST_B10`` band names,
``raster:bands`` 2.75e-5/-0.2 and 0.00341802/149, ``qa_pixel``), and NASA CMR-STAC HLS v2
(``B01``.. and ``Fmask`` keys, nothing but hrefs).
"""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.io import MemoryFile

EPSG = 32639
ORIGIN = (199980.0, 2100000.0)
DATETIME = "2023-06-28T07:24:41.632000Z"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"

# Earth Search key, ESA band, centre and FWHM (um) as in the real items
S2 = [("coastal", "B01", 0.443, 0.027, 60), ("blue", "B02", 0.49, 0.098, 10),
      ("green", "B03", 0.56, 0.045, 10), ("red", "B04", 0.665, 0.038, 10),
      ("rededge1", "B05", 0.704, 0.019, 20), ("rededge2", "B06", 0.74, 0.018, 20),
      ("rededge3", "B07", 0.783, 0.028, 20), ("nir", "B08", 0.842, 0.145, 10),
      ("nir08", "B8A", 0.865, 0.033, 20), ("nir09", "B09", 0.945, 0.026, 60),
      ("swir16", "B11", 1.61, 0.143, 20), ("swir22", "B12", 2.19, 0.242, 20)]  # fmt: skip
OLI = [("coastal", "SR_B1", 0.44, 0.02), ("blue", "SR_B2", 0.48, 0.06),
       ("green", "SR_B3", 0.56, 0.06), ("red", "SR_B4", 0.65, 0.04),
       ("nir08", "SR_B5", 0.86, 0.03), ("swir16", "SR_B6", 1.6, 0.08),
       ("swir22", "SR_B7", 2.2, 0.2)]  # fmt: skip


def write_cog(path: Path, data: np.ndarray, res: float, nodata: float | None = 0,
              origin: tuple[float, float] = ORIGIN, epsg: int = EPSG) -> Path:  # fmt: skip
    """A tiled, overviewed COG (GDAL's COG driver) of one band."""
    h, w = data.shape
    profile = dict(driver="GTiff", width=w, height=h, count=1, dtype=data.dtype,
                   crs=f"EPSG:{epsg}", transform=Affine(res, 0, origin[0], 0, -res, origin[1]),
                   nodata=nodata)  # fmt: skip
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(data, 1)
        rasterio.shutil.copy(mem.name, path, driver="COG", BLOCKSIZE=256, COMPRESS="DEFLATE",
                             OVERVIEW_RESAMPLING="NEAREST")  # fmt: skip
    return path


def field(shape: tuple[int, int], base: int, seed: int = 0) -> np.ndarray:
    """Smooth DN with a bright blob (a cloud), so COGs compress like real ones."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    blob = np.exp(-(((x - w * 0.6) / (0.15 * w)) ** 2 + ((y - h * 0.4) / (0.15 * h)) ** 2))
    out = base + 300 * np.sin(x / 37.0) * np.cos(y / 53.0) + 5000 * blob
    return (out + rng.integers(0, 4, shape)).astype(np.uint16)


def _item(item_id: str, collection: str | None, props: dict[str, Any],
          assets: dict[str, Any], size_m: float) -> dict[str, Any]:  # fmt: skip
    geom = {"type": "Polygon", "coordinates": [[[48.15, 18.97], [48.2, 18.97], [48.2, 18.9],
                                                 [48.15, 18.9], [48.15, 18.97]]]}  # fmt: skip
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
        ],
        "id": item_id,
        "geometry": geom,
        "bbox": [48.15, 18.9, 48.2, 18.97],
        "properties": {"datetime": DATETIME, "proj:epsg": EPSG, **props},
        "links": [],
        "assets": assets,
    }
    if collection:
        item["collection"] = collection
    return item


def _proj(res: float, n: int) -> dict[str, Any]:
    return {"proj:shape": [n, n], "proj:transform": [res, 0, ORIGIN[0], 0, -res, ORIGIN[1]]}


def earth_search_s2(folder: Path, *, size_m: float = 1200.0, level: str = "L2A",
                    baseline: str = "05.09", applied: bool | None = True,
                    offset: float = -0.1, dn: int = 2000, keys: list[str] | None = None,
                    href_prefix: str = "") -> dict[str, Any]:  # fmt: skip
    """An Earth Search v1 ``sentinel-2-l2a`` / ``-l1c`` item; band i has DN ``dn + 100 i``."""
    folder.mkdir(parents=True, exist_ok=True)
    assets: dict[str, Any] = {}
    for i, (key, esa, centre, fwhm, res) in enumerate(S2):
        if keys is not None and key not in keys:
            continue
        n = int(size_m / res)
        write_cog(folder / f"{esa}.tif", field((n, n), dn + 100 * i, seed=i), res)
        assets[key] = {
            "href": f"{href_prefix}{esa}.tif" if href_prefix else str(folder / f"{esa}.tif"),
            "type": COG,
            "title": f"{key} - {res}m",
            "eo:bands": [
                {
                    "name": key,
                    "common_name": key,
                    "center_wavelength": centre,
                    "full_width_half_max": fwhm,
                }
            ],  # fmt: skip
            "gsd": res,
            **_proj(res, n),
            "raster:bands": [
                {
                    "nodata": 0,
                    "data_type": "uint16",
                    "bits_per_sample": 15,
                    "spatial_resolution": res,
                    "scale": 0.0001,
                    "offset": offset,
                }
            ],  # fmt: skip
            "roles": ["data", "reflectance"],
        }
        # the JPEG 2000 twin of every band, on a requester-pays bucket: never to be opened
        assets[f"{key}-jp2"] = dict(assets[key], href=f"s3://sentinel-s2-l2a/tiles/{esa}.jp2",
                                    type="image/jp2")  # fmt: skip
    if level == "L2A" and (keys is None or "scl" in keys):
        scl = np.full((int(size_m / 20),) * 2, 4, dtype=np.uint8)
        scl[:, :5] = 0  # a no-data strip on the left
        write_cog(folder / "SCL.tif", scl, 20, nodata=0)
        assets["scl"] = {"href": f"{href_prefix}SCL.tif" if href_prefix else str(folder / "SCL.tif"),
                         "type": COG, "title": "Scene classification map (SCL)",
                         **_proj(20, scl.shape[0]),
                         "raster:bands": [{"nodata": 0, "data_type": "uint8",
                                           "spatial_resolution": 20}],
                         "roles": ["data", "reflectance"]}  # fmt: skip
    assets["thumbnail"] = {"href": "https://example.invalid/thumb.jpg", "type": "image/jpeg",
                           "roles": ["thumbnail"]}  # fmt: skip
    props = {"platform": "sentinel-2a", "constellation": "sentinel-2", "instruments": ["msi"],
             "s2:product_type": f"S2MSI{level[1:]}", "s2:processing_baseline": baseline,
             "grid:code": "MGRS-39QTA"}  # fmt: skip
    if applied is not None:
        props["earthsearch:boa_offset_applied"] = applied
    cid = f"sentinel-2-{level.lower()}"
    return _item(f"S2A_39QTA_20230628_0_{level}", cid, props, assets, size_m)


def planetary_s2(folder: Path, *, size_m: float = 1200.0, baseline: str | None = "05.09",
                 dn: int = 2000) -> dict[str, Any]:  # fmt: skip
    """A Planetary Computer ``sentinel-2-l2a`` item: ESA band keys, no raster:bands."""
    folder.mkdir(parents=True, exist_ok=True)
    assets: dict[str, Any] = {}
    for i, (common, esa, centre, fwhm, res) in enumerate(S2):
        n = int(size_m / res)
        write_cog(folder / f"T39QTA_{esa}_{res}m.tif", field((n, n), dn + 100 * i, seed=i), res)
        assets[esa] = {
            "href": str(folder / f"T39QTA_{esa}_{res}m.tif"), "type": COG,
            "title": f"Band {esa[1:]} - {common} - {res}m", "roles": ["data"], "gsd": res,
            "eo:bands": [{"name": esa, "common_name": common, "description": common,
                          "center_wavelength": centre, "full_width_half_max": fwhm}],
            **_proj(res, n),
        }  # fmt: skip
    props = {"platform": "Sentinel-2A", "constellation": "Sentinel 2", "instruments": ["msi"],
             "s2:mgrs_tile": "39QTA", "s2:product_type": "S2MSI2A"}  # fmt: skip
    if baseline is not None:
        props["s2:processing_baseline"] = baseline
    return _item("S2A_MSIL2A_20230628T070631_R106_T39QTA_20230628T113955", "sentinel-2-l2a",
                 props, assets, size_m)  # fmt: skip


def landsat_l2(folder: Path, *, size_m: float = 1800.0, dn: int = 9000,
               raster_bands: bool = True) -> dict[str, Any]:  # fmt: skip
    """A ``landsat-c2-l2`` item (Planetary Computer / stactools shape; without raster:bands,
    the Earth Search-like variant relying on the collection's convention)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = int(size_m / 30)
    stem = "LC09_L2SP_010065_20220129_20220131_02_T1"
    assets: dict[str, Any] = {}
    for i, (key, name, centre, fwhm) in enumerate(OLI):
        write_cog(folder / f"{stem}_{name}.TIF", field((n, n), dn + 100 * i, seed=i), 30)
        assets[key] = {"href": str(folder / f"{stem}_{name}.TIF"), "type": COG,
                       "eo:bands": [{"name": name, "common_name": key,
                                     "center_wavelength": centre, "full_width_half_max": fwhm}],
                       "roles": ["reflectance"]}  # fmt: skip
        if raster_bands:
            assets[key]["raster:bands"] = [{"nodata": 0, "data_type": "uint16",
                                            "scale": 2.75e-05, "offset": -0.2}]  # fmt: skip
    write_cog(folder / f"{stem}_ST_B10.TIF", np.full((n, n), 44000, np.uint16), 30)
    assets["lwir11"] = {"href": str(folder / f"{stem}_ST_B10.TIF"), "type": COG,
                        "eo:bands": [{"name": "ST_B10", "common_name": "lwir11",
                                      "center_wavelength": 10.9, "full_width_half_max": 0.6}],
                        "roles": ["temperature"]}  # fmt: skip
    if raster_bands:
        assets["lwir11"]["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "unit": "kelvin",
                                             "scale": 0.00341802, "offset": 149.0}]  # fmt: skip
    qa = np.full((n, n), 21824, np.uint16)  # clear, low confidence
    qa[:3] = 1  # fill rows at the top
    write_cog(folder / f"{stem}_QA_PIXEL.TIF", qa, 30, nodata=1)
    assets["qa_pixel"] = {"href": str(folder / f"{stem}_QA_PIXEL.TIF"), "type": COG,
                          "raster:bands": [{"data_type": "uint16", "unit": "bit index"}],
                          "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"]}  # fmt: skip
    props = {"platform": "landsat-9", "instruments": ["oli", "tirs"],
             "landsat:correction": "L2SP", "landsat:collection_number": "02"}  # fmt: skip
    return _item("LC09_L2SP_010065_20220129_02_T1", "landsat-c2-l2", props, assets, size_m)


def hls(folder: Path, kind: str = "S30", *, size_m: float = 1800.0,
        dn: int = 1500) -> dict[str, Any]:  # fmt: skip
    """An HLS v2 granule item (NASA CMR-STAC shape: band keys, hrefs, nothing else)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = int(size_m / 30)
    gid = f"HLS.{kind}.T39QTA.2023179T070631.v2.0"
    bands = (["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
              "B11", "B12"] if kind == "S30" else
             ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B09", "B10", "B11"])  # fmt: skip
    assets: dict[str, Any] = {}
    for i, b in enumerate(bands):
        thermal = kind == "L30" and b in ("B10", "B11")
        data = field((n, n), dn + 100 * i, seed=i).astype(np.int16)
        if thermal:
            data[:] = 2500  # 25.00 degC
        data[-2:] = -9999
        write_cog(folder / f"{gid}.{b}.tif", data, 30, nodata=-9999)
        assets[b] = {"href": str(folder / f"{gid}.{b}.tif"), "title": f"Download {gid}.{b}.tif"}
    fmask = np.zeros((n, n), np.uint8)
    fmask[:, -2:] = 255
    write_cog(folder / f"{gid}.Fmask.tif", fmask, 30, nodata=255)
    assets["Fmask"] = {"href": str(folder / f"{gid}.Fmask.tif")}
    assets["browse"] = {"href": "https://example.invalid/browse.jpg", "type": "image/jpeg"}
    item = _item(gid, f"HLS{kind}_2.0", {"eo:cloud_cover": 12}, assets, size_m)
    item["properties"].pop("proj:epsg")
    return item


def save(item: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(item, indent=1))
    return path


class _Handler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-b`` (206); counts the bytes of file bodies served."""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._serve(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        stats = self.server.stats  # type: ignore[attr-defined]
        if stats["dead"]:
            self.close_connection = True
            self.connection.close()
            return
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        rng = self.headers.get("Range")
        start, end = 0, size - 1
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].split(",")[0].partition("-")
            start = int(a) if a else max(0, size - int(b))
            end = min(size - 1, int(b)) if a and b else size - 1
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not body:
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(end - start + 1)
        with stats["lock"]:
            stats["requests"] += 1
            stats["bytes"] += len(data)
            stats["by_file"][path.name] = stats["by_file"].get(path.name, 0) + len(data)
            if stats["die_after"] is not None and stats["bytes"] > stats["die_after"]:
                stats["dead"] = True  # the server "dies": no answer to anything from now on
        self.wfile.write(data)


class Server:
    """A threaded HTTP server on 127.0.0.1 serving ``root``; ``url`` and byte counts."""

    def __init__(self, root: Path, die_after: int | None = None) -> None:
        self.stats: dict[str, Any] = {"bytes": 0, "requests": 0, "by_file": {}, "dead": False,
                                      "die_after": die_after, "lock": threading.Lock()}  # fmt: skip
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
        self.httpd.stats = self.stats  # type: ignore[attr-defined]
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Api(_Handler):
    """A tiny STAC API: a landing page with item-search conformance and ``/search``."""

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?")[0] in ("/", "/search"):
            self._api(None)
        else:
            super().do_GET()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self._api(json.loads(self.rfile.read(length) or b"{}"))

    def _api(self, body: dict[str, Any] | None) -> None:
        stats, url = self.server.stats, self.server.url  # type: ignore[attr-defined]
        if self.path.split("?")[0] == "/":
            doc: dict[str, Any] = {
                "type": "Catalog", "id": "test-api", "stac_version": "1.0.0",
                "description": "test STAC API",
                "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                               "https://api.stacspec.org/v1.0.0/item-search"],
                "links": [{"rel": "self", "href": url + "/", "type": "application/json"},
                          {"rel": "root", "href": url + "/", "type": "application/json"},
                          {"rel": "search", "href": url + "/search",
                           "type": "application/geo+json", "method": "POST"},
                          {"rel": "search", "href": url + "/search",
                           "type": "application/geo+json", "method": "GET"}],
            }  # fmt: skip
        else:
            stats["searches"].append(body if body is not None else self.path)
            wanted = (body or {}).get("collections")
            items = [i for i in stats["items"] if not wanted or i.get("collection") in wanted]
            doc = {"type": "FeatureCollection", "features": items, "links": []}
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ApiServer(Server):
    """`Server` with a STAC API answering every search with ``items``."""

    def __init__(self, root: Path, items: list[dict[str, Any]]) -> None:
        super().__init__(root)
        self.httpd.RequestHandlerClass = partial(_Api, directory=str(root))
        self.stats.update(items=items, searches=[])
        self.httpd.url = self.url  # type: ignore[attr-defined]


def file_bytes(folder: Path, suffix: str = ".tif") -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.name.lower().endswith(suffix))


__all__ = ["ApiServer", "Server", "earth_search_s2", "file_bytes", "hls", "landsat_l2", "planetary_s2",
           "save", "write_cog"]  # fmt: skip
