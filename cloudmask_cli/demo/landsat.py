"""Tiny Landsat Level-1 products in the real format, for tests and demos.

`write_landsat` writes what USGS delivers, shrunk: ``<product id>_B<n>.TIF`` uint16 (OLI) or
uint8 (ETM+, TM) DN rasters in a UTM CRS, the 15 m pan band at twice the size, ``QA_PIXEL``
(Collection 2) or ``BQA`` (Collection 1), the Landsat 7 SLC-off gap masks ``_GM_B<n>.TIF``
(Collection 2), and an MTL with the real group and key structure as ``.txt`` (ODL); as a folder
or a ``.tar``. Its steps (`product_files`, `mtl_tree`, `to_odl`, `tif`, `write_product`) are public
so that other variants (an XML/JSON MTL, Level-2 products) are built on them, not written again.

The scene is synthetic but shaped like a real one: water and land (vegetation, bare soil)
with texture, clouds bright in the reflective bands and cold in the thermal ones, their
shadows, and the tilted no-data edge of a real footprint. Calibration constants are those of
real products of each sensor.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile

from cloudmask_cli.sensors import Band, get_sensor

# Per-band Level-1 rescaling (radiance mult, radiance add, reflectance mult, reflectance add),
# thermal (K1, K2): from real MTLs of each sensor (LC08 C2 089/074 2022, LC09 C2 191/031
# 2022, LE07 C2 107/068 2022, LT05 C1 193/024 2005).
_OLI_REFL = (2.0e-05, -0.1)
_CAL: dict[str, dict[str, tuple[float, ...]]] = {
    "LC08": {
        "1": (1.2335e-02, -61.67578, *_OLI_REFL),
        "2": (1.2631e-02, -63.15676, *_OLI_REFL),
        "3": (1.1640e-02, -58.19841, *_OLI_REFL),
        "4": (9.8152e-03, -49.07618, *_OLI_REFL),
        "5": (6.0064e-03, -30.03217, *_OLI_REFL),
        "6": (1.4937e-03, -7.46873, *_OLI_REFL),
        "7": (5.0347e-04, -2.51736, *_OLI_REFL),
        "8": (1.1108e-02, -55.54073, *_OLI_REFL),
        "9": (2.3475e-03, -11.73725, *_OLI_REFL),
        "10": (3.3420e-04, 0.1, 774.8853, 1321.0789),
        "11": (3.3420e-04, 0.1, 480.8883, 1201.1442),
    },
    "LC09": {
        "1": (1.2633e-02, -63.16274, *_OLI_REFL),
        "2": (1.2975e-02, -64.87313, *_OLI_REFL),
        "3": (1.1922e-02, -59.60987, *_OLI_REFL),
        "4": (1.0105e-02, -50.52405, *_OLI_REFL),
        "5": (6.1994e-03, -30.99725, *_OLI_REFL),
        "6": (1.5487e-03, -7.74364, *_OLI_REFL),
        "7": (5.2294e-04, -2.61470, *_OLI_REFL),
        "8": (1.1438e-02, -57.19154, *_OLI_REFL),
        "9": (2.5718e-03, -12.85884, *_OLI_REFL),
        "10": (3.8000e-04, 0.1, 799.0284, 1329.2405),
        "11": (3.4900e-04, 0.1, 475.6581, 1198.3494),
    },
    "LE07": {
        "1": (7.7874e-01, -6.97874, 1.1848e-03, -0.010618),
        "2": (7.9882e-01, -7.19882, 1.3333e-03, -0.012015),
        "3": (6.2165e-01, -5.62165, 1.2628e-03, -0.011419),
        "4": (9.6929e-01, -6.06929, 2.8036e-03, -0.017555),
        "5": (1.2622e-01, -1.12622, 1.7644e-03, -0.015743),
        "6_VCID_1": (6.7087e-02, -0.06709, 666.09, 1282.71),
        "6_VCID_2": (3.7205e-02, 3.16280, 666.09, 1282.71),
        "7": (4.3898e-02, -0.39390, 1.6714e-03, -0.014997),
        "8": (9.7559e-01, -5.67559, 2.2912e-03, -0.013329),
    },
    "LT05": {
        "1": (7.6583e-01, -2.28583, 1.2654e-03, -0.003777),
        "2": (1.4482e00, -4.28819, 2.6445e-03, -0.007830),
        "3": (1.0440e00, -2.21398, 2.2505e-03, -0.004773),
        "4": (8.7602e-01, -2.38602, 2.7239e-03, -0.007419),
        "5": (1.2035e-01, -0.49035, 1.8444e-03, -0.007514),
        "6": (5.5375e-02, 1.18243, 607.76, 1260.56),
        "7": (6.5551e-02, -0.21555, 2.5602e-03, -0.008419),
    },
}


@dataclass(frozen=True)
class _Mission:
    spacecraft_id: str
    sensor_id: str
    sensor: str  # bundled sensor definition
    dtype: str
    date: str
    path_row: tuple[int, int]
    clear_qa: int  # QA_PIXEL of a clear land pixel (low confidences), Collection 2
    thermal_group_c1: str  # Collection 1 group name of the thermal constants


MISSIONS = {
    "LC08": _Mission(
        "LANDSAT_8", "OLI_TIRS", "landsat8_oli_tirs", "uint16", "2021-07-24", (193, 24),
        21824, "TIRS_THERMAL_CONSTANTS",
    ),
    "LC09": _Mission(
        "LANDSAT_9", "OLI_TIRS", "landsat9_oli2_tirs2", "uint16", "2022-02-09", (112, 81),
        21824, "TIRS_THERMAL_CONSTANTS",
    ),
    "LE07": _Mission(
        "LANDSAT_7", "ETM", "landsat7_etm", "uint8", "2022-03-10", (107, 68),
        5440, "THERMAL_CONSTANTS",
    ),
    "LT05": _Mission(
        "LANDSAT_5", "TM", "landsat5_tm", "uint8", "2005-05-16", (193, 24),
        5440, "THERMAL_CONSTANTS",
    ),
}  # fmt: skip

SUN_ELEVATION = 48.5
SUN_AZIMUTH = 146.2
EARTH_SUN_DISTANCE = 1.0123
EPSG = 32633
ORIGIN = (399585.0, 4800015.0)  # upper-left corner, a multiple of 15 m as in real products


def write_landsat(
    path: Path,
    *,
    spacecraft: str = "LC08",
    collection: int = 2,
    tar: bool = False,
    size: int = 120,
    seed: int = 0,
    clouds: bool = True,
) -> Path:
    """Write a tiny Level-1 product into the folder ``path``; return the product folder or tar.

    ``spacecraft``: LC08, LC09, LE07 (SLC-off, with gap masks) or LT05. ``collection``: 2
    (QA_PIXEL) or 1 (BQA). ``size`` is the 30 m grid's width and height in pixels. Same
    arguments, same bytes.
    """
    files = product_files(spacecraft, collection=collection, size=size, seed=seed, clouds=clouds)
    return write_product(Path(path), product_id(spacecraft, collection), files, tar)


def product_files(
    spacecraft: str, *, collection: int = 2, size: int = 120, seed: int = 0, clouds: bool = True
) -> dict[str, bytes]:
    """Every file of the product `write_landsat` writes, by name; the MTL as ODL text."""
    if spacecraft not in MISSIONS:
        raise ValueError(f"spacecraft must be one of {', '.join(MISSIONS)}, got {spacecraft!r}")
    if collection not in (1, 2):
        raise ValueError(f"collection must be 1 or 2, got {collection}")
    pid = product_id(spacecraft, collection)
    scene = _simulate(np.random.default_rng(seed), size, clouds, spacecraft)
    files = _rasters(pid, MISSIONS[spacecraft], spacecraft, collection, scene)
    files[f"{pid}_MTL.txt"] = to_odl(mtl_tree(spacecraft, collection, size)).encode()
    return files


def product_id(spacecraft: str, collection: int = 2) -> str:
    """The product identifier `write_landsat` uses, e.g. ``LC08_L1TP_193024_20210724_..._T1``."""
    mission = MISSIONS[spacecraft]
    acquired = mission.date.replace("-", "")
    path, row = mission.path_row
    return f"{spacecraft}_L1TP_{path:03d}{row:03d}_{acquired}_{acquired}_{collection:02d}_T1"


def band_keys(spacecraft: str) -> list[str]:
    """MTL band keys of a mission, in sensor order ("1" ... "6_VCID_1" ...)."""
    return [_key(b) for b in get_sensor(MISSIONS[spacecraft].sensor).bands]


def _key(band: Band) -> str:
    return (band.source or band.name)[1:]


# -- the scene ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scene:
    """Physical fields at 15 m (``2 * size`` square) plus 30 m masks."""

    reflectance: Callable[[float], np.ndarray]  # centre wavelength (nm) -> TOA reflectance
    temperature: np.ndarray  # brightness temperature, K
    cloud: np.ndarray  # cloud opacity 0..1
    shadow: np.ndarray  # bool
    water: np.ndarray  # bool
    valid: np.ndarray  # bool at 30 m: inside the footprint
    gaps: Callable[[int], np.ndarray] | None  # band index -> bool gap mask at 30 m (L7)


def _smooth(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Unit-variance Gaussian-filtered noise (FFT; periodic, which no test minds)."""
    noise = rng.standard_normal((n, n))
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(n, n))
    return (out - out.mean()) / (out.std() + 1e-12)


