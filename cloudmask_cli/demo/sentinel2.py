"""A tiny Sentinel-2 L1C/L2A product in the real SAFE format, with clouds, shadows and no data.

`write_sentinel2` writes what ESA delivers, cut to a few km of tile T31TCJ (Toulouse, EPSG:32631):
the product metadata (``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml``, or the pre-2017 ``OPER`` naming),
the granule metadata (``MTD_TL.xml``), every band as a lossless JPEG 2000 with resolution levels
(overviews) at its native 10/20/60 m (L2A: in ``R10m``/``R20m``/``R60m`` like ESA, each band at its
native and every coarser resolution), ``MSK_QUALIT`` quality masks from baseline 04.00 and, for
L2A, a scene classification (SCL). No manifest.safe, datastrip or GML masks: readers do not need
them.

The scene: fields and natural land cover, a lake, a few bright clouds (high in every visible/NIR
band and in the B10 cirrus band) with their shadows cast away from the sun given in ``MTD_TL.xml``,
a no-data wedge (DN 0) along a diagonal swath edge in one corner and, from 04.00, one defective
detector column flagged in B12's ``MSK_QUALIT``. DN follow the baseline: ``DN = reflectance *
10000 + 1000`` from 04.00 (offset -1000 in the metadata), ``reflectance * 10000`` before.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
RESOLUTION = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip
# ESA's Spectral_Information (S2A): physical band name, min/max/central wavelength in nm
WAVELENGTH = {
    "B01": (412, 456, 442.7), "B02": (456, 533, 492.7), "B03": (538, 583, 559.8),
    "B04": (646, 684, 664.6), "B05": (695, 714, 704.1), "B06": (731, 749, 740.5),
    "B07": (769, 797, 782.8), "B08": (760, 907, 832.8), "B8A": (837, 881, 864.7),
    "B09": (932, 958, 945.1), "B10": (1337, 1412, 1373.5), "B11": (1539, 1682, 1613.7),
    "B12": (2078, 2320, 2202.4),
}  # fmt: skip
SOLAR_IRRADIANCE = (1884.69, 1959.66, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63,
                    955.32, 812.92, 367.15, 245.59, 85.25)  # fmt: skip

# Surface reflectance spectra (B01..B12) of the cover types, and of a thick cloud at the top of
# the atmosphere. B09 sits in a water-vapour band and B10 in a saturated one: the surface barely
# reaches the sensor there, while a cloud top above the vapour does (that is what B10 is for).
SPECTRA = {
    "vegetation": (0.03, 0.04, 0.07, 0.04, 0.11, 0.27, 0.33, 0.36, 0.37, 0.12, 0.002, 0.19, 0.09),
    "soil": (0.08, 0.10, 0.14, 0.18, 0.21, 0.24, 0.26, 0.28, 0.29, 0.09, 0.003, 0.34, 0.27),
    "water": (0.06, 0.06, 0.05, 0.03, 0.025, 0.02, 0.018, 0.015, 0.014, 0.004, 0.001, 0.008, 0.005),
    "cloud": (0.52, 0.54, 0.55, 0.56, 0.57, 0.58, 0.58, 0.59, 0.58, 0.36, 0.09, 0.38, 0.24),
}
# Top-of-atmosphere path radiance (Rayleigh + aerosol), added at L1C only.
PATH_REFLECTANCE = (0.07, 0.04, 0.02, 0.01, 0.008, 0.006, 0.005, 0.004, 0.004, 0.002, 0.0, 0.001,
                    0.0)  # fmt: skip

TILE = "31TCJ"
EPSG = 32631
TILE_UL = (300000.0, 4900020.0)  # T31TCJ upper-left corner (MGRS tiling grid)
SUN_ZENITH, SUN_AZIMUTH = 42.3, 158.7  # Toulouse, late September, 10:56 UTC
L2A_FOLDERS = {10: ("B02", "B03", "B04", "B08"), 20: ("B01", "B02", "B03", "B04", "B05", "B06",
               "B07", "B8A", "B11", "B12"), 60: ("B01", "B02", "B03", "B04", "B05", "B06", "B07",
               "B8A", "B09", "B11", "B12")}  # fmt: skip
QUALIT_DEFECTIVE, QUALIT_NODATA = 5, 6  # MSK_QUALIT layers (1-based)
SCL = {"nodata": 0, "shadow": 3, "vegetation": 4, "soil": 5, "water": 6, "cloud_med": 8,
       "cloud_high": 9, "cirrus": 10}  # fmt: skip


def write_sentinel2(
    path: Path,
    *,
    level: str = "L1C",
    baseline: str = "05.10",
    size_10m: int = 240,
    zipped: bool = False,
    seed: int = 0,
    old_naming: bool = False,
    clouds: bool = True,
) -> Path:
    """Write a demo Sentinel-2 product into the folder ``path``; returns the ``.SAFE`` or ``.zip``.

    ``size_10m`` is the width and height in 10 m pixels, rounded to a multiple of 6 so that 20 m
    and 60 m pixels line up with 10 m ones. ``old_naming`` writes the pre-2017
    ``S2A_OPER_PRD_MSIL1C_...SAFE`` layout (L1C only).
    """
    if size_10m < 6:
        raise ValueError(f"size_10m must be at least 6 (one 60 m pixel), got {size_10m}")
    size = 6 * round(size_10m / 6)
    spec = _Spec(level.upper(), baseline, size, old_naming)
    spec.validate()
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    scene = _synthesize(size, np.random.default_rng(seed), clouds)
    if not zipped:
        safe = folder / spec.safe_name
        _replace_dir(safe)
        _write_safe(safe, spec, scene)
        return safe
    with tempfile.TemporaryDirectory(dir=folder, prefix=".s2demo-") as tmp:
        safe = Path(tmp) / spec.safe_name
        _write_safe(safe, spec, scene)
        out = folder / (safe.stem + ".zip")
        _zip_folder(safe, out)
    return out


# -- naming -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    level: str
    baseline: str
    size: int
    old_naming: bool
    spacecraft: str = "S2A"
    orbit: int = 51
    absolute_orbit: int = 42966

    def validate(self) -> None:
        if self.level not in ("L1C", "L2A"):
            raise ValueError(f"level must be 'L1C' or 'L2A', got {self.level!r}")
        if not (len(self.baseline) == 5 and self.baseline[2] == "." and self.baseline_tuple):
            raise ValueError(f"baseline must look like '04.00', got {self.baseline!r}")
        if self.old_naming and self.level != "L1C":
            raise ValueError("the old OPER naming is written for L1C only")

    @property
    def baseline_tuple(self) -> tuple[int, int]:
        major, minor = self.baseline.split(".")
        return int(major), int(minor)

    @property
    def has_offsets(self) -> bool:
        return self.baseline_tuple >= (4, 0)

    @property
    def dn_offset(self) -> int:
        """What ESA adds to every DN (and writes, negated, as RADIO_ADD_OFFSET)."""
        return 1000 if self.has_offsets else 0

    @property
    def sensing(self) -> str:
        """A sensing start (compact form) in the years the baseline was in use."""
        year = {2: 2019, 3: 2021, 4: 2022}.get(self.baseline_tuple[0], 2023)
        if self.old_naming:
            year = 2016
        return f"{year}0921T105031"

    @property
    def generation(self) -> str:
        return self.sensing[:9] + "142210"

    @property
    def n_baseline(self) -> str:
        return "N" + self.baseline.replace(".", "")

    @property
    def safe_name(self) -> str:
        if self.old_naming:
            return (
                f"{self.spacecraft}_OPER_PRD_MSIL1C_PDMC_{self.generation}_R{self.orbit:03d}"
                f"_V{self.sensing}_{self.sensing}.SAFE"
            )
        return (
            f"{self.spacecraft}_MSI{self.level}_{self.sensing}_{self.n_baseline}_R{self.orbit:03d}"
            f"_T{TILE}_{self.generation}.SAFE"
        )

    @property
    def granule_id(self) -> str:
        """The granuleIdentifier (and, in the OPER naming, the granule folder)."""
        return (
            f"{self.spacecraft}_OPER_MSI_{self.level}_TL_SGS__{self.generation}"
            f"_A{self.absolute_orbit:06d}_T{TILE}_{self.n_baseline[0]}{self.baseline}"
        )

    @property
    def granule_dir(self) -> str:
        if self.old_naming:
            return f"GRANULE/{self.granule_id}"
        return f"GRANULE/{self.level}_T{TILE}_A{self.absolute_orbit:06d}_{self.sensing}"

    @property
    def product_mtd(self) -> str:
        if self.old_naming:
            return (
                f"{self.spacecraft}_OPER_MTD_SAFL1C_PDMC_{self.generation}_R{self.orbit:03d}"
                f"_V{self.sensing}_{self.sensing}.xml"
            )
        return f"MTD_MSI{self.level}.xml"

    @property
    def tile_mtd(self) -> str:
        if self.old_naming:
            return (
                f"{self.spacecraft}_OPER_MTD_L1C_TL_SGS__{self.generation}"
                f"_A{self.absolute_orbit:06d}_T{TILE}.xml"
            )
        return "MTD_TL.xml"

    def band_files(self) -> list[tuple[str, int]]:
        """(path relative to the SAFE without .jp2, resolution) of every band file, MTD order."""
        img = f"{self.granule_dir}/IMG_DATA"
        if self.old_naming:
            stem = self.granule_id.rsplit("_", 1)[0]
            return [(f"{img}/{stem}_{b}", RESOLUTION[b]) for b in BANDS]
        prefix = f"T{TILE}_{self.sensing}"
        if self.level == "L1C":
            return [(f"{img}/{prefix}_{b}", RESOLUTION[b]) for b in BANDS]
        return [
            (f"{img}/R{res}m/{prefix}_{b}_{res}m", res)
            for res, bands in L2A_FOLDERS.items()
            for b in bands
        ]

    def extra_files(self) -> list[str]:
        """Other image files the product lists (TCI, SCL), without .jp2."""
        img, prefix = f"{self.granule_dir}/IMG_DATA", f"T{TILE}_{self.sensing}"
        if self.old_naming:
            return []
        if self.level == "L1C":
            return [f"{img}/{prefix}_TCI"]
        return [f"{img}/R10m/{prefix}_TCI_10m", f"{img}/R20m/{prefix}_SCL_20m",
                f"{img}/R60m/{prefix}_SCL_60m"]  # fmt: skip

    def quality_masks(self) -> list[tuple[str, str]]:
        """(band, path) of the MSK_QUALIT files (baseline >= 04.00)."""
        if not self.has_offsets:
            return []
        bands = [b for b in BANDS if self.level == "L1C" or b != "B10"]
        return [(b, f"{self.granule_dir}/QI_DATA/MSK_QUALIT_{b}.jp2") for b in bands]


def _replace_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def _zip_folder(safe: Path, out: Path) -> None:
    """Zip ``safe`` as ESA does: one top folder ``X.SAFE/``, members deflated."""
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for f in sorted(safe.rglob("*")):
            zf.write(f, f"{safe.name}/{f.relative_to(safe).as_posix()}")
    tmp.replace(out)


# -- the scene --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scene:
    """Reflectance of the 13 bands at 10 m (surface and TOA), plus what is where."""

    surface: np.ndarray  # (13, n, n) float32 surface reflectance, shadows applied
    cloud: np.ndarray  # (n, n) cloud opacity 0..1
    shadow: np.ndarray  # (n, n) shadow strength 0..1
    water: np.ndarray  # (n, n) bool
    soil: np.ndarray  # (n, n) soil fraction
    nodata60: np.ndarray  # (n/6, n/6) bool: the swath edge, on the 60 m grid

    def reflectance(self, level: str) -> np.ndarray:
        """(13, n, n) reflectance: clouds over the surface; L1C adds the path radiance."""
        cloud = np.asarray(SPECTRA["cloud"], np.float32)[:, None, None]
        alpha = self.cloud[None]
        rho = (1 - alpha) * self.surface + alpha * cloud
        if level == "L1C":
            rho = rho + np.asarray(PATH_REFLECTANCE, np.float32)[:, None, None] * (1 - alpha)
        return rho.astype(np.float32)

    def nodata(self, res: int) -> np.ndarray:
        k = 60 // res
        return np.repeat(np.repeat(self.nodata60, k, axis=0), k, axis=1)


def _synthesize(n: int, rng: np.random.Generator, clouds: bool) -> _Scene:
    soil = _land_cover(n, rng)
    water = _lake(n, rng)
    cloud = _clouds(n, rng) if clouds else np.zeros((n, n), np.float32)
    shadow = _shadow(cloud, n)
    veg, bare, wat = (np.asarray(SPECTRA[k], np.float32)[:, None, None] for k in
                      ("vegetation", "soil", "water"))  # fmt: skip
    surface = (1 - soil)[None] * veg + soil[None] * bare
    surface = np.where(water[None], wat, surface)
    surface *= 1 + 0.05 * _smooth(n, rng, cells=n // 8)[None]  # fine texture
    darkening = 1 - 0.75 * shadow[None] * _shadow_weight()[:, None, None]
    surface = (surface * darkening).astype(np.float32)
    surface += rng.normal(0, 0.002, surface.shape).astype(np.float32)  # sensor noise
    return _Scene(surface, cloud, shadow, water, soil, _swath_edge(n // 6))


def _shadow_weight() -> np.ndarray:
    """Shadows darken what comes from the ground; B10 sees only the high atmosphere."""
    w = np.ones(len(BANDS), np.float32)
    w[BANDS.index("B10")] = 0.0
    return w


def _smooth(n: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    """A smooth random field in about [-1, 1] with ``cells`` features across the image."""
    cells = max(1, cells)
    coarse = rng.standard_normal((cells + 2, cells + 2)).astype(np.float32)
    pos = np.linspace(0.5, cells + 0.5, n, dtype=np.float32)
    i0 = np.floor(pos).astype(int)
    f = (pos - i0)[:, None]
    rows = coarse[i0] * (1 - f) + coarse[i0 + 1] * f  # interpolate along rows...
    g = (pos - i0)[None, :]
    return (rows[:, i0] * (1 - g) + rows[:, i0 + 1] * g) / 1.5  # ...then along columns


def _land_cover(n: int, rng: np.random.Generator) -> np.ndarray:
    """Soil fraction: farmland parcels (crops to bare soil) and patches of natural cover."""
    natural = np.clip(0.3 + 0.3 * _smooth(n, rng, cells=4) + 0.1 * _smooth(n, rng, cells=16), 0, 1)
    parcel = _parcels(n, rng, size_px=max(8, n // 10))
    state = rng.beta(0.6, 0.6, size=parcel.max() + 1)  # many green, many bare, some between
    fields = state[parcel] + 0.05 * _smooth(n, rng, cells=n // 6)
    farmland = _smooth(n, rng, cells=2) > -0.35
    return np.clip(np.where(farmland, fields, natural), 0, 1).astype(np.float32)


def _parcels(n: int, rng: np.random.Generator, size_px: int) -> np.ndarray:
    """Field ids: a Voronoi tessellation of jittered grid seeds (polygonal, like real parcels)."""
    cells = -(-n // size_px)
    grid = np.mgrid[0:cells, 0:cells].transpose(1, 2, 0)
    seeds = grid + rng.uniform(0.1, 0.9, (cells, cells, 2))
    pos = (np.arange(n) + 0.5) / size_px
    r, c = np.meshgrid(pos, pos, indexing="ij")
    best = np.full((n, n), np.inf, np.float32)
    ids = np.zeros((n, n), np.int64)
    for dr in (-1, 0, 1):  # the nearest seed is in this cell or a neighbour
        for dc in (-1, 0, 1):
            cr = np.clip(r.astype(int) + dr, 0, cells - 1)
            cc = np.clip(c.astype(int) + dc, 0, cells - 1)
            d = (seeds[cr, cc, 0] - r) ** 2 + (seeds[cr, cc, 1] - c) ** 2
            closer = d < best
            best[closer], ids[closer] = d[closer], (cr * cells + cc)[closer]
    return ids


def _lake(n: int, rng: np.random.Generator) -> np.ndarray:
    """A lake: an irregular blob in the lower-left quarter."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    cy, cx = rng.uniform(0.6, 0.75), rng.uniform(0.15, 0.3)
    radius = 0.09 + 0.03 * _smooth(n, rng, cells=3) + 0.012 * _smooth(n, rng, cells=12)
    return np.hypot(yy - cy, (xx - cx) * 1.3) < radius


