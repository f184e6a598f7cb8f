"""Synthetic bright ground: clear land rewritten as bare soil, sand or dry grass, labelled land.

Why: the real training data has almost no bright clear land, so a model learns "bright and
smooth = cloud" and calls deserts and dry fields cloud. Bright ground differs from cloud in what
the bands see, and this augmentation makes the model look at it:

* Reflectance rises from the blue to the SWIR (1.6 um) and drops a little at 2.2 um; a cloud is
  flat across the visible and NIR and darker in the SWIR. The spectrum is a mix of two
  end-members (dry grass / shrubland and bright sand) at a random level.
* The surface keeps its texture: each pixel keeps a compressed version of its brightness
  relative to the crop's median, so fields, roads and drainage stay visible.
* Daytime bare soil is warmer than the vegetation it replaces (cloud tops are colder): thermal
  bands are warmed by a few kelvin where the ground is rewritten.
* Top-of-atmosphere values: Rayleigh path reflectance is added (blue > green > red over dim
  ground, as in real scenes).
* Water vapour absorbs the surface signal in the 0.94 and 1.38 um bands as it does for any
  surface seen through the whole column (the cirrus band stays near zero).

It fires only on crops without labelled cloud (a haze left as it was would keep its old ground
beneath, with a seam). Valid pixels whose label allows land are rewritten, over the whole crop
or over patches (a semi-arid mosaic); their label becomes land. SAR, incidence angle and DEM are untouched. Clouds rendered afterwards by
`training.synthetic` then lie over bright ground too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

import numpy as np

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.schema import Probability, Settings, Span, schema, span
from cloudmask_cli.sensors import Band
from cloudmask_cli.training.synthetic import (
    REFLECTIVE,
    THERMAL,
    _band_samples,
    _wv_transmittance,
    fractal_noise,
)

_IDX = {c: i for i, c in enumerate(CLASSES)}
_LAND = _IDX["land"]
_CLOUD = [_IDX["thin_cloud"], _IDX["thick_cloud"]]

# Soil spectra relative to their reflectance at 1.65 um (nodes in nm; flat beyond the ends),
# shaped after laboratory soil and dry-vegetation spectra.
_SOIL_NM = np.array([450.0, 550.0, 650.0, 850.0, 1250.0, 1650.0, 2200.0])
_DRY_GRASS = np.array([0.25, 0.35, 0.42, 0.8, 0.92, 1.0, 0.8])
_SAND = np.array([0.45, 0.6, 0.75, 0.85, 0.95, 1.0, 0.88])


def soil_reflectance(
    bands: Sequence[Band], level: float, sandiness: float, haze: float = 0.0
) -> np.ndarray:
    """[B] band-averaged top-of-atmosphere reflectance of bare ground: ``level`` at 1.65 um,
    seen through the water-vapour column, plus ``haze`` of Rayleigh path reflectance at 450 nm
    (~lambda^-4: what makes clear top-of-atmosphere blue brighter than red)."""
    lam = _band_samples(bands)
    curve = np.interp(lam, _SOIL_NM, (1.0 - sandiness) * _DRY_GRASS + sandiness * _SAND)
    surface = level * curve * _wv_transmittance(lam, 0.0)
    return np.mean(surface + haze * (lam / 450.0) ** -4.0, axis=1).astype(np.float32)


@schema
class BrightGround(Settings):
    """Training augmentation: with probability ``p``, rewrite clear land as bright ground.

    ``level``: reflectance at 1.65 um; ``contrast``: exponent on each pixel's relative
    brightness (0 flat, 1 the original contrast); ``warming``: kelvin added to thermal bands;
    ``haze``: Rayleigh path reflectance at 450 nm;
    ``patchy``: probability that only patches of the crop (``cover`` of it) are rewritten.
    """

    p: Probability = 0.25
    level: Annotated[Span, span(0.0, 1.0)] = (0.2, 0.55)
    contrast: Annotated[Span, span(0.0, 2.0)] = (0.3, 1.0)
    warming: Annotated[Span, span(-30.0, 30.0)] = (0.0, 15.0)
    haze: Annotated[Span, span(0.0, 0.3)] = (0.03, 0.09)
    patchy: Probability = 0.5
    cover: Annotated[Span, span(0.0, 1.0)] = (0.3, 0.9)

    WHAT: ClassVar[str] = "bright ground"

    def __call__(
        self,
        x: np.ndarray,
        bands: Sequence[Band],
        possible: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        # Every draw happens whether or not it fires, so the stream after it stays aligned.
        fire = rng.random() < self.p
        level = rng.uniform(*self.level)
        sandiness = rng.random()
        contrast = rng.uniform(*self.contrast)
        haze = rng.uniform(*self.haze)
        warming = rng.uniform(*self.warming)
        patchy = rng.random() < self.patchy
        cover = rng.uniform(*self.cover)
        beta, outer = rng.uniform(3.0, 4.0), rng.uniform(16.0, 128.0)
        noise_seed = int(rng.integers(0, 2**31))
        if not fire or _cloudy(x, possible):
            return x, possible
        weight = patch_weight(x.shape[1:], noise_seed, beta, outer, cover, 2.0) if patchy else None
        return brighten_ground(
            x,
            bands,
            possible,
            level=level,
            sandiness=sandiness,
            contrast=contrast,
            warming=warming,
            haze=haze,
            weight=weight,
        )


def patch_weight(
    shape: tuple[int, int], seed: int, beta: float, outer: float, cover: float, sharpness: float
) -> np.ndarray:
    """[H, W] in [0, 1]: fractal patches over ``cover`` of the crop, smooth edges whose width
    falls as ``sharpness`` rises."""
    n = fractal_noise(shape, np.random.default_rng(seed), beta, outer)
    t = float(np.quantile(n[::2, ::2], 1.0 - cover))
    u = np.clip((n - np.float32(t)) * np.float32(sharpness), 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def checked(
    x: np.ndarray, bands: Sequence[Band], possible: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as float32 ``[N, H, W]`` and ``possible`` as bool ``[7, H, W]``, or ValueError."""
    x = np.asarray(x, dtype=np.float32)
    possible = np.asarray(possible, dtype=bool)
    if x.ndim != 3 or x.shape[0] != len(bands):
        raise ValueError(f"x must be [N, H, W] with N = len(bands) = {len(bands)}, got {x.shape}")
    if possible.shape != (len(CLASSES), *x.shape[1:]):
        raise ValueError(f"possible must be [{len(CLASSES)}, H, W], got {possible.shape}")
    return x, possible


