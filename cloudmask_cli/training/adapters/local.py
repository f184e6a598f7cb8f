"""The two real labelled sets kept beside the project (../shared/data/labelled), read in place.

- ``biome-patches``: ``{train,val}/{Images,Masks}/<name>.tif``; images float32, 8 bands red (B4),
  green (B3), blue (B2), NIR (B5), SWIR1 (B6), SWIR2 (B7), cirrus (B9) as TOA reflectance and
  TIR1 (B10) in kelvin; masks in the CCA codes. Masks without an image are skipped.
- ``oncloudn``: ``features/<chip>/B02|B03|B04|B08.tif`` (uint16 reflectance x 1e4) and
  ``labels/<chip>.tif`` (0 not cloud, 1 cloud). No split of its own: a hash of the chip id puts
  ``val_fraction`` of the chips in ``val``.
- ``sen1floods11``: Sen1Floods11 hand-labelled chips (`sen1floods11`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
from cloudmask_cli.training.sample import Box

# blue, green, red first, whatever the catalogue says (red, green, blue): over clear water the
# first band is ~3x the third, as TOA blue is to red (tests/test_training_adapters.py)
BIOME_PATCH_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B9", "B10")
ONCLOUDN_BANDS = ("B02", "B03", "B04", "B08")
# Sen1Floods11 S2Hand band order (the files' band descriptions say the same; read when present)
S1F11_S2 = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
S1F11_S1 = ("VV", "VH")
S1F11_NO_DATA = 255  # the scheme's code for the label's -1 (no data)


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


@dataclass
class Sen1Floods11Sample(RasterSample):
    """A Sen1Floods11 chip: its int16 label's -1 (no data) read as code `S1F11_NO_DATA`."""

    def _read(self, box: Box, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
        image, label = super()._read(box, bands)  # no label_lut: the raw int16 values
        # any other value outside 0..255 stays as it is, for the scheme to report
        return image, np.where(label == -1, S1F11_NO_DATA, label)


def sen1floods11(
    root: Path, split: str | None = "train", val_fraction: float = 0.25
) -> list[Sen1Floods11Sample]:
    """Sen1Floods11 hand-labelled chips (Bonafilia et al. 2020): ``S2/<chip>_S2Hand.tif``,
    ``S1/<chip>_S1Hand.tif``, ``Labels/<chip>_LabelHand.tif`` on one grid (EPSG:4326, 512 px).

    Bands: the 13 Sentinel-2 L1C bands, int16 DN in the order of the file's band descriptions
    (B1..B8, B8A, B9..B12), TOA reflectance = DN / 10000 with no offset, as the dataset
    documents (exported from Earth Engine's COPERNICUS/S2 collection; its chips predate
    processing baseline 04.00 and its -1000 offset), DN 0 = no data; then Sentinel-1 VV and VH,
    float32 dB (NaN = no data). Labels: 1 water, 0 not water, -1 no data (scheme
    ``sen1floods11``). No split of its own: a hash of the chip id puts ``val_fraction`` of the
    chips in ``val``.
    """
    root = Path(root)
    folder = require_dir(root / "S2", "Sen1Floods11 S2")
    s2_bands = sensor_bands("sentinel2_msi", [_s2_name(n) for n in S1F11_S2])
    bands = s2_bands + sensor_bands("sentinel1_sar", S1F11_S1)
    rad = Radiometry(scale=1e-4)
    out = []
    for s2 in sorted(folder.glob("*_S2Hand.tif")):
        chip = s2.name.removesuffix("_S2Hand.tif")
        if not in_split(chip, split, val_fraction):
            continue
        s1 = root / "S1" / f"{chip}_S1Hand.tif"
        label = root / "Labels" / f"{chip}_LabelHand.tif"
        for need in (s1, label):
            if not need.is_file():
                raise InputError(s2, f"has no {need.parent.name}/{need.name}")
        shape = _raster_shape(label)
        s2_idx, s1_idx = _band_indexes(s2, S1F11_S2, shape), _band_indexes(s1, S1F11_S1, shape)
        files = [BandFile(str(s2), s2_idx[n], rad, nodata=(0,)) for n in S1F11_S2]
        files += [BandFile(str(s1), s1_idx[n]) for n in S1F11_S1]
        out.append(Sen1Floods11Sample(chip, bands, "sen1floods11", tuple(files), str(label)))
    if not out:
        raise none_found(root, f"Sen1Floods11 chips (S2/*_S2Hand.tif) in split {split!r}")
    return out


def _s2_name(name: str) -> str:
    """Sen1Floods11's ``B1`` -> the bundled sensor's ``B01`` (``B8A`` as it is)."""
    return name if name == "B8A" else f"B{int(name[1:]):02d}"


def _raster_shape(path: Path) -> tuple[int, int]:
    try:
        with rasterio.open(path) as ds:
            return ds.height, ds.width
    except rasterio.errors.RasterioError as exc:
        raise InputError(path, f"cannot be read: {exc}") from None


def _band_indexes(path: Path, names: tuple[str, ...], shape: tuple[int, int]) -> dict[str, int]:
    """1-based index of each band name: by the file's band descriptions, else in ``names``
    order; the raster must have at least those bands, on the label's pixel grid."""
    try:
        with rasterio.open(path) as ds:
            desc, count, found = ds.descriptions, ds.count, (ds.height, ds.width)
    except rasterio.errors.RasterioError as exc:
        raise InputError(path, f"cannot be read: {exc}") from None
    if found != shape:
        raise InputError(path, f"is {found[0]}x{found[1]} pixels, its label {shape[0]}x{shape[1]}")
    if all(desc) and set(names) <= set(desc):
        return {n: desc.index(n) + 1 for n in names}
    if count < len(names):
        raise InputError(path, f"has {count} bands, expected {', '.join(names)}")
    return {n: i + 1 for i, n in enumerate(names)}


def _shadow_marked(mask: Path) -> str:
    """``annotated`` when the CCA mask holds any shadow pixel (code 64), else ``partial``."""
    try:
        with rasterio.open(mask) as ds:
            marked = bool((ds.read(1) == BIOME_SHADOW).any())
    except rasterio.errors.RasterioError as exc:
        raise InputError(mask, f"cannot be read: {exc}") from None
    return "annotated" if marked else "partial"
