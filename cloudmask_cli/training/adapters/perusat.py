"""CloudPeru2 (Morales et al. 2019): PerúSat-1 tiles labelled cloud / non-cloud.

Layout: an ``images`` folder of 4-band GeoTIFF tiles and a ``masks`` folder with one mask per
tile of the same stem (``.tif`` or ``.png``; any value > 0 is cloud), anywhere under the root.
``band_order`` names the image bands (default red, green, blue, nir); integer images need
``scale`` (and ``offset``) to become reflectance: the dataset does not say, so nothing is guessed.
"""

from __future__ import annotations

from pathlib import Path

import rasterio

from cloudmask_cli.errors import InputError
from cloudmask_cli.scene import Radiometry
from cloudmask_cli.training.adapters.common import (
    BandFile,
    RasterSample,
    in_split,
    none_found,
    sensor_bands,
)

MASK_LUT = (0,) + (1,) * 255  # non-zero -> cloud


def cloudperu2(
    root: Path,
    split: str | None = None,
    band_order: str = "red,green,blue,nir",
    scale: float | None = None,
    offset: float = 0.0,
    val_fraction: float = 0.1,
) -> list[RasterSample]:
    """CloudPeru2 tiles."""
    root = Path(root)
    names = [n.strip() for n in band_order.split(",")]
    bands = sensor_bands("perusat1_naomi", names)
    out = []
    for images in sorted(p for p in root.rglob("*") if p.is_dir() and p.name.lower() == "images"):
        masks = next(
            (p for p in images.parent.iterdir() if p.is_dir() and p.name.lower() == "masks"), None
        )
        if masks is None:
            raise InputError(images, "has no sibling masks folder")
        for image in sorted(images.glob("*.tif")) + sorted(images.glob("*.TIF")):
            if not in_split(image.stem, split, val_fraction):
                continue
            mask = next(
                (m for m in masks.glob(f"{image.stem}.*") if m.suffix.lower() in (".tif", ".png")),
                None,
            )
            if mask is None:
                raise InputError(image, f"has no mask {image.stem}.tif|png in {masks}")
            with rasterio.open(image) as ds:
                count, dtype = ds.count, ds.dtypes[0]
            if count != len(names):
                raise InputError(image, f"has {count} bands; band_order names {len(names)}")
            if scale is None and not dtype.startswith("float"):
                raise InputError(
                    image, f"is {dtype}: give the DN -> reflectance scale (option scale)"
                )
            rad = Radiometry(scale=1.0 if scale is None else scale, offset=offset)
            files = tuple(BandFile(str(image), i + 1, rad) for i in range(count))
            out.append(
                RasterSample(image.stem, bands, "cloudperu2", files, str(mask), label_lut=MASK_LUT)
            )
    if not out:
        raise none_found(root, "CloudPeru2 tiles (images/*.tif with masks/)")
    return out
