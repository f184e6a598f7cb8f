"""The two real labelled sets kept beside the project (../shared/data/labelled), read in place.

- ``biome-patches``: ``{train,val}/{Images,Masks}/<name>.tif``; images float32, 8 bands red (B4),
  green (B3), blue (B2), NIR (B5), SWIR1 (B6), SWIR2 (B7), cirrus (B9) as TOA reflectance and
  TIR1 (B10) in kelvin; masks in the CCA codes. Masks without an image are skipped.
- ``oncloudn``: ``features/<chip>/B02|B03|B04|B08.tif`` (uint16 reflectance x 1e4) and
  ``labels/<chip>.tif`` (0 not cloud, 1 cloud). No split of its own: a hash of the chip id puts
  ``val_fraction`` of the chips in ``val``.
"""

from __future__ import annotations

from pathlib import Path

import rasterio

from cloudmask_cli.errors import InputError
from cloudmask_cli.scene import Radiometry
from cloudmask_cli.training.adapters.common import (
    BIOME_SHADOW,
    BandFile,
    RasterSample,
    in_split,
    none_found,
    require_dir,
    sensor_bands,
)

BIOME_PATCH_BANDS = ("B4", "B3", "B2", "B5", "B6", "B7", "B9", "B10")
ONCLOUDN_BANDS = ("B02", "B03", "B04", "B08")


def biome_patches(
    root: Path, split: str | None = "train", shadow: str = "auto"
) -> list[RasterSample]:
    """The Landsat 8 Biome patches; ``shadow``: ``auto`` (a patch whose mask holds any shadow
    pixel comes from a scene whose shadows were annotated, so its clear is never shadow; the
    others are partial), ``partial`` (clear may be shadow, as the data's README advises) or
    ``annotated`` (trust that clear is never shadow)."""
    schemes = {"partial": "biome", "annotated": "biome_with_shadow"}
    if shadow not in (*schemes, "auto"):
        raise ValueError(f"shadow must be auto, partial or annotated, got {shadow!r}")
    splits = [split] if split not in (None, "all") else ["train", "val"]
    bands = sensor_bands("landsat8_oli_tirs", BIOME_PATCH_BANDS)
    out = []
    for s in splits:
        folder = require_dir(Path(root) / s, f"Biome patches {s!r}")
        for image in sorted((folder / "Images").glob("*.tif")):
            mask = folder / "Masks" / image.name
            if not mask.is_file():
                raise InputError(image, f"has no mask {mask.name} in {mask.parent}")
            files = tuple(BandFile(str(image), i + 1) for i in range(len(bands)))
            scheme = schemes[_shadow_marked(mask) if shadow == "auto" else shadow]
            out.append(RasterSample(image.stem, bands, scheme, files, str(mask)))
    if not out:
        raise none_found(Path(root), "Biome patches (<split>/Images/*.tif)")
    return out


def oncloudn(
    root: Path, split: str | None = "train", val_fraction: float = 0.25
) -> list[RasterSample]:
    """The On Cloud N chips (Sentinel-2 L2A, 10 m)."""
    root = Path(root)
    features = require_dir(root / "features", "On Cloud N features")
    bands = sensor_bands("sentinel2_msi", ONCLOUDN_BANDS)
    rad = Radiometry(scale=1e-4)
    out = []
    for chip in sorted(p for p in features.iterdir() if p.is_dir()):
        if not in_split(chip.name, split, val_fraction):
            continue
        label = root / "labels" / f"{chip.name}.tif"
        if not label.is_file():
            raise InputError(chip, f"has no label {label}")
        files = []
        for b in ONCLOUDN_BANDS:
            path = chip / f"{b}.tif"
            if not path.is_file():
                raise InputError(chip, f"lacks band file {b}.tif")
            files.append(BandFile(str(path), 1, rad, nodata=(0,)))
        out.append(RasterSample(chip.name, bands, "oncloudn", tuple(files), str(label)))
    if not out:
        raise none_found(root, f"On Cloud N chips in split {split!r}")
    return out


def _shadow_marked(mask: Path) -> str:
    """``annotated`` when the CCA mask holds any shadow pixel (code 64), else ``partial``."""
    try:
        with rasterio.open(mask) as ds:
            marked = bool((ds.read(1) == BIOME_SHADOW).any())
    except rasterio.errors.RasterioError as exc:
        raise InputError(mask, f"cannot be read: {exc}") from None
    return "annotated" if marked else "partial"