def _clouds(n: int, rng: np.random.Generator) -> np.ndarray:
    """Opacity of a few cumulus clouds: clumps of Gaussian puffs with a textured edge."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    density = np.zeros((n, n), np.float32)
    for _ in range(int(rng.integers(3, 6))):
        cy, cx = rng.uniform(0.2, 0.8, 2)
        for _ in range(int(rng.integers(3, 7))):
            py, px = cy + rng.normal(0, 0.04), cx + rng.normal(0, 0.04)
            s = rng.uniform(0.02, 0.05)
            density += np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * s * s))
    texture = 1 + 0.4 * _smooth(n, rng, cells=max(4, n // 20))
    return np.clip((density * texture - 0.35) * 1.6, 0, 1).astype(np.float32)


def _shadow(cloud: np.ndarray, n: int) -> np.ndarray:
    """The clouds' shadows: cast away from the sun, ``height * tan(zenith)`` on the ground."""
    height_m = 1000.0 * n / 600  # scaled with the image so the shadows stay in the picture
    shift_px = height_m * math.tan(math.radians(SUN_ZENITH)) / 10.0
    away = math.radians(SUN_AZIMUTH + 180.0)  # azimuth: clockwise from north
    dx, drow = shift_px * math.sin(away), -shift_px * math.cos(away)
    shadow = _shift(cloud, round(drow), round(dx))
    return (np.clip(shadow * 1.3, 0, 1) * (cloud < 0.5)).astype(np.float32)


