"""Per-sample randomness of training: band subsets and geometric / radiometric augmentation.

Every draw (where a crop is centred, `CropFocus`; which bands; how they are jittered) comes
from the numpy ``Generator`` the dataset passes in (seeded per draw), so a sample's crop, bands
and augmentation are reproducible and independent of worker scheduling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import StrictBool

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.schema import schema
from cloudmask_cli.sensors import Band

OPTICAL = ("reflectance", "brightness_temperature")


@schema
class BandSampling:
    """Random band subsets so the model never relies on one band set (paper IV)."""

    enabled: StrictBool = True
    min_bands: int = 1  # fewest optical bands kept
    keep_all: float = 0.25  # probability of keeping every optical band
    # probability of adding back the thermal bands a subset left out: thermal is the cue that
    # separates bright warm ground from cold cloud, and only some sensors have it
    keep_thermal: float = 0.0
    sar_dropout: float = 0.5  # probability of dropping the SAR bands (when a sample has them)
    dem_dropout: float = 0.5  # probability of dropping the DEM

    def __post_init__(self) -> None:
        if self.min_bands < 1:
            raise ValueError(f"min_bands must be at least 1, got {self.min_bands!r}")
        for name in ("keep_all", "keep_thermal", "sar_dropout", "dem_dropout"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")


@schema
class CropFocus:
    """Crops centred on rarely decided classes.

    With probability ``p``, a training crop of a sample whose label decides one of ``classes``
    somewhere (the label allows that class alone) is centred on such a pixel, the class drawn
    uniformly among those the sample holds; otherwise the crop is placed uniformly. Why: water
    decided alone is a sliver of the training pixels and sits mostly beside clouds (T29UNU's
    loughs): placed uniformly, a crop rarely holds it (benchmarks/quality, recipe K).
    """

    p: float = 0.0
    classes: tuple[str, ...] = ("water", "snow")

    def __post_init__(self) -> None:
        if not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1], got {self.p!r}")
        unknown = [c for c in self.classes if c not in CLASSES[:-1]]
        if unknown or not self.classes:
            raise ValueError(f"classes: unknown or none {unknown} (known: {CLASSES[:-1]})")


@schema
class Augmentation:
    flips: StrictBool = True
    rotations: StrictBool = True  # multiples of 90 degrees
    brightness: float = 0.0  # reflectance bands scaled by a factor in [1 - b, 1 + b]
    # Radiometric jitter, applied after the synthetic clouds so that clouds, shadows and ground
    # all change together, as between sensors, calibrations, TOA and BOA, seasons and sun
    # heights: without it the model keys on absolute brightness (a 20 % gain moved its cloud
    # F1 by up to 30 points on unseen scenes). Reflectance bands only.
    gain: tuple[float, float] | None = None  # one factor per sample, log-uniform in [lo, hi]
    offset: float = 0.0  # one additive offset per sample, uniform in [-o, o]
    band_gain: float = 0.0  # and a factor per band, uniform in [1 - g, 1 + g]
    # TOA <-> BOA: path radiance a * (lambda / 490 nm) ** -k, a uniform in [-p, p] (added going
    # to TOA, removed going to BOA), k uniform in [1, 4] (aerosol to Rayleigh)
    path_radiance: float = 0.0
    # Ground sampling distance: a crop covers ``crop * f`` pixels of the sample, resampled to
    # ``crop`` (f log-uniform in [lo, hi]; > 1 coarser, < 1 finer), so cloud and shadow sizes
    # in pixels, and the band sets that come with each resolution, are not tied together
    # (On Cloud N is 4 bands at 10 m only, the SCL tile 12 bands at 60 m only).
    scale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.scale is not None and not 0.25 <= self.scale[0] <= self.scale[1] <= 4:
            raise ValueError(f"scale must be [lo, hi] within [0.25, 4], got {list(self.scale)}")
        if self.gain is not None and not 0 < self.gain[0] <= self.gain[1]:
            raise ValueError(f"gain must be [lo, hi] with 0 < lo <= hi, got {list(self.gain)}")
        for name in ("offset", "band_gain", "path_radiance"):
            v = getattr(self, name)
            if not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")

    @property
    def jitters(self) -> bool:
        return bool(self.gain or self.offset or self.band_gain or self.path_radiance)


def choose_bands(bands: Sequence[Band], rng: np.random.Generator, cfg: BandSampling) -> list[int]:
    """Indices of the bands to feed (sorted); at least one band, at least one optical if any."""
    if not cfg.enabled:
        return list(range(len(bands)))
    optical = [i for i, b in enumerate(bands) if b.type in OPTICAL]
    sar = [i for i, b in enumerate(bands) if b.type.startswith("sar_")]
    dem = [i for i, b in enumerate(bands) if b.type == "dem"]
    chosen: list[int] = []
    if optical:
        keep_all = rng.random() < cfg.keep_all
        k = int(rng.integers(min(max(cfg.min_bands, 1), len(optical)), len(optical) + 1))
        picked = rng.permutation(optical)[:k]
        chosen += optical if keep_all else [int(i) for i in picked]
        thermal = [i for i in optical if bands[i].type == "brightness_temperature"]
        # drawn only when enabled, so configs without it keep their random stream
        if cfg.keep_thermal > 0 and thermal and rng.random() < cfg.keep_thermal:
            chosen = sorted(set(chosen) | set(thermal))
    if sar and not rng.random() < cfg.sar_dropout:
        chosen += sar
    if dem and not rng.random() < cfg.dem_dropout:
        chosen += dem
    return sorted(chosen) or list(range(len(bands)))


def draw_scale(rng: np.random.Generator, cfg: Augmentation) -> float:
    """The ground-sampling factor of one crop (1.0, and nothing drawn, when off)."""
    if cfg.scale is None:
        return 1.0
    return float(np.exp(rng.uniform(*np.log(cfg.scale))))


def resample(x: np.ndarray, bits: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``[k, h, w]`` and label bits ``[h, w]`` resampled to ``size`` x ``size``: the image
    by area averaging (coarser) or bilinear interpolation (finer) over its valid pixels only
    (a pixel whose neighbourhood is mostly no data stays NaN), the labels by nearest neighbour
    (a set of possible classes is not averaged)."""
    import torch
    import torch.nn.functional as F

    h, w = bits.shape
    if (h, w) == (size, size):
        return x, bits
    valid = np.isfinite(x)
    t = torch.from_numpy(np.where(valid, x, 0.0).astype(np.float32))[None]
    v = torch.from_numpy(valid.astype(np.float32))[None]
    if h > size or w > size:
        num, den = F.adaptive_avg_pool2d(t, size), F.adaptive_avg_pool2d(v, size)
    else:
        num = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
        den = F.interpolate(v, size=(size, size), mode="bilinear", align_corners=False)
    num_px, den_px = num[0].numpy(), den[0].numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den_px >= 0.5, num_px / np.maximum(den_px, 1e-6), np.nan).astype(np.float32)
    rows = np.minimum(((np.arange(size) + 0.5) * h / size).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size) + 0.5) * w / size).astype(np.int64), w - 1)
    return out, np.ascontiguousarray(bits[rows[:, None], cols[None, :]])


