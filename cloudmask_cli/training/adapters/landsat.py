"""Landsat datasets: L8 Biome/CCA scenes, L7 Irish, L8 SPARCS, 38-Cloud/95-Cloud.

Layouts (as the datasets are distributed):

- ``biome``: one folder per scene holding a Landsat Level-1 product (``*_B1.TIF`` ...,
  ``*_MTL.txt``) and ``*_fixedmask.img`` (ENVI, CCA codes). Read through the project's Landsat
  reader (TOA reflectance, brightness temperature), tiled into ``patch``-pixel samples.
- ``l7irish``: one folder per scene with pre-collection files ``*_B10.TIF`` ... ``*_B70.TIF``
  (``B61``/``B62`` thermal, ``B80`` pan is skipped), ``*_MTL.txt`` and ``*_mask2019.TIF``.
- ``sparcs``: ``<id>_data.tif`` (10 bands: B1-B7, B9, B10, B11 as DN), ``<id>_mtl.txt``,
  ``<id>_labels.tif`` (codes 0..6 of the dataset's readme).
- ``cloud38`` (38-Cloud and 95-Cloud): ``<x>_red|green|blue|nir|gt/<band>_patch_..._<scene>.TIF``
  (DN, 384 x 384). The MTLs are not part of the dataset: DN -> reflectance uses the Collection 1
  rescaling (2e-5 x DN - 0.1), with the sun-elevation correction only when ``mtl_dir`` holds
  ``<scene>_MTL.txt``.
"""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path

import numpy as np

from cloudmask_cli.errors import InputError
from cloudmask_cli.inference.tiling import tiles
from cloudmask_cli.products.mtl import MTL, read_mtl
from cloudmask_cli.scene import Radiometry
from cloudmask_cli.training.adapters.common import (
    BIOME_SHADOW,
    BandFile,
    RasterSample,
    SceneSample,
    in_split,
    none_found,
    open_scene,
    sensor_bands,
)
from cloudmask_cli.training.sample import Box, read_raster_window

BIOME_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9", "B10", "B11")
SPARCS_BANDS = BIOME_BANDS
CLOUD38_BANDS = {"red": "B4", "green": "B3", "blue": "B2", "nir": "B5"}
# ETM+ solar exoatmospheric irradiances (Chander et al. 2009, Table 11) and thermal constants.
ETM_ESUN = {"1": 1997.0, "2": 1812.0, "3": 1533.0, "4": 1039.0, "5": 230.8, "7": 84.90}
ETM_K1, ETM_K2 = 666.09, 1282.71
L7_FILES = {"B1": "B10", "B2": "B20", "B3": "B30", "B4": "B40", "B5": "B50",
            "B6_VCID_1": "B61", "B6_VCID_2": "B62", "B7": "B70"}  # fmt: skip


def _find(folder: Path, suffix: str) -> Path | None:
    hits = [p for p in folder.iterdir() if p.name.lower().endswith(suffix.lower())]
    return sorted(hits)[0] if hits else None


def _scene_folders(root: Path, mask_suffix: str) -> list[Path]:
    root = Path(root)
    found = []
    for folder in sorted([root, *(p for p in root.rglob("*") if p.is_dir())]):
        if _find(folder, "_MTL.txt") and _find(folder, mask_suffix):
            found.append(folder)
    return found


# -- L8 Biome / CCA full scenes ---------------------------------------------------------------
def biome(
    root: Path,
    split: str | None = None,
    patch: int = 512,
    shadow: str = "auto",
    val_fraction: float = 0.1,
) -> list[SceneSample]:
    """L8 Biome scenes as ``patch``-pixel tiles. ``shadow``: ``auto`` (a scene whose mask holds
    any shadow pixel was shadow-annotated), ``partial`` or ``annotated`` for every scene."""
    import rasterio
    from rasterio.errors import RasterioError

    out: list[SceneSample] = []
    bands = sensor_bands("landsat8_oli_tirs", BIOME_BANDS)
    for folder in _scene_folders(Path(root), "_fixedmask.img"):
        if not in_split(folder.name, split, val_fraction):
            continue
        mask = _find(folder, "_fixedmask.img")
        assert mask is not None
        scene = open_scene(str(folder), None, tuple(b.name for b in bands))
        try:
            with rasterio.open(mask) as ds:
                if (ds.height, ds.width) != scene.shape:
                    raise InputError(mask, f"is {ds.height}x{ds.width}, the bands {scene.shape}")
                annotated = shadow == "annotated" or (
                    shadow == "auto" and bool((ds.read(1) == BIOME_SHADOW).any())
                )
        except RasterioError as exc:
            raise InputError(mask, f"cannot read mask ({exc})") from None
        scheme = "biome_with_shadow" if annotated else "biome"
        for r, c, h, w in tiles(scene.shape, patch):
            out.append(
                _PixelLabelScene(
                    f"{folder.name}_{r}_{c}", bands, scheme, str(folder), str(mask), (r, c), (h, w)
                )
            )
    if not out:
        raise none_found(Path(root), "Biome scenes (a folder with *_MTL.txt and *_fixedmask.img)")
    return out