def _shift(a: np.ndarray, drow: int, dcol: int) -> np.ndarray:
    """``a`` moved by (drow, dcol) pixels, zeros where nothing moved in."""
    out = np.zeros_like(a)
    h, w = a.shape
    src = a[max(0, -drow) : h - max(0, drow), max(0, -dcol) : w - max(0, dcol)]
    r0, c0 = max(0, drow), max(0, dcol)
    out[r0 : r0 + src.shape[0], c0 : c0 + src.shape[1]] = src
    return out


def _swath_edge(n60: int) -> np.ndarray:
    """No data beyond a diagonal swath edge cutting the lower-right corner (60 m grid)."""
    rows, cols = np.mgrid[0:n60, 0:n60]
    return rows + 0.6 * cols > 1.25 * n60


# -- rasters ----------------------------------------------------------------------------------
def _write_safe(safe: Path, spec: _Spec, scene: _Scene) -> None:
    safe.mkdir(parents=True)
    rho = scene.reflectance(spec.level)
    for rel, res in spec.band_files():
        band = _band_of(rel)
        _write_jp2(safe / f"{rel}.jp2", _band_dn(rho, band, res, scene, spec)[None], res)
    _write_extras(safe, spec, scene, rho)
    for band, rel in spec.quality_masks():
        _write_jp2(safe / rel, _quality_layers(band, scene), RESOLUTION[band])
    (safe / spec.granule_dir / spec.tile_mtd).write_bytes(_tile_xml(spec, scene))
    (safe / spec.product_mtd).write_bytes(_product_xml(spec, scene))