def augment(
    x: np.ndarray,
    bits: np.ndarray,
    bands: Sequence[Band],
    rng: np.random.Generator,
    cfg: Augmentation,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip / rotate image ``[k, h, w]`` and label bits ``[h, w]`` together; scale reflectance."""
    flip_h, flip_v = rng.random() < 0.5, rng.random() < 0.5
    turns = int(rng.integers(0, 4))
    factor = rng.uniform(1.0 - cfg.brightness, 1.0 + cfg.brightness)
    if cfg.flips and flip_h:
        x, bits = x[:, :, ::-1], bits[:, ::-1]
    if cfg.flips and flip_v:
        x, bits = x[:, ::-1, :], bits[::-1, :]
    if cfg.rotations and turns:
        x, bits = np.rot90(x, turns, axes=(1, 2)), np.rot90(bits, turns)
    x = np.ascontiguousarray(x)
    if cfg.brightness > 0:
        refl = [i for i, b in enumerate(bands) if b.type == "reflectance"]
        x[refl] *= np.float32(factor)
    return x, np.ascontiguousarray(bits)


def jitter_radiometry(
    x: np.ndarray, bands: Sequence[Band], rng: np.random.Generator, cfg: Augmentation
) -> np.ndarray:
    """``x`` with the reflectance bands under a random gain, offset, per-band gain and path
    radiance (see `Augmentation`); nothing is drawn when none is enabled (random stream kept)."""
    if not cfg.jitters:
        return x
    refl = [i for i, b in enumerate(bands) if b.type == "reflectance"]
    if not refl:
        return x
    centre = np.array([sum(bands[i].wavelength or (490, 490)) / 2 for i in refl], np.float32)
    gain = np.exp(rng.uniform(*np.log(cfg.gain))) if cfg.gain else 1.0
    per_band = rng.uniform(1 - cfg.band_gain, 1 + cfg.band_gain, len(refl))
    offset = rng.uniform(-cfg.offset, cfg.offset)
    amp, k = rng.uniform(-cfg.path_radiance, cfg.path_radiance), rng.uniform(1.0, 4.0)
    scale = (gain * per_band).astype(np.float32)[:, None, None]
    add = (offset + amp * (centre / 490.0) ** -k).astype(np.float32)[:, None, None]
    x = x.copy()
    x[refl] = x[refl] * scale + add
    return x
