"""Label review sheets: each sample's true-colour image beside its labels, one PNG per sample.

    cloudmask review examples/train-bundled.yaml --dataset oncloudn --out review/

writes ``<split>-<id>.png`` for every sample of the dataset (training and held-out) and an
``index.csv`` (id, split, labelled cloud share, the config's exclusion reason), so a person can
check labels against the imagery before training or scoring on them. The bundled configs'
``exclude`` lists were made this way. Label panel: white cloud, dark grey not cloud, mid grey
labelled "cloud or not" (partial labels), purple unlabelled or no data.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from cloudmask_cli.errors import InputError
from cloudmask_cli.sensors import Band
from cloudmask_cli.training.labels import ALL_BITS, BIT, NO_DATA_BITS, load_scheme
from cloudmask_cli.training.sample import RawSample

CLOUD_BITS = BIT["thin_cloud"] | BIT["thick_cloud"]
OTHER_BITS = ALL_BITS & ~CLOUD_BITS & ~NO_DATA_BITS
TRUE_COLOUR = (665.0, 560.0, 490.0)  # nm: red, green, blue
GAP = 8


def colour_bands(bands: tuple[Band, ...] | list[Band]) -> list[int]:
    """Indices of the reflectance bands nearest red, green and blue (one band: grey)."""
    refl = [i for i, b in enumerate(bands) if b.type == "reflectance" and b.wavelength]
    if not refl:
        raise InputError(None, "no reflectance band to show")

    def centre(i: int) -> float:
        lo, hi = bands[i].wavelength  # type: ignore[misc]
        return (lo + hi) / 2

    return [min(refl, key=lambda i: abs(centre(i) - nm)) for nm in TRUE_COLOUR]


def label_rgb(bits: np.ndarray) -> np.ndarray:
    """``(3, h, w)`` uint8 picture of a label's class sets (see the module docstring)."""
    cloud = bits & CLOUD_BITS
    rest = bits & OTHER_BITS
    out = np.empty((3, *bits.shape), dtype=np.uint8)
    out[:] = 128  # cloud or not
    out[:, (cloud != 0) & (rest == 0)] = 255
    out[:, (cloud == 0) & (rest != 0)] = 40
    out[:, (bits == 0) | (bits == NO_DATA_BITS)] = np.array([120, 40, 140], np.uint8)[:, None]
    return out


def sheet(sample: RawSample, max_size: int = 512) -> tuple[np.ndarray, float]:
    """``(3, h, 2w + gap)`` uint8 image | label, and the labelled-cloud share of the labelled
    pixels."""
    idx = colour_bands(sample.bands)
    x, label = sample.read(None, sorted(set(idx)))
    order = [sorted(set(idx)).index(i) for i in idx]
    bits = load_scheme(sample.scheme).bits(label, sample.id)
    step = max(1, -(-max(bits.shape) // max_size))
    rgb = np.nan_to_num(x[order][:, ::step, ::step], nan=0.0)
    bits = bits[::step, ::step]
    # a fixed stretch (0 - 0.3 reflectance, gamma 0.7), so scenes compare; clouds saturate
    img = (np.clip(rgb / 0.3, 0, 1) ** 0.7 * 255).astype(np.uint8)
    gap = np.full((3, img.shape[1], GAP), 255, np.uint8)
    labelled = (bits != 0) & (bits != NO_DATA_BITS)
    sure = labelled & ((bits & CLOUD_BITS) != 0) & ((bits & OTHER_BITS) == 0)
    share = float(sure.sum() / labelled.sum()) if labelled.any() else float("nan")
    return np.concatenate([img, gap, label_rgb(bits)], axis=2), share


def write_png(path: Path, image: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            path, "w", driver="PNG", width=image.shape[2], height=image.shape[1], count=3,
            dtype="uint8",
        ) as ds:  # fmt: skip
            ds.write(image)


def review(
    data: str | os.PathLike[str], out: str | os.PathLike[str], dataset: str | None = None
) -> Path:
    """Write the sheets of a config's datasets (or the one named ``dataset``); the index path."""
    from cloudmask_cli.training.adapters import open_dataset
    from cloudmask_cli.training.config import load_config

    cfg = load_config(data)
    specs = [s for s in cfg.datasets if dataset in (None, s.name)]
    if not specs:
        names = ", ".join(s.name for s in cfg.datasets)
        raise InputError(data, f"no dataset named {dataset!r} (has: {names})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.csv"
    with index.open("w", newline="", encoding="utf-8") as f:
        rows = csv.writer(f)
        rows.writerow(["dataset", "id", "split", "labelled_cloud", "excluded"])
        for spec in specs:
            for split in dict.fromkeys(s for s in (spec.train, spec.val) if s is not None):
                for sample in open_dataset(spec.kind, spec.path, split, spec.options):
                    image, share = sheet(sample)
                    write_png(out / f"{split}-{sample.id}.png", image)
                    reason = spec.exclude.get(sample.id, "")
                    rows.writerow([spec.name, sample.id, split, f"{share:.3f}", reason])
    return index