def blend_spectrum(
    out: np.ndarray,
    x: np.ndarray,
    refl: Sequence[int],
    eligible: np.ndarray,
    spectrum: np.ndarray,
    contrast: float,
    w: np.ndarray,
) -> None:
    """Write into ``out`` the reflective bands ``refl`` of the ``eligible`` pixels: ``spectrum``
    (one value per band) times each pixel's brightness relative to their median, to the power
    ``contrast`` (the texture kept), blended with the old values by ``w``."""
    bright = np.nanmean(x[refl][:, eligible], axis=0)
    median = float(np.median(bright))
    rel = np.clip(bright / max(median, 1e-3), 0.2, 3.0) ** np.float32(contrast)
    new = np.multiply.outer(np.asarray(spectrum, np.float32), rel)
    old = x[refl][:, eligible]
    blended = old + w * (new - old)
    for j, i in enumerate(refl):
        out[i][eligible] = blended[j]


def _cloudy(x: np.ndarray, possible: np.ndarray, limit: float = 0.01) -> bool:
    """More than ``limit`` of the valid pixels may be cloud: real haze or cloud would keep its
    original ground underneath, with a seam against the rewritten ground around it."""
    valid = np.isfinite(x).all(axis=0)
    n = int(valid.sum())
    return n == 0 or int((possible[_CLOUD].any(axis=0) & valid).sum()) > limit * n


def brighten_ground(
    x: np.ndarray,
    bands: Sequence[Band],
    possible: np.ndarray,
    *,
    level: float,
    sandiness: float,
    contrast: float = 0.6,
    warming: float = 0.0,
    haze: float = 0.06,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite clear land of ``x`` ``[N, H, W]`` as bright ground; returns (x, possible).

    ``weight`` ``[H, W]`` in [0, 1] blends the original (0) and the new ground (1); None: 1.
    Pixels with weight > 0 become land.
    """
    x, possible = checked(x, bands, possible)
    refl = [i for i, b in enumerate(bands) if b.type == REFLECTIVE]
    therm = [i for i, b in enumerate(bands) if b.type == THERMAL]
    eligible = np.isfinite(x).all(axis=0) & possible[_LAND] & ~possible[_CLOUD].any(axis=0)
    if weight is not None:
        eligible &= weight > 0
    if not refl or not eligible.any():
        return x, possible
    out = x.copy()
    w = np.ones(int(eligible.sum()), np.float32) if weight is None else weight[eligible]
    soil = soil_reflectance([bands[i] for i in refl], level, sandiness, haze)
    blend_spectrum(out, x, refl, eligible, soil, contrast, w)
    for i in therm:
        out[i][eligible] = x[i][eligible] + w * np.float32(warming)
    # Land only, even where the label allowed shadow too (Biome's "clear"): a free shadow bit
    # lets the model call bright ground "shadow" at no cost, and on a crop without cloud an
    # unmarked shadow is rare.
    new_possible = possible.copy()
    new_possible[:, eligible] = False
    new_possible[_LAND, eligible] = True
    return out, new_possible


__all__ = ["BrightGround", "brighten_ground", "soil_reflectance"]
