"""Synthetic snow and water: patches of a clear crop rewritten as snow or open water, labelled so.

Why: the labelled data holds a handful of snow and lake pixels, so the model learns neither
class. It calls clear snow and sea ice cloud (bright in the visible, like a cloud) and lakes cloud
shadow (dark, like a shadow). Both differ from cloud and shadow in what the bands see, the cues
every rule-based mask uses (Fmask's snow and water tests, NDSI, MNDWI):

* Snow and ice are as bright as cloud in the visible and NIR but dark at 1.6 and 2.2 um (ice
  absorbs there; coarse old grains more than fresh snow), and at or below 0 degC in the thermal.
  A cloud stays bright at 1.6 um.
* Open water is darker in the NIR and SWIR than in the visible (clear water has its peak in the
  blue-green, turbid water in the green-red) and smooth; a cloud shadow keeps the spectral shape
  of the ground it falls on, dimmed and bluer. SAR backscatter over calm water is low.

The spectra are mixes of end-members (fresh / old snow; clear / turbid water) at a random level,
seen through the water-vapour column, plus Rayleigh path reflectance (top of atmosphere). Snow
keeps a little of the crop's texture (terrain shading), water almost none. Rewritten only on
crops without labelled cloud (as bright ground, `training.ground`), over fractal patches (lakes,
snow fields) or, for snow, sometimes the whole crop. Where a patch's soft edge mixes old and new
ground, the label allows both. Snow only where a band fed sees the difference from cloud (SWIR
near 1.6 um or thermal): on RGB + NIR alone a snow field is a guess. Clouds and shadows rendered afterwards by `training.synthetic`
then lie over snow and water too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

import numpy as np

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.schema import Probability, Settings, Span, schema, span
from cloudmask_cli.sensors import Band
from cloudmask_cli.training.ground import _cloudy, blend_spectrum, checked, patch_weight
from cloudmask_cli.training.synthetic import (
    REFLECTIVE,
    THERMAL,
    _band_samples,
    _wv_transmittance,
)

_IDX = {c: i for i, c in enumerate(CLASSES)}
_CLEAR = [_IDX["land"], _IDX["water"], _IDX["snow"]]
_CLOUD = [_IDX["thin_cloud"], _IDX["thick_cloud"]]

# Surface reflectance relative to the visible (nodes in nm; flat beyond the ends), shaped after
# measured snow spectra (fresh: small grains; old: large grains absorb more in the SWIR).
_SNOW_NM = np.array([450.0, 550.0, 650.0, 850.0, 1030.0, 1250.0, 1650.0, 2200.0])
_FRESH_SNOW = np.array([1.0, 0.99, 0.97, 0.9, 0.75, 0.55, 0.12, 0.06])
_OLD_SNOW = np.array([1.0, 0.98, 0.94, 0.8, 0.55, 0.3, 0.03, 0.01])
# Water-leaving reflectance (absolute), clear deep water and turbid (sediment-laden) water.
_WATER_NM = np.array([450.0, 550.0, 650.0, 750.0, 850.0, 1650.0, 2200.0])
_CLEAR_WATER = np.array([0.06, 0.045, 0.02, 0.008, 0.005, 0.002, 0.001])
_TURBID_WATER = np.array([0.07, 0.1, 0.09, 0.05, 0.03, 0.006, 0.003])
_SAR = ("sar_vv", "sar_vh")


def snow_reflectance(
    bands: Sequence[Band], level: float, age: float, haze: float = 0.0
) -> np.ndarray:
    """[B] band-averaged top-of-atmosphere reflectance of snow: ``level`` in the visible,
    ``age`` 0 (fresh) .. 1 (old, coarse grains), plus Rayleigh path reflectance ``haze``."""
    lam = _band_samples(bands)
    curve = np.interp(lam, _SNOW_NM, (1.0 - age) * _FRESH_SNOW + age * _OLD_SNOW)
    surface = level * curve * _wv_transmittance(lam, 0.0)
    return np.mean(surface + haze * (lam / 450.0) ** -4.0, axis=1).astype(np.float32)


def water_reflectance(
    bands: Sequence[Band], turbidity: float, brightness: float = 1.0, haze: float = 0.0
) -> np.ndarray:
    """[B] band-averaged top-of-atmosphere reflectance of open water (``turbidity`` 0 clear ..
    1 turbid, scaled by ``brightness``), plus Rayleigh path reflectance ``haze``."""
    lam = _band_samples(bands)
    curve = np.interp(lam, _WATER_NM, (1.0 - turbidity) * _CLEAR_WATER + turbidity * _TURBID_WATER)
    surface = brightness * curve * _wv_transmittance(lam, 0.0)
    return np.mean(surface + haze * (lam / 450.0) ** -4.0, axis=1).astype(np.float32)


@schema
class SnowAndWater(Settings):
    """Training augmentation: with probability ``p``, patches of a clear crop become snow (with
    probability ``snow``) or open water. ``snow_level``: visible reflectance of the snow;
    ``snow_cover`` / ``water_cover``: the share of the crop a patch covers; ``whole_snow``: the
    probability that snow covers the whole crop; ``haze``: Rayleigh path reflectance at 450 nm;
    ``snow_kelvin``: snow surface temperature."""

    p: Probability = 0.3
    snow: Probability = 0.5
    snow_level: Annotated[Span, span(0.0, 1.5)] = (0.35, 0.95)
    snow_cover: Annotated[Span, span(0.0, 1.0)] = (0.2, 0.9)
    water_cover: Annotated[Span, span(0.0, 1.0)] = (0.05, 0.5)
    whole_snow: Probability = 0.25
    haze: Annotated[Span, span(0.0, 0.3)] = (0.0, 0.08)
    snow_kelvin: Annotated[Span, span(150.0, 274.0)] = (245.0, 273.0)

    WHAT: ClassVar[str] = "snow and water"

    def __call__(
        self,
        x: np.ndarray,
        bands: Sequence[Band],
        possible: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        # Every draw happens whether or not it fires, so the stream after it stays aligned.
        fire = rng.random() < self.p
        is_snow = rng.random() < self.snow
        level = rng.uniform(*self.snow_level)
        age, turbidity = rng.random(), rng.random() ** 2
        water_gain = rng.uniform(0.7, 1.4)
        haze = rng.uniform(*self.haze)
        kelvin = rng.uniform(*self.snow_kelvin)
        cooling = rng.uniform(0.0, 6.0)
        whole = rng.random() < self.whole_snow
        cover = rng.uniform(*(self.snow_cover if is_snow else self.water_cover))
        beta, outer = rng.uniform(2.5, 3.5), rng.uniform(16.0, 128.0)
        noise_seed = int(rng.integers(0, 2**31))
        refl = [b for b in bands if b.type == REFLECTIVE]
        if not fire or not refl or _cloudy(x, possible) or (is_snow and not _sees_snow(bands)):
            return x, possible
        weight = None
        if not (is_snow and whole):  # narrower soft edges than bright ground's
            weight = patch_weight(x.shape[1:], noise_seed, beta, outer, cover, 4.0)
        if is_snow:
            spectrum = snow_reflectance(refl, level, age, haze)
            return rewrite_surface(x, bands, possible, "snow", spectrum, 0.4, kelvin, weight)
        spectrum = water_reflectance(refl, turbidity, water_gain, haze)
        return rewrite_surface(x, bands, possible, "water", spectrum, 0.05, -cooling, weight)


def _sees_snow(bands: Sequence[Band]) -> bool:
    """A band that tells snow from cloud (SWIR near 1.6 um or thermal): without one, a snow
    field looks like a cloud deck in every band fed, and its label would teach a guess."""
    for b in bands:
        if b.type == THERMAL:
            return True
        if b.type == REFLECTIVE and b.wavelength and 1500 <= sum(b.wavelength) / 2 <= 1800:
            return True
    return False


def rewrite_surface(
    x: np.ndarray,
    bands: Sequence[Band],
    possible: np.ndarray,
    surface: str,
    spectrum: np.ndarray,
    contrast: float,
    thermal: float,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite the clear pixels of ``x`` ``[N, H, W]`` as ``surface`` ("snow" or "water") with
    the reflectance ``spectrum`` (one value per reflective band, in order), keeping each pixel's
    relative brightness to the power ``contrast``; returns (x, possible).

    ``thermal``: snow, the surface temperature in kelvin; water, kelvin added to the old value.
    ``weight`` ``[H, W]`` in [0, 1] blends the old (0) and new (1) surface; None: 1 everywhere.
    The label becomes ``surface`` where the weight is at least 0.5, and allows both the old
    classes and ``surface`` where it is between 0 and 0.5.
    """
    x, possible = checked(x, bands, possible)
    refl = [i for i, b in enumerate(bands) if b.type == REFLECTIVE]
    if len(spectrum) != len(refl):
        raise ValueError(f"spectrum has {len(spectrum)} values for {len(refl)} reflective bands")
    eligible = (
        np.isfinite(x).all(axis=0) & possible[_CLEAR].any(axis=0) & ~possible[_CLOUD].any(axis=0)
    )
    if weight is not None:
        eligible &= weight > 0
    if not refl or not eligible.any():
        return x, possible
    out = x.copy()
    w = np.ones(int(eligible.sum()), np.float32) if weight is None else weight[eligible]
    blend_spectrum(out, x, refl, eligible, spectrum, contrast, w)
    for i, b in enumerate(bands):
        v = x[i][eligible]
        if b.type == THERMAL:
            target = (
                np.float32(thermal) + 0.2 * (v - np.median(v)) if surface == "snow" else v + thermal
            )
            out[i][eligible] = v + w * (target - v)
        elif b.type in _SAR and surface == "water":
            # calm open water: specular, low backscatter (VH a few dB below VV)
            calm = np.float32(-20.0 if b.type == "sar_vv" else -26.0)
            out[i][eligible] = v + w * (calm - v)
    new_possible = possible.copy()
    k = _IDX[surface]
    sure = np.zeros(x.shape[1:], dtype=bool)
    sure[eligible] = w >= 0.5
    edge = eligible & ~sure
    new_possible[:, sure] = False
    new_possible[k, sure] = True
    new_possible[k, edge] = True
    return out, new_possible


__all__ = ["SnowAndWater", "rewrite_surface", "snow_reflectance", "water_reflectance"]