class _PixelLabelScene(SceneSample):
    """A scene tile whose label raster shares the bands' pixel grid (ENVI masks carry no CRS)."""

    def _read(self, box: Box, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
        from rasterio.windows import Window

        r, c, h, w = box
        r0, c0 = r + self.origin[0], c + self.origin[1]
        image = self.scene().read(Window(c0, r0, w, h), bands)
        label = read_raster_window(self.label_path, (r0, c0, h, w), [1], what="label")[0]
        return image, label


# -- L7 Irish ---------------------------------------------------------------------------------
def _earth_sun_distance(mtl: MTL) -> float:
    text = mtl.text("DATE_ACQUIRED", "ACQUISITION_DATE")
    doy = date.fromisoformat(text[:10]).timetuple().tm_yday
    return 1.0 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4)))


def l7_radiometry(mtl: MTL, band: str) -> Radiometry:
    """DN -> TOA reflectance / brightness temperature for an ETM+ band (``"1"``, ``"6_VCID_1"``):
    the MTL's REFLECTANCE/RADIANCE rescaling when present, else LMAX/LMIN/QCALMAX/QCALMIN with
    the ETM+ ESUN and thermal constants (pre-collection MTLs)."""
    thermal = band.startswith("6")
    sun = math.sin(math.radians(mtl.sun_elevation))
    if not thermal and mtl.get(f"REFLECTANCE_MULT_BAND_{band}") is not None:
        mult, add = mtl.reflectance(band)
        return Radiometry(scale=mult, offset=add, divisor=sun)
    if thermal and mtl.get(f"RADIANCE_MULT_BAND_{band}") is not None:
        mult, add = mtl.radiance(band)
        k1 = mtl.get(f"K1_CONSTANT_BAND_{band}")
        k2 = mtl.get(f"K2_CONSTANT_BAND_{band}")
        return Radiometry(scale=mult, offset=add, k1=float(k1 or ETM_K1), k2=float(k2 or ETM_K2))
    old = band.replace("_VCID_", "")  # "6_VCID_1" -> "61" in pre-collection keys
    lmax, lmin = mtl.number(f"LMAX_BAND{old}"), mtl.number(f"LMIN_BAND{old}")
    qmax, qmin = mtl.number(f"QCALMAX_BAND{old}"), mtl.number(f"QCALMIN_BAND{old}")
    gain = (lmax - lmin) / (qmax - qmin)
    bias = lmin - gain * qmin
    if thermal:
        return Radiometry(scale=gain, offset=bias, k1=ETM_K1, k2=ETM_K2)
    k = math.pi * _earth_sun_distance(mtl) ** 2 / (ETM_ESUN[band] * sun)
    return Radiometry(scale=gain * k, offset=bias * k)


def l7irish(
    root: Path, split: str | None = None, patch: int = 512, val_fraction: float = 0.1
) -> list[RasterSample]:
    """L7 Irish scenes with their 2019 masks, as ``patch``-pixel tiles (pan band skipped)."""
    out: list[RasterSample] = []
    names = tuple(L7_FILES)
    bands = sensor_bands("landsat7_etm", names)
    for folder in _scene_folders(Path(root), "_mask2019.TIF"):
        if not in_split(folder.name, split, val_fraction):
            continue
        mtl = read_mtl(_find(folder, "_MTL.txt"))  # type: ignore[arg-type]
        mask = _find(folder, "_mask2019.TIF")
        assert mask is not None
        files = []
        for name in names:
            path = _find(folder, f"_{L7_FILES[name]}.TIF")
            if path is None:
                raise InputError(folder, f"lacks the {name} band file (*_{L7_FILES[name]}.TIF)")
            files.append(BandFile(str(path), 1, l7_radiometry(mtl, name[1:]), nodata=(0,)))
        shape = _shape(mask)
        for f in files:
            if _shape(Path(f.path)) != shape:
                raise InputError(f.path, f"is not on the mask's {shape} pixel grid")
        for r, c, h, w in tiles(shape, patch):
            out.append(
                RasterSample(
                    f"{folder.name}_{r}_{c}",
                    bands,
                    "l7irish",
                    tuple(files),
                    str(mask),
                    origin=(r, c),
                    size=(h, w),
                )  # fmt: skip
            )
    if not out:
        raise none_found(Path(root), "L7 Irish scenes (a folder with *_MTL.txt and *_mask2019.TIF)")
    return out


