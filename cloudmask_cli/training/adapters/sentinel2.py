"""Sentinel-2 datasets: CloudSEN12, the Cloud Mask Catalogue, KappaSet, and L2A SCL weak labels.

Layouts (as distributed):

- ``cloudsen12`` (GeoTIFF release): ``<root>/<roi_id>/<s2_id>/S2L1C.tif`` (13 bands named in the
  band descriptions, reflectance x 1e4), ``S2L2A.tif`` (``level: l2a``), ``S1.tif`` (VV, VH,
  angle; with ``sar: true``), ``labels/manual_hq.tif``; ``cloudsen12_metadata.csv`` (``roi_id``,
  ``s2_id_gee``, ``label_type``, ``test``: 0 train, 1 val, 2 test) when present.
- ``cmc``: ``subscenes/<scene>.npy`` (1022 x 1022 x 13 float TOA reflectance, band order B01..B12
  with B8A and B10), ``masks/<scene>.npy`` (one-hot CLEAR, CLOUD, CLOUD_SHADOW) and
  ``classification_tags.csv`` (``shadows_marked``).
- ``kappaset``: NetCDF subtiles ``*.nc`` with one variable per band (``B01`` ... ``B12``) and
  ``Label``; the bands hold DN / 65535 (so ``scale`` 6.5535 gives reflectance; override it).
- ``scl``: Sentinel-2 L2A products (``.SAFE`` folders or zips) read by the project's reader; the
  SCL raster (``IMG_DATA/R20m|R60m/*_SCL_*.jp2``) is resampled (nearest) onto the working grid.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from cloudmask_cli.errors import InputError, first_line
from cloudmask_cli.inference.tiling import tiles
from cloudmask_cli.scene import Radiometry
from cloudmask_cli.training.adapters.common import (
    BandFile,
    RasterSample,
    SceneSample,
    in_split,
    none_found,
    open_scene,
    sensor_bands,
)
from cloudmask_cli.training.sample import Box, RawSample

S2_BANDS = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
CS12_SPLITS = {"train": "0", "val": "1", "test": "2"}


def _s2_name(description: str) -> str | None:
    """ "B1" / "B01" / "B8A" -> the bundled sensor's band name, else None."""
    d = description.strip().upper()
    if d == "B8A":
        return d
    if d.startswith("B") and d[1:].isdigit():
        name = f"B{int(d[1:]):02d}"
        return name if name in S2_BANDS else None
    return None


def _descriptions(path: Path) -> list[str]:
    try:
        with rasterio.open(path) as ds:
            return [d or "" for d in ds.descriptions]
    except RasterioError as exc:
        raise InputError(path, f"cannot read raster ({first_line(exc)})") from None


# -- CloudSEN12 -------------------------------------------------------------------------------
def cloudsen12(
    root: Path,
    split: str | None = "train",
    level: str = "l1c",
    sar: bool = False,
    val_fraction: float = 0.1,
) -> list[RasterSample]:
    """CloudSEN12 high-quality patches (509 x 509, 10 m)."""
    root = Path(root)
    image_name = {"l1c": "S2L1C.tif", "l2a": "S2L2A.tif"}.get(level)
    if image_name is None:
        raise ValueError(f"level must be l1c or l2a, got {level!r}")
    folders = _cloudsen12_folders(root, split, val_fraction)
    out = []
    for folder in folders:
        image = folder / image_name
        label = folder / "labels" / "manual_hq.tif"
        if not (image.is_file() and label.is_file()):
            raise InputError(folder, f"lacks {image_name} or labels/manual_hq.tif")
        files, names = [], []
        descriptions = _descriptions(image)
        for i, d in enumerate(descriptions):
            name = _s2_name(d) if any(descriptions) else (S2_BANDS[i] if i < 13 else None)
            if name is not None:
                files.append(BandFile(str(image), i + 1, Radiometry(scale=1e-4), nodata=(0,)))
                names.append(name)
        bands = sensor_bands("sentinel2_msi", names)
        if sar:
            s1 = folder / "S1.tif"
            if not s1.is_file():
                raise InputError(folder, "has no S1.tif (sar: true)")
            kinds = {"VV": "VV", "VH": "VH", "ANGLE": "angle"}
            desc = [d.upper() for d in _descriptions(s1)]
            present = [(desc.index(k) + 1, v) for k, v in kinds.items() if k in desc]
            files += [BandFile(str(s1), i) for i, _ in present]
            bands += sensor_bands("sentinel1_sar", [v for _, v in present])
        sid = f"{folder.parent.name}_{folder.name}"
        out.append(RasterSample(sid, bands, "cloudsen12", tuple(files), str(label)))
    if not out:
        raise none_found(
            root, f"CloudSEN12 patches (<roi>/<s2_id>/labels/manual_hq.tif) in split {split!r}"
        )
    return out