def _band_of(rel: str) -> str:
    return next(b for b in BANDS if f"_{b}" in Path(rel).name)


def _band_dn(rho: np.ndarray, band: str, res: int, scene: _Scene, spec: _Spec) -> np.ndarray:
    """DN of one band at ``res``: block mean of the 10 m reflectance, ESA's quantisation."""
    values = _block_mean(rho[BANDS.index(band)], res // 10)
    dn = np.clip(np.rint(values * 10000) + spec.dn_offset, 1, 65535).astype(np.uint16)
    dn[scene.nodata(res)] = 0
    if band == "B12" and spec.has_offsets:
        col = _defective_column(dn.shape[1])  # ESA interpolates defective pixels: DN look normal
        dn[:, col] = np.where(dn[:, col] > 0, (dn[:, col - 1] // 2 + dn[:, col + 1] // 2), 0)
    return dn


def _defective_column(width: int) -> int:
    return max(1, min(width - 2, (2 * width) // 3))


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return a
    n = a.shape[0] // k
    return a[: n * k, : n * k].reshape(n, k, n, k).mean(axis=(1, 3))


def _quality_layers(band: str, scene: _Scene) -> np.ndarray:
    """MSK_QUALIT: 8 layers of 0/1 at the band's resolution."""
    res = RESOLUTION[band]
    nodata = scene.nodata(res)
    layers = np.zeros((8,) + nodata.shape, np.uint8)
    layers[QUALIT_NODATA - 1] = nodata
    if band == "B12":
        layers[QUALIT_DEFECTIVE - 1, :, _defective_column(nodata.shape[1])] = 1
        layers[QUALIT_DEFECTIVE - 1][nodata] = 0
    return layers


def _write_extras(safe: Path, spec: _Spec, scene: _Scene, rho: np.ndarray) -> None:
    for rel in spec.extra_files():
        if "_TCI" in rel:
            _write_jp2(safe / f"{rel}.jp2", _true_colour(rho, scene), 10)
        else:
            res = int(rel.rsplit("_", 1)[1].rstrip("m"))
            _write_jp2(safe / f"{rel}.jp2", _scene_classes(scene, res)[None], res)


def _true_colour(rho: np.ndarray, scene: _Scene) -> np.ndarray:
    """ESA's TCI: B04/B03/B02 reflectance 0..~0.4 stretched to 1..255, 0 for no data."""
    rgb = rho[[BANDS.index("B04"), BANDS.index("B03"), BANDS.index("B02")]]
    tci = np.clip(rgb * 2.5 * 255, 1, 255).astype(np.uint8)
    tci[:, scene.nodata(10)] = 0
    return tci


def _scene_classes(scene: _Scene, res: int) -> np.ndarray:
    """An L2A scene classification (SCL) from what the demo put where."""
    k = res // 10
    scl = np.where(_block_mean(scene.soil, k) > 0.5, SCL["soil"], SCL["vegetation"])
    scl = np.where(_block_mean(scene.water.astype(np.float32), k) > 0.5, SCL["water"], scl)
    scl = np.where(_block_mean(scene.shadow, k) > 0.3, SCL["shadow"], scl)
    cloud = _block_mean(scene.cloud, k)
    scl = np.where(cloud > 0.15, SCL["cirrus"], scl)
    scl = np.where(cloud > 0.4, SCL["cloud_med"], scl)
    scl = np.where(cloud > 0.7, SCL["cloud_high"], scl)
    scl[scene.nodata(res)] = SCL["nodata"]
    return scl.astype(np.uint8)


def _write_jp2(path: Path, data: np.ndarray, res: int) -> None:
    """A lossless JPEG 2000 like ESA's: tiled, with resolution levels (GDAL overviews)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = data.shape
    levels = max(1, min(6, int(math.log2(max(width, 2) / 16)) + 1))
    block = 1024 if width > 2048 else (256 if width > 512 else max(32, width))  # GDAL: >= 32
    with rasterio.open(
        path,
        "w",
        driver="JP2OpenJPEG",
        width=width,
        height=height,
        count=count,
        dtype=data.dtype,
        crs=CRS.from_epsg(EPSG),
        transform=Affine(res, 0, TILE_UL[0], 0, -res, TILE_UL[1]),
        QUALITY=100,
        REVERSIBLE="YES",
        RESOLUTIONS=levels,
        BLOCKXSIZE=block,
        BLOCKYSIZE=block,
    ) as dst:
        dst.write(data)


# -- metadata ---------------------------------------------------------------------------------
def _el(parent: ET.Element, tag: str, text: object = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = str(text)
    return el


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + ET.tostring(
        root, encoding="utf-8"
    )


def _iso(compact: str, fraction: str = ".024Z") -> str:
    c = compact
    return f"{c[:4]}-{c[4:6]}-{c[6:8]}T{c[9:11]}:{c[11:13]}:{c[13:15]}{fraction}"


def _psd(spec: _Spec) -> str:
    return "psd-12" if spec.old_naming else "psd-14"


def _product_xml(spec: _Spec, scene: _Scene) -> bytes:
    ns = f"https://{_psd(spec)}.sentinel2.eo.esa.int/PSD/User_Product_Level-{spec.level[1:]}.xsd"
    root = ET.Element(
        f"n1:Level-{spec.level[1:]}_User_Product",
        {
            "xmlns:n1": ns,
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:schemaLocation": ns,
        },
    )
    general = _el(root, "n1:General_Info")
    _product_info(_el(general, "Product_Info"), spec)
    _image_characteristics(_el(general, "Product_Image_Characteristics"), spec)
    _geometric_info(_el(root, "n1:Geometric_Info"))
    quality = _el(root, "n1:Quality_Indicators_Info")
    _el(quality, "Cloud_Coverage_Assessment", f"{100 * float((scene.cloud > 0.4).mean()):.6f}")
    return _xml_bytes(root)


def _product_info(info: ET.Element, spec: _Spec) -> None:
    start = _iso(spec.sensing)
    _el(info, "PRODUCT_START_TIME", start)
    _el(info, "PRODUCT_STOP_TIME", start)
    _el(info, "PRODUCT_URI", spec.safe_name)
    _el(info, "PROCESSING_LEVEL", f"Level-{spec.level[1:]}")
    _el(info, "PRODUCT_TYPE", f"S2MSI{spec.level[1:]}")
    _el(info, "PROCESSING_BASELINE", spec.baseline)
    _el(info, "GENERATION_TIME", _iso(spec.generation, ".000000Z"))
    _el(info, "PREVIEW_IMAGE_URL", "Not applicable")
    _el(info, "PREVIEW_GEO_INFO", "Not applicable")
    take = _el(info, "Datatake", datatakeIdentifier=f"G{spec.spacecraft}_{spec.sensing}_"
               f"{spec.absolute_orbit:06d}_{spec.n_baseline[0]}{spec.baseline}")  # fmt: skip
    _el(take, "SPACECRAFT_NAME", f"Sentinel-{spec.spacecraft[1:]}")
    _el(take, "DATATAKE_TYPE", "INS-NOBS")
    _el(take, "DATATAKE_SENSING_START", start)
    _el(take, "SENSING_ORBIT_NUMBER", spec.orbit)
    _el(take, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    options = _el(info, "Query_Options", completeSingleTile="true")
    _el(options, "PRODUCT_FORMAT", "SAFE" if spec.old_naming else "SAFE_COMPACT")
    _granule_list(_el(_el(info, "Product_Organisation"), "Granule_List"), spec)


def _granule_list(granules: ET.Element, spec: _Spec) -> None:
    datastrip = spec.granule_id.replace("_TL_", "_DS_").split("_A")[0] + f"_S{spec.sensing}"
    attrib = {
        "datastripIdentifier": f"{datastrip}_{spec.n_baseline[0]}{spec.baseline}",
        "granuleIdentifier": spec.granule_id,
        "imageFormat": "JPEG2000",
    }
    if spec.old_naming:  # <Granules> with bare IMAGE_ID file stems
        granule = _el(granules, "Granules", **attrib)
        for rel, _ in spec.band_files():
            _el(granule, "IMAGE_ID", Path(rel).name)
        return
    granule = _el(granules, "Granule", **attrib)
    for rel in [rel for rel, _ in spec.band_files()] + spec.extra_files():
        _el(granule, "IMAGE_FILE", rel)


def _image_characteristics(chars: ET.Element, spec: _Spec) -> None:
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        special = _el(chars, "Special_Values")
        _el(special, "SPECIAL_VALUE_TEXT", text)
        _el(special, "SPECIAL_VALUE_INDEX", index)
    order = _el(chars, "Image_Display_Order")
    for channel, value in (("RED_CHANNEL", 3), ("GREEN_CHANNEL", 2), ("BLUE_CHANNEL", 1)):
        _el(order, channel, value)
    _quantification(chars, spec)
    _offsets(chars, spec)
    conversion = _el(chars, "Reflectance_Conversion")
    _el(conversion, "U", "1.00495761001047")
    irradiance = _el(conversion, "Solar_Irradiance_List")
    for i, e0 in enumerate(SOLAR_IRRADIANCE):
        _el(irradiance, "SOLAR_IRRADIANCE", e0, bandId=str(i), unit="W/m²/µm")
    spectral = _el(chars, "Spectral_Information_List")
    for i, band in enumerate(BANDS):
        info = _el(spectral, "Spectral_Information", bandId=str(i), physicalBand=_physical(band))
        _el(info, "RESOLUTION", RESOLUTION[band])
        wavelength = _el(info, "Wavelength")
        for tag, nm in zip(("MIN", "MAX", "CENTRAL"), WAVELENGTH[band], strict=True):
            _el(wavelength, tag, nm, unit="nm")


def _physical(band: str) -> str:
    """``B01`` -> ``B1`` as in Spectral_Information."""
    return band if band.endswith("A") else f"B{int(band[1:])}"


def _quantification(chars: ET.Element, spec: _Spec) -> None:
    if spec.level == "L1C":
        _el(chars, "QUANTIFICATION_VALUE", 10000, unit="none")
        return
    values = _el(chars, "QUANTIFICATION_VALUES_LIST")
    _el(values, "BOA_QUANTIFICATION_VALUE", 10000, unit="none")
    _el(values, "AOT_QUANTIFICATION_VALUE", "1000.0", unit="none")
    _el(values, "WVP_QUANTIFICATION_VALUE", "1000.0", unit="cm")


def _offsets(chars: ET.Element, spec: _Spec) -> None:
    if not spec.has_offsets:
        return
    if spec.level == "L1C":
        group, tag = _el(chars, "Radiometric_Offset_List"), "RADIO_ADD_OFFSET"
    else:
        group, tag = _el(chars, "BOA_ADD_OFFSET_VALUES_LIST"), "BOA_ADD_OFFSET"
    for i in range(len(BANDS)):
        _el(group, tag, -spec.dn_offset, band_id=str(i))


def _geometric_info(geo: ET.Element) -> None:
    outer = _el(geo, "Product_Footprint")
    ring = "44.26 1.19 44.26 1.22 44.24 1.22 44.24 1.19 44.26 1.19"  # lat lon, closed ring
    _el(_el(_el(outer, "Product_Footprint"), "Global_Footprint"), "EXT_POS_LIST", ring)
    _el(outer, "RASTER_CS_TYPE", "POINT")
    _el(outer, "PIXEL_ORIGIN", 1)
    crs = _el(geo, "Coordinate_Reference_System")
    _el(crs, "GEO_TABLES", "EPSG", version="1")
    _el(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")


def _tile_xml(spec: _Spec, scene: _Scene) -> bytes:
    ns = (
        f"https://{_psd(spec)}.sentinel2.eo.esa.int/PSD/"
        f"S2_PDI_Level-{spec.level[1:]}_Tile_Metadata.xsd"
    )
    root = ET.Element(f"n1:Level-{spec.level[1:]}_Tile_ID", {"xmlns:n1": ns})
    general = _el(root, "n1:General_Info")
    _el(general, "TILE_ID", spec.granule_id, metadataLevel="Brief")
    _el(general, "SENSING_TIME", _iso(spec.sensing, ".461Z"), metadataLevel="Standard")
    geometric = _el(root, "n1:Geometric_Info")
    _tile_geocoding(_el(geometric, "Tile_Geocoding"), spec)
    sun = _el(_el(geometric, "Tile_Angles"), "Mean_Sun_Angle")
    _el(sun, "ZENITH_ANGLE", SUN_ZENITH, unit="deg")
    _el(sun, "AZIMUTH_ANGLE", SUN_AZIMUTH, unit="deg")
    _tile_quality(_el(root, "n1:Quality_Indicators_Info"), spec, scene)
    return _xml_bytes(root)


def _tile_geocoding(geocoding: ET.Element, spec: _Spec) -> None:
    _el(geocoding, "HORIZONTAL_CS_NAME", "WGS84 / UTM zone 31N")
    _el(geocoding, "HORIZONTAL_CS_CODE", f"EPSG:{EPSG}")
    for res in (10, 20, 60):
        size = _el(geocoding, "Size", resolution=str(res))
        _el(size, "NROWS", spec.size * 10 // res)
        _el(size, "NCOLS", spec.size * 10 // res)
    for res in (10, 20, 60):
        pos = _el(geocoding, "Geoposition", resolution=str(res))
        _el(pos, "ULX", int(TILE_UL[0]))
        _el(pos, "ULY", int(TILE_UL[1]))
        _el(pos, "XDIM", res)
        _el(pos, "YDIM", -res)


def _tile_quality(quality: ET.Element, spec: _Spec, scene: _Scene) -> None:
    content = _el(quality, "Image_Content_QI")
    _el(content, "CLOUDY_PIXEL_PERCENTAGE", f"{100 * float((scene.cloud > 0.4).mean()):.6f}")
    _el(content, "NODATA_PIXEL_PERCENTAGE", f"{100 * float(scene.nodata60.mean()):.6f}")
    pixel_qi = _el(quality, "Pixel_Level_QI", geometry="FULL_RESOLUTION")
    for band, rel in spec.quality_masks():
        _el(pixel_qi, "MASK_FILENAME", rel, bandId=str(BANDS.index(band)), type="MSK_QUALIT")


__all__ = ["write_sentinel2"]