def _shape(path: Path) -> tuple[int, int]:
    from cloudmask_cli.training.sample import raster_shape

    return raster_shape(path)


# -- SPARCS -----------------------------------------------------------------------------------
def l8_radiometry(mtl: MTL, key: str) -> Radiometry:
    """DN -> TOA reflectance (with sun elevation) or brightness temperature for an OLI/TIRS band."""
    if key in ("10", "11"):
        mult, add = mtl.radiance(key)
        k1, k2 = mtl.thermal(key)
        return Radiometry(scale=mult, offset=add, k1=k1, k2=k2)
    mult, add = mtl.reflectance(key)
    return Radiometry(scale=mult, offset=add, divisor=math.sin(math.radians(mtl.sun_elevation)))


def sparcs(root: Path, split: str | None = None, val_fraction: float = 0.2) -> list[RasterSample]:
    """The 80 SPARCS subscenes (1000 x 1000, 30 m)."""
    root = Path(root)
    bands = sensor_bands("landsat8_oli_tirs", SPARCS_BANDS)
    out = []
    for data in sorted(root.rglob("*_data.tif")):
        sid = data.name[: -len("_data.tif")]
        if not in_split(sid, split, val_fraction):
            continue
        labels = data.with_name(f"{sid}_labels.tif")
        mtl_path = data.with_name(f"{sid}_mtl.txt")
        for p in (labels, mtl_path):
            if not p.is_file():
                raise InputError(data, f"has no {p.name} beside it")
        mtl = read_mtl(mtl_path)
        files = tuple(
            BandFile(str(data), i + 1, l8_radiometry(mtl, b.name[1:]), nodata=(0,))
            for i, b in enumerate(bands)
        )
        out.append(RasterSample(sid, bands, "sparcs", files, str(labels)))
    if not out:
        raise none_found(root, "SPARCS subscenes (*_data.tif)")
    return out


# -- 38-Cloud / 95-Cloud ----------------------------------------------------------------------
_SCENE_ID = re.compile(r"(L[COTE]0\d_\w+?_\d{6}_\d{8}_\d{8}_\d{2}_\w{2})")


def cloud38(
    root: Path, split: str | None = None, val_fraction: float = 0.1, mtl_dir: str | None = None
) -> list[RasterSample]:
    """38-Cloud / 95-Cloud training patches (the ones with a ``*_gt`` folder)."""
    root = Path(root)
    bands = sensor_bands("landsat8_oli_tirs", tuple(CLOUD38_BANDS.values()))
    out = []
    for red_dir in sorted(p for p in root.rglob("*_red") if p.is_dir()):
        prefix = red_dir.name[: -len("_red")]
        gt_dir = red_dir.with_name(f"{prefix}_gt")
        if not gt_dir.is_dir():
            continue  # test splits ship whole-scene ground truths only
        for red in sorted(red_dir.glob("red_*.TIF")) + sorted(red_dir.glob("red_*.tif")):
            rest = red.name[len("red_") :]
            if not in_split(rest, split, val_fraction):
                continue
            files = []
            scene = _SCENE_ID.search(rest)
            rad = _cloud38_radiometry(scene.group(1) if scene else None, mtl_dir)
            for colour in CLOUD38_BANDS:
                path = red_dir.with_name(f"{prefix}_{colour}") / f"{colour}_{rest}"
                if not path.is_file():
                    raise InputError(red, f"has no matching {path}")
                files.append(BandFile(str(path), 1, rad, nodata=(0,)))
            gt = gt_dir / f"gt_{rest}"
            if not gt.is_file():
                raise InputError(red, f"has no ground truth {gt}")
            out.append(RasterSample(Path(rest).stem, bands, "cloud38", tuple(files), str(gt)))
    if not out:
        raise none_found(root, "38-Cloud/95-Cloud patches (*_red/red_*.TIF with a *_gt folder)")
    return out


def _cloud38_radiometry(scene: str | None, mtl_dir: str | None) -> Radiometry:
    if mtl_dir and scene:
        path = Path(mtl_dir) / f"{scene}_MTL.txt"
        if path.is_file():
            return l8_radiometry(read_mtl(path), "4")  # OLI reflective bands share the rescaling
    return Radiometry(scale=2e-5, offset=-0.1)