def _cloudsen12_folders(root: Path, split: str | None, val_fraction: float) -> list[Path]:
    meta = root / "cloudsen12_metadata.csv"
    if meta.is_file():
        with meta.open(newline="") as f:
            rows = list(csv.DictReader(f))
        keep = []
        for row in rows:
            if row.get("label_type", "high") != "high":
                continue
            if split not in (None, "all") and "test" in row:
                if split not in CS12_SPLITS:
                    raise ValueError(
                        f"CloudSEN12 split must be train, val, test or all, got {split!r}"
                    )
                if str(row["test"]).strip() != CS12_SPLITS[split]:
                    continue
            folder = root / row["roi_id"] / row["s2_id_gee"]
            if folder.is_dir() and folder not in keep:
                keep.append(folder)
        return keep
    found = sorted(p.parent.parent for p in root.glob("*/*/labels/manual_hq.tif"))
    return [f for f in found if in_split(f"{f.parent.name}_{f.name}", split, val_fraction)]


# -- Sentinel-2 Cloud Mask Catalogue ----------------------------------------------------------
@dataclass
class NpySample(RawSample):
    """A Cloud Mask Catalogue subscene: ``[H, W, 13]`` reflectance and a one-hot ``[H, W, 3]``
    mask, memory-mapped so a crop reads only its rows."""

    id: str
    bands: tuple
    scheme: str
    image_path: str
    mask_path: str

    @cached_property
    def shape(self) -> tuple[int, int]:
        return tuple(self._load(self.mask_path).shape[:2])

    @staticmethod
    def _load(path: str) -> np.ndarray:
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(path, f"not a readable .npy array ({exc})") from None

    def _read(self, box: Box, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
        r, c, h, w = box
        img = self._load(self.image_path)
        if img.ndim != 3 or img.shape[2] != len(self.bands):
            raise InputError(
                self.image_path, f"expected [H, W, {len(self.bands)}], got {img.shape}"
            )
        image = np.moveaxis(
            np.asarray(img[r : r + h, c : c + w][:, :, bands], dtype=np.float32), -1, 0
        )
        onehot = np.asarray(self._load(self.mask_path)[r : r + h, c : c + w])
        label = np.where(onehot.any(axis=-1), onehot.argmax(axis=-1), 255).astype(np.uint8)
        return image, label


def cmc(root: Path, split: str | None = None, val_fraction: float = 0.1) -> list[NpySample]:
    """The 513 Cloud Mask Catalogue subscenes (20 m)."""
    root = Path(root)
    tags = {}
    tag_file = root / "classification_tags.csv"
    if tag_file.is_file():
        with tag_file.open(newline="") as f:
            tags = {row["scene"]: row for row in csv.DictReader(f)}
    bands = sensor_bands("sentinel2_msi", S2_BANDS)
    out = []
    for image in sorted((root / "subscenes").glob("*.npy")):
        if not in_split(image.stem, split, val_fraction):
            continue
        mask = root / "masks" / image.name
        if not mask.is_file():
            raise InputError(image, f"has no mask {mask}")
        marked = str(tags.get(image.stem, {}).get("shadows_marked", "0")).strip() in (
            "1",
            "True",
            "true",
        )
        out.append(
            NpySample(
                image.stem, bands, "cmc" if marked else "cmc_no_shadow", str(image), str(mask)
            )
        )
    if not out:
        raise none_found(root, "Cloud Mask Catalogue subscenes (subscenes/*.npy)")
    return out


# -- KappaSet ---------------------------------------------------------------------------------
def kappaset(
    root: Path,
    split: str | None = None,
    val_fraction: float = 0.1,
    scale: float = 6.5535,
    offset: float = 0.0,
) -> list[RasterSample]:
    """KappaSet subtiles (512 x 512, 10 m)."""
    root = Path(root)
    rad = Radiometry(scale=scale, offset=offset)
    out = []
    for nc in sorted(root.rglob("*.nc")):
        if not in_split(nc.stem, split, val_fraction):
            continue
        try:
            with rasterio.open(nc) as ds:
                variables = [s.rsplit(":", 1)[-1] for s in ds.subdatasets]
        except RasterioError as exc:
            raise InputError(nc, f"cannot read NetCDF ({first_line(exc)})") from None
        if "Label" not in variables:
            raise InputError(nc, "has no Label variable")
        names = [b for b in S2_BANDS if b in variables]
        if not names:
            raise InputError(nc, "has no Sentinel-2 band variables (B01 ... B12)")
        files = tuple(BandFile(f'NETCDF:"{nc}":{b}', 1, rad, nodata=(0,)) for b in names)
        bands = sensor_bands("sentinel2_msi", names)
        out.append(RasterSample(nc.stem, bands, "kappaset", files, f'NETCDF:"{nc}":Label'))
    if not out:
        raise none_found(root, "KappaSet subtiles (*.nc)")
    return out


# -- Sentinel-2 L2A scene classification ------------------------------------------------------
def _products(root: Path) -> list[Path]:
    root = Path(root)
    if root.name.endswith(".SAFE") or root.suffix == ".zip":
        return [root]
    found = sorted(p for p in root.iterdir() if p.name.endswith(".SAFE") or p.suffix == ".zip")
    if not found:
        raise none_found(root, "Sentinel-2 L2A products (*.SAFE or *.zip)")
    return found


def find_scl(product: Path, resolution: float) -> str:
    """GDAL path of a product's SCL raster, the resolution closest to ``resolution`` first."""
    order = ["R60m", "R20m"] if resolution >= 60 else ["R20m", "R60m"]
    if product.suffix == ".zip":
        with zipfile.ZipFile(product) as z:
            names = [n for n in z.namelist() if "_SCL_" in n and n.endswith(".jp2")]
        prefix = f"/vsizip/{product}/"
    else:
        names = [
            str(p.relative_to(product)) for p in product.glob("GRANULE/*/IMG_DATA/R*m/*_SCL_*.jp2")
        ]
        prefix = f"{product}/"
    for folder in order:
        for n in sorted(names):
            if f"/{folder}/" in f"/{n}":
                return prefix + n
    raise InputError(
        product, "has no scene classification (IMG_DATA/R20m|R60m/*_SCL_*.jp2): not an L2A product?"
    )


def _has_data(scl_path: str, tile: tuple[int, int, int, int]) -> bool:
    """Whether a tile of the SCL raster (same grid) has any pixel that is not no data (0)."""
    r, c, h, w = tile
    with rasterio.open(scl_path) as ds:
        return bool(ds.read(1, window=((r, r + h), (c, c + w))).any())


def _block_split(block: list[int], tile: tuple[int, int, int, int]) -> str | None:
    """ "val" inside the block, "train" clear of it, None when the tile straddles its edge."""
    r0, c0, r1, c1 = block
    r, c, h, w = tile
    if r >= r0 and c >= c0 and r + h <= r1 and c + w <= c1:
        return "val"
    if r + h <= r0 or r >= r1 or c + w <= c0 or c >= c1:
        return "train"
    return None


def scl(root: Path, split: str | None = None, resolution: float = 60.0, patch: int = 512,
        val_fraction: float = 0.1, val_block: list[int] | None = None) -> list[SceneSample]:  # fmt: skip
    """L2A products tiled into ``patch``-pixel samples at ``resolution`` m, SCL as labels.

    ``val_block`` ``[row0, col0, row1, col1]`` (pixels of that grid) holds out a spatial
    block: tiles inside it are the ``val`` split, tiles touching it are in neither split, so
    no training pixel lies in (or overlaps) the validation block. Without it the split is a
    hash of the tile id.
    """
    out = []
    for product in _products(Path(root)):
        label = find_scl(product, resolution)
        scene = open_scene(str(product), resolution, ())
        bands = tuple(b.band for b in scene.bands)
        for r, c, h, w in tiles(scene.shape, patch):
            sid = f"{product.name.split('.')[0]}_{r}_{c}"
            if val_block is not None:
                keep = _block_split(val_block, (r, c, h, w)) == split or split in (None, "all")
            else:
                keep = in_split(sid, split, val_fraction)
            if keep and _has_data(label, (r, c, h, w)):
                out.append(
                    SceneSample(sid, bands, "scl", str(product), label, (r, c), (h, w), resolution)
                )
    if not out:
        raise none_found(Path(root), f"SCL tiles in split {split!r}")
    return out