# Surface TOA reflectance at (443, 482, 561, 655, 865, 1609, 2200) nm.
_NODES = np.array([443.0, 482, 561, 655, 865, 1609, 2200])
_WATER = np.array([0.09, 0.07, 0.05, 0.03, 0.015, 0.006, 0.004])
_VEGETATION = np.array([0.10, 0.08, 0.09, 0.06, 0.36, 0.20, 0.09])
_SOIL = np.array([0.12, 0.13, 0.17, 0.22, 0.29, 0.34, 0.27])
_CLOUD = np.array([0.62, 0.60, 0.59, 0.58, 0.57, 0.42, 0.30])


def _simulate(rng: np.random.Generator, size: int, clouds: bool, spacecraft: str) -> _Scene:
    n = 2 * size
    water = _smooth(rng, n, n / 10) < -0.6
    soil = np.clip(0.5 + 0.4 * _smooth(rng, n, n / 14), 0, 1)  # vegetation <-> bare soil mix
    texture = 1.0 + 0.08 * _smooth(rng, n, 1.5)
    # Large cells plus finer structure, so cloud edges are ragged rather than round.
    cells = _smooth(rng, n, n / 12) + 0.35 * _smooth(rng, n, n / 40)
    cloud = np.clip((cells - 0.55) / 0.6, 0, 1) if clouds else np.zeros((n, n))
    shift = (max(1, n // 14), max(1, n // 10))  # sun from the south-east: shadows north-west
    shadow = (np.roll(cloud, (-shift[0], -shift[1]), axis=(0, 1)) > 0.3) & (cloud < 0.1)

    def reflectance(wavelength: float) -> np.ndarray:
        if 1330 < wavelength < 1420:  # cirrus band: water vapour hides the surface
            return (0.002 + 0.25 * cloud**1.5).astype(np.float32)
        at = [float(np.interp(wavelength, _NODES, s)) for s in (_WATER, _VEGETATION, _SOIL)]
        land = (at[1] * (1 - soil) + at[2] * soil) * texture
        surface = np.where(water, at[0] * (0.9 + 0.1 * texture), land)
        surface = np.where(shadow, surface * 0.35, surface)
        top = float(np.interp(wavelength, _NODES, _CLOUD))
        return ((1 - cloud) * surface + cloud * top * (0.9 + 0.1 * texture)).astype(np.float32)

    ground = np.where(water, 291.0, 301.0 + 3.0 * soil) + (texture - 1.0) * 10
    temperature = (1 - cloud) * (ground - 3.0 * shadow) + cloud * 252.0
    valid = _footprint(size)
    gaps = _gap_masks(size, valid) if spacecraft == "LE07" else None
    return _Scene(reflectance, temperature, cloud, shadow, water, valid, gaps)


def _rotated(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by the ~12 degrees of a Landsat path (cross, along track)."""
    y, x = np.mgrid[0:size, 0:size] + 0.5 - size / 2
    theta = math.radians(12)
    return x * math.cos(theta) + y * math.sin(theta), -x * math.sin(theta) + y * math.cos(theta)


def _footprint(size: int) -> np.ndarray:
    """Inside the tilted scene footprint; the corners are fill, as in a real product."""
    u, v = _rotated(size)
    return (np.abs(u) < 0.44 * size) & (np.abs(v) < 0.47 * size)


def _gap_masks(size: int, valid: np.ndarray) -> Callable[[int], np.ndarray]:
    """SLC-off gaps: along-scan stripes, a wedge that is 0 at nadir and widest at the edges."""
    u, v = _rotated(size)
    period = max(6.0, size / 8)
    width = 0.3 * period * np.abs(u) / (0.44 * size)

    def gaps(index: int) -> np.ndarray:
        phase = (v + 0.5 * (index % 3)) % period  # bands sit a little apart on the focal plane
        return (phase < width) & valid

    return gaps


# -- rasters -----------------------------------------------------------------------------
def _rasters(
    pid: str, mission: _Mission, spacecraft: str, collection: int, scene: _Scene
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    any_gap = np.zeros_like(scene.valid)
    sensor = get_sensor(mission.sensor)
    for index, band in enumerate(sensor.bands):
        pan = band.panchromatic
        valid = scene.valid.copy()
        if scene.gaps is not None:
            gap = scene.gaps(index)
            any_gap |= gap
            valid &= ~gap
            if collection == 2:  # Collection 1 shipped them gzipped in a gap_mask/ folder
                files[f"{pid}_GM_{band.source}.TIF"] = tif(_up(valid, pan).astype("uint8"), pan)
        dn = _to_dn(spacecraft, band, scene)
        dn = dn if pan else _down(dn)
        dn = np.where(_up(valid, pan), dn, 0).astype(mission.dtype)
        files[f"{pid}_{band.source}.TIF"] = tif(dn, pan)
    qa = _qa(mission, collection, scene, ~scene.valid | any_gap)
    files[f"{pid}_{'QA_PIXEL' if collection == 2 else 'BQA'}.TIF"] = tif(qa, False)
    return files


def _to_dn(spacecraft: str, band: Band, scene: _Scene) -> np.ndarray:
    """Physical values at 15 m -> DN through the mission's real rescaling, clipped to range."""
    cal = _CAL[spacecraft][_key(band)]
    top = 255 if MISSIONS[spacecraft].dtype == "uint8" else 65535
    if band.type == "brightness_temperature":
        k1, k2 = cal[2], cal[3]
        radiance = k1 / (np.exp(k2 / scene.temperature) - 1.0)
        dn = (radiance - cal[1]) / cal[0]
    else:
        assert band.wavelength is not None
        rho = scene.reflectance(sum(band.wavelength) / 2)
        dn = (rho * math.sin(math.radians(SUN_ELEVATION)) - cal[3]) / cal[2]
    return np.clip(np.rint(dn), 1, top)


def _down(a: np.ndarray) -> np.ndarray:
    """15 m -> 30 m: mean of 2 x 2 blocks."""
    n = a.shape[0] // 2
    return a.reshape(n, 2, n, 2).mean(axis=(1, 3))


def _up(a: np.ndarray, pan: bool) -> np.ndarray:
    """30 m mask -> the band's grid (15 m for pan)."""
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1) if pan else a


def _qa(mission: _Mission, collection: int, scene: _Scene, fill: np.ndarray) -> np.ndarray:
    """QA_PIXEL (C2) or BQA (C1): fill, cloud, shadow, water bits with their confidences."""
    cloud = _down(scene.cloud) > 0.3
    shadow = _down(scene.shadow.astype(float)) > 0.5
    water = _down(scene.water.astype(float)) > 0.5
    if collection == 2:
        clear, cloudy, shaded = mission.clear_qa, (1 << 3) | (3 << 8), (1 << 4) | (3 << 10)
        qa = np.full(fill.shape, clear, dtype=np.uint16)
        qa[water] |= 1 << 7
        qa[cloud] = (clear & ~(1 << 6) & ~(3 << 8)) | cloudy
        qa[shadow & ~cloud] |= shaded
    else:
        qa = np.full(fill.shape, 2720 if mission.dtype == "uint16" else 672, dtype=np.uint16)
        qa[cloud] |= (1 << 4) | (3 << 5)
        qa[shadow & ~cloud] |= 3 << 7
    qa[fill] = 1  # bit 0: fill (C1: "designated fill")
    return qa


def tif(array: np.ndarray, pan: bool = False) -> bytes:
    """One GeoTIFF in memory on the product's UTM grid (15 m for pan)."""
    res = 15.0 if pan else 30.0
    profile = {
        "driver": "GTiff",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": CRS.from_epsg(EPSG),
        "transform": Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1]),
        "compress": "deflate",
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(array, 1)
        return mem.read()


# -- MTL ---------------------------------------------------------------------------------
Tree = dict[str, "Tree | str | Num"]


class Num(str):
    """A value written without quotes in the ODL text (numbers, dates)."""


def mtl_tree(spacecraft: str, collection: int = 2, size: int = 120) -> Tree:
    """The MTL of the product `write_landsat` writes, as nested groups."""
    pid = product_id(spacecraft, collection)
    mission = MISSIONS[spacecraft]
    keys = band_keys(spacecraft)
    cal = _CAL[spacecraft]
    thermal = [k for k in keys if len(cal[k]) == 4 and cal[k][2] > 100]
    files = {k: f"{pid}_B{k}.TIF" for k in keys}
    qa = f"{pid}_{'QA_PIXEL' if collection == 2 else 'BQA'}.TIF"
    rescaling: Tree = {}
    for k in keys:
        rescaling[f"RADIANCE_MULT_BAND_{k}"] = Num(f"{cal[k][0]:.4E}")
    for k in keys:
        rescaling[f"RADIANCE_ADD_BAND_{k}"] = Num(f"{cal[k][1]:.5f}")
    for k in (k for k in keys if k not in thermal):
        rescaling[f"REFLECTANCE_MULT_BAND_{k}"] = Num(f"{cal[k][2]:.4E}")
    for k in (k for k in keys if k not in thermal):
        rescaling[f"REFLECTANCE_ADD_BAND_{k}"] = Num(f"{cal[k][3]:.6f}")
    constants: Tree = {}
    for k in thermal:
        constants[f"K1_CONSTANT_BAND_{k}"] = Num(f"{cal[k][2]:.4f}")
        constants[f"K2_CONSTANT_BAND_{k}"] = Num(f"{cal[k][3]:.4f}")
    common = _common(pid, mission, size)
    if collection == 2:
        return _tree_c2(pid, mission, files, qa, common, rescaling, constants)
    return _tree_c1(pid, mission, files, qa, common, rescaling, constants)


def _common(pid: str, mission: _Mission, size: int) -> dict[str, Tree]:
    x0, y0 = ORIGIN
    x1, y1 = x0 + 30 * size, y0 - 30 * size
    path, row = mission.path_row
    acquired: Tree = {
        "SPACECRAFT_ID": mission.spacecraft_id,
        "SENSOR_ID": mission.sensor_id,
        "WRS_PATH": Num(str(path)),
        "WRS_ROW": Num(f"{row:03d}"),
        "DATE_ACQUIRED": Num(mission.date),
        "SCENE_CENTER_TIME": "09:50:14.7670750Z",
    }
    sun: Tree = {
        "CLOUD_COVER": Num("35.00"),
        "SUN_AZIMUTH": Num(f"{SUN_AZIMUTH:.8f}"),
        "SUN_ELEVATION": Num(f"{SUN_ELEVATION:.8f}"),
        "EARTH_SUN_DISTANCE": Num(f"{EARTH_SUN_DISTANCE:.7f}"),
    }
    corners: Tree = {
        "CORNER_UL_PROJECTION_X_PRODUCT": Num(f"{x0:.3f}"),
        "CORNER_UL_PROJECTION_Y_PRODUCT": Num(f"{y0:.3f}"),
        "CORNER_LR_PROJECTION_X_PRODUCT": Num(f"{x1:.3f}"),
        "CORNER_LR_PROJECTION_Y_PRODUCT": Num(f"{y1:.3f}"),
    }
    projection: Tree = {
        "MAP_PROJECTION": "UTM",
        "DATUM": "WGS84",
        "ELLIPSOID": "WGS84",
        "UTM_ZONE": Num(str(EPSG - 32600)),
        "GRID_CELL_SIZE_PANCHROMATIC": Num("15.00"),
        "GRID_CELL_SIZE_REFLECTIVE": Num("30.00"),
        "GRID_CELL_SIZE_THERMAL": Num("30.00"),
        "ORIENTATION": "NORTH_UP",
        "RESAMPLING_OPTION": "CUBIC_CONVOLUTION",
    }
    lines: Tree = {
        "PANCHROMATIC_LINES": Num(str(2 * size)),
        "PANCHROMATIC_SAMPLES": Num(str(2 * size)),
        "REFLECTIVE_LINES": Num(str(size)),
        "REFLECTIVE_SAMPLES": Num(str(size)),
        "THERMAL_LINES": Num(str(size)),
        "THERMAL_SAMPLES": Num(str(size)),
    }
    return {
        "acquired": acquired,
        "sun": sun,
        "corners": corners,
        "proj": projection,
        "lines": lines,
    }


def _tree_c2(
    pid: str,
    mission: _Mission,
    files: dict[str, str],
    qa: str,
    common: dict[str, Tree],
    rescaling: Tree,
    constants: Tree,
) -> Tree:
    names: Tree = {f"FILE_NAME_BAND_{k}": v for k, v in files.items()}
    names["FILE_NAME_QUALITY_L1_PIXEL"] = qa
    names["FILE_NAME_METADATA_ODL"] = f"{pid}_MTL.txt"
    names["FILE_NAME_METADATA_XML"] = f"{pid}_MTL.xml"
    dtype = mission.dtype.upper()
    identity: Tree = {
        "ORIGIN": "Image courtesy of the U.S. Geological Survey",
        "DIGITAL_OBJECT_IDENTIFIER": "https://doi.org/10.5066/P975CC9B",
        "LANDSAT_PRODUCT_ID": pid,
        "PROCESSING_LEVEL": "L1TP",
    }
    contents: Tree = {
        **identity,
        "COLLECTION_NUMBER": Num("02"),
        "COLLECTION_CATEGORY": "T1",
        "OUTPUT_FORMAT": "GEOTIFF",
        **names,
        **{f"DATA_TYPE_BAND_{k}": dtype for k in files},
        "DATA_TYPE_QUALITY_L1_PIXEL": "UINT16",
    }
    image: Tree = {
        **common["acquired"],
        "WRS_TYPE": Num("2"),
        "STATION_ID": "LGN",
        **common["sun"],
    }
    record: Tree = {
        **identity,
        "REQUEST_ID": "demo_00001",
        "LANDSAT_SCENE_ID": _scene_id(pid),
        "COLLECTION_CATEGORY": "T1",
        "OUTPUT_FORMAT": "GEOTIFF",
        "DATE_PRODUCT_GENERATED": Num(f"{common['acquired']['DATE_ACQUIRED']}T12:00:00Z"),
        "PROCESSING_SOFTWARE_VERSION": "LPGS_15.6.0",
        **names,
        "DATA_SOURCE_ELEVATION": "GLS2000",
    }
    return {
        "LANDSAT_METADATA_FILE": {
            "PRODUCT_CONTENTS": contents,
            "IMAGE_ATTRIBUTES": image,
            "PROJECTION_ATTRIBUTES": {
                **{k: v for k, v in common["proj"].items() if k != "RESAMPLING_OPTION"},
                **common["lines"],
                **common["corners"],
            },
            "LEVEL1_PROCESSING_RECORD": record,
            "LEVEL1_RADIOMETRIC_RESCALING": rescaling,
            "LEVEL1_THERMAL_CONSTANTS": constants,
            "LEVEL1_PROJECTION_PARAMETERS": common["proj"],
        }
    }


def _tree_c1(
    pid: str,
    mission: _Mission,
    files: dict[str, str],
    qa: str,
    common: dict[str, Tree],
    rescaling: Tree,
    constants: Tree,
) -> Tree:
    info: Tree = {
        "ORIGIN": "Image courtesy of the U.S. Geological Survey",
        "REQUEST_ID": "demo_00001",
        "LANDSAT_SCENE_ID": _scene_id(pid),
        "LANDSAT_PRODUCT_ID": pid,
        "COLLECTION_NUMBER": Num("01"),
        "FILE_DATE": Num(f"{common['acquired']['DATE_ACQUIRED']}T12:00:00Z"),
        "STATION_ID": "LGN",
        "PROCESSING_SOFTWARE_VERSION": "LPGS_13.1.0",
    }
    product: Tree = {
        "DATA_TYPE": "L1TP",
        "COLLECTION_CATEGORY": "T1",
        "ELEVATION_SOURCE": "GLS2000",
        "OUTPUT_FORMAT": "GEOTIFF",
        **common["acquired"],
        **common["corners"],
        **common["lines"],
        **{f"FILE_NAME_BAND_{k}": v for k, v in files.items()},
        "FILE_NAME_BAND_QUALITY": qa,
        "METADATA_FILE_NAME": f"{pid}_MTL.txt",
    }
    return {
        "L1_METADATA_FILE": {
            "METADATA_FILE_INFO": info,
            "PRODUCT_METADATA": product,
            "IMAGE_ATTRIBUTES": common["sun"],
            "RADIOMETRIC_RESCALING": rescaling,
            mission.thermal_group_c1: constants,
            "PROJECTION_PARAMETERS": common["proj"],
        }
    }


def _scene_id(pid: str) -> str:
    """LC08_L1TP_193024_20210724_... -> LC81930242021205LGN00 (year + day of year)."""
    parts = pid.split("_")
    day = dt.datetime.strptime(parts[3], "%Y%m%d").date()
    return (
        f"{parts[0][0:2]}{int(parts[0][2:])}{parts[2]}{day.year}{day.timetuple().tm_yday:03d}LGN00"
    )


def to_odl(tree: Tree, indent: int = 0) -> str:
    """USGS's ODL text (``GROUP = ...``): `Num` values unquoted, the others quoted."""
    out = []
    pad = "  " * indent
    for key, value in tree.items():
        if isinstance(value, dict):
            out.append(f"{pad}GROUP = {key}")
            out.append(to_odl(value, indent + 1))
            out.append(f"{pad}END_GROUP = {key}")
        elif isinstance(value, Num):
            out.append(f"{pad}{key} = {value}")
        else:
            out.append(f'{pad}{key} = "{value}"')
    text = "\n".join(out)
    return text + "\nEND\n" if indent == 0 else text


# -- output ------------------------------------------------------------------------------
def write_product(folder: Path, pid: str, files: dict[str, bytes], tar: bool = False) -> Path:
    """``files`` into ``folder/pid/`` or, with ``tar``, ``folder/pid.tar``; returns that path."""
    folder.mkdir(parents=True, exist_ok=True)
    if not tar:
        product = folder / pid
        product.mkdir(exist_ok=True)
        for name, data in files.items():
            (product / name).write_bytes(data)
        return product
    archive = folder / f"{pid}.tar"
    with tarfile.open(archive, "w") as tf:  # USGS delivers plain tar, files at the root
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = 1_650_000_000  # fixed: same arguments, same bytes
            tf.addfile(info, io.BytesIO(files[name]))
    return archive


__all__ = [
    "MISSIONS",
    "Num",
    "Tree",
    "band_keys",
    "mtl_tree",
    "product_files",
    "product_id",
    "tif",
    "to_odl",
    "write_landsat",
    "write_product",
]
