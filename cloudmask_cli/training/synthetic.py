"""Synthetic clouds and cloud shadows rendered over real imagery, labelled exactly.

Used as a training augmentation (issue 6): the little real labelled data we have is mostly clear
or mostly cloudy, so we paint physically plausible clouds over real clear pixels and know every
label for certain.

What is rendered, per band, from the band's *type and wavelength range* only (no sensor table):

* Opacity fields: two periodic fractal (power-law spectrum, FFT) noise fields, thresholded. A low
  layer gives thick cores with soft thin edges (or, sometimes, a thin stratus/haze sheet); a high
  layer gives streaky thin cirrus sheets (anisotropic spectrum). Cloud sizes scale with
  ``pixel_size`` so a 10 m and a 60 m tile see clouds of the same size in metres. ``cover`` sets
  the thresholds: each layer covers its share of the tile with alpha >= `THIN_ALPHA` (layers
  overlap, so the union can be a little less).
* Reflectance: x' = x + alpha * (c(lambda) - x), layer by layer (low, then cirrus on top).
  c(lambda) is bright and flat in the visible/NIR (0.45-0.85 for the low layer), lower in SWIR
  (1.6 um, and 2.2 um lower still; ice clouds darker than water clouds; a random effective-radius
  factor), times the band-averaged water-vapour transmittance *above the cloud*: with Gaussian
  absorption features at 940, 1130, 1380 and 1870 nm and a 2 km water-vapour scale height, the
  940 nm band dims clouds a little and the 1.38 um cirrus band shows high clouds brightly but low
  clouds barely (the real surface there is already dark in the input). Cloud tops get a little
  relief shading (sun-facing slopes brighter) and grow brighter from the edge inwards.
* Brightness temperature: cloud top T = T_surface - 6.5 K/km * h (T_surface: the band's median
  over the renderable pixels, so it works in K or degC), blended by emissivity (alpha for the low
  layer, 1 - (1 - alpha)^2 for cirrus, which absorbs more in the thermal than it scatters).
* SAR and DEM bands are left unchanged (C-band and terrain do not see clouds).
* Shadows: both layers' opacity fields are shifted by h / tan(elevation) along the anti-solar
  azimuth (the fields are periodic, so clouds "outside" the tile cast shadows into it). Reflective
  bands are multiplied by 1 - a * (1 - s(lambda)), where s is the diffuse-skylight fraction
  (blue ~0.5, NIR ~0.3, SWIR ~0.2); thermal bands are cooled by a few kelvin. The shadow lies on
  the surface, below any cloud, so the clouds are composited over it.

Labels (``possible``, [7, H, W] bool) from the total opacity alpha = 1 - (1 - a_low)(1 - a_cirrus):
alpha >= `THICK_ALPHA` -> {thick_cloud}; `THIN_ALPHA` <= alpha < `THICK_ALPHA` -> {thin_cloud};
no cloud above and shadow opacity >= `SHADOW_ALPHA` -> {cloud_shadow}; a faint haze
(0 < alpha < `THIN_ALPHA`) over such a shadow -> {cloud_shadow, thin_cloud} (honestly ambiguous);
anything fainter keeps its original label. With ``water_dark`` > 0, a shadowed pixel whose label
allowed water and whose NIR and SWIR bands (from `NIR_NM` up) were all below ``water_dark``
before the shadow gets {cloud_shadow, water}: a shadow on open water still looks like water,
and labelling it shadow alone teaches "dark and flat = shadow", so lakes come out as shadow.
Pixels with NaN in any band, and pixels whose original label allows only cloud / no-data
classes, are not touched at all. Where the original label allowed a cloud class as well as clear
ones, the cloud classes are kept in the new set (a real cloud may be there already).

Why our own generator and not ``satellite-cloud-generator`` (PyPI 0.4, Apache-2.0, Czerkawski et
al. 2023)? We read its source: it is a good generic image augmenter, but (1) its shadows are an
independent, inverted noise field, not the cloud projected along the sun azimuth, which is exactly
the geometry we want the model to learn; (2) per-band cloud magnitudes come from the mean colour of
the image or from ratios measured on a reference cloudy image of the same sensor, so nothing follows
from a band's wavelength, and there is no thermal (only an "invert" switch) or cirrus-band physics;
(3) it returns continuous transparency masks, not thin/thick/shadow labels, and knows nothing of
partial labels or NaN; (4) it draws from Python's and torch's global RNGs, so a sample is not
reproducible from our per-sample ``np.random.Generator``; (5) it pulls in torchvision, kornia,
imageio and imports matplotlib. Wrapping it would mean re-doing the physics and labels anyway; this
module is a few hundred lines of numpy, deterministic, offline, and takes ~12-20 ms of CPU per
256x256x13 sample (2-core dev machine).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, ClassVar

import numpy as np

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.schema import Number, Probability, Settings, Span, schema, span
from cloudmask_cli.sensors import Band

# Opacity thresholds that decide the labels (see the module docstring).
THIN_ALPHA = 0.1  # below: a faint haze over a recognisable surface, original label kept
THICK_ALPHA = 0.6  # above: the surface contributes < 40 %, no longer "seen through"
SHADOW_ALPHA = 0.4  # casting opacity above which the darkening is a labelled shadow
NIR_NM = 760.0  # bands starting here (NIR, SWIR) tell open water from land: water absorbs them

LAPSE_RATE = 6.5  # K/km, standard atmosphere
WV_SCALE_HEIGHT = 2.0  # km, water vapour scale height

_IDX = {c: i for i, c in enumerate(CLASSES)}
_CLOUD = np.array([_IDX["thin_cloud"], _IDX["thick_cloud"]])
_CLEAR = np.array([_IDX["land"], _IDX["water"], _IDX["snow"], _IDX["cloud_shadow"]])

# Cloud reflectance relative to the visible, for water and ice clouds (liquid water and ice absorb
# in the SWIR; ice more so). Nodes in nm; flat beyond the ends.
_SPECTRAL_NM = np.array([400.0, 700.0, 1000.0, 1250.0, 1650.0, 2200.0, 3000.0])
_SPECTRAL_WATER = np.array([1.0, 1.0, 0.97, 0.9, 0.62, 0.45, 0.1])
_SPECTRAL_ICE = np.array([1.0, 1.0, 0.95, 0.82, 0.38, 0.22, 0.05])

# Water-vapour absorption features: (centre nm, sigma nm, effective two-way optical depth of the
# whole column). A cloud at height h sees exp(-h / WV_SCALE_HEIGHT) of that column above it.
_WV_BANDS = ((940.0, 25.0, 1.2), (1130.0, 30.0, 1.0), (1380.0, 40.0, 6.0), (1870.0, 50.0, 6.0))

REFLECTIVE = "reflectance"
THERMAL = "brightness_temperature"


@dataclass(frozen=True)
class CloudParams:
    """Everything random about one rendering (drawn by `sample_params`)."""

    sun_azimuth: float  # degrees clockwise from north, where the sun is
    sun_elevation: float  # degrees
    cover: float  # target fraction of the tile with alpha >= THIN_ALPHA
    thin_fraction: float  # share of that cover given to the cirrus layer
    cloud_height: float  # km, low layer (shadow shift, cloud-top temperature, absorption above)
    cirrus_height: float  # km
    low_alpha_max: float  # opacity of low cloud cores (< THICK_ALPHA: a thin stratus sheet)
    cirrus_alpha_max: float
    low_edge: float  # soft edge width of the low layer, in noise standard deviations
    cirrus_edge: float
    low_beta: float  # power-spectrum slope of the low layer (higher: smoother, rounder)
    cirrus_beta: float
    low_scale_km: float  # outer scale of the low layer's structures
    cirrus_scale_km: float
    cirrus_stretch: float  # anisotropy of cirrus streaks
    cirrus_angle: float  # radians
    low_reflectance: float  # visible reflectance of an optically thick low cloud
    cirrus_reflectance: float  # visible reflectance the cirrus blends towards
    low_ice: bool  # low layer glaciated (darker in SWIR)
    swir_absorption: float  # effective-radius factor on SWIR absorption depth
    shadow_floor: float  # diffuse fraction s(lambda) = floor + blue * (lambda / 450 nm)^-exponent
    shadow_blue: float
    shadow_exponent: float
    cirrus_shadow: float  # how much of the cirrus opacity casts a shadow
    shadow_cooling: float  # K, surface cooling under an opaque shadow


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(*lo_hi))  # drawn even for lo == hi: the stream stays aligned


def sample_params(
    rng: np.random.Generator,
    *,
    sun_azimuth: float | None = None,
    sun_elevation: float | None = None,
    cover: float | None = None,
    thin_fraction: float | None = None,
    cloud_height: float | None = None,
    cirrus_height: float | None = None,
    cover_range: tuple[float, float] = (0.05, 0.7),
    thin_fraction_range: tuple[float, float] = (0.0, 0.6),
    sun_elevation_range: tuple[float, float] = (20.0, 70.0),
    cloud_height_range: tuple[float, float] = (0.5, 4.0),
    cirrus_height_range: tuple[float, float] = (7.0, 12.0),
    thin_layer_p: float = 0.15,
) -> CloudParams:
    """Draw one set of rendering parameters; given values are used as they are.

    Every draw happens whether or not a value is given, so the same seed gives the same clouds
    whichever arguments are fixed and whichever bands the sample has.
    """
    d = {
        "sun_azimuth": rng.uniform(0.0, 360.0),
        "sun_elevation": _uniform(rng, sun_elevation_range),
        "cover": _uniform(rng, cover_range),
        "thin_fraction": _uniform(rng, thin_fraction_range),
        "cloud_height": _uniform(rng, cloud_height_range),
        "cirrus_height": _uniform(rng, cirrus_height_range),
    }
    thin_layer = rng.random() < thin_layer_p
    low_alpha = rng.uniform(0.25, 0.55) if thin_layer else rng.uniform(0.85, 1.0)
    glaciated = rng.random()
    given = {
        "sun_azimuth": sun_azimuth,
        "sun_elevation": sun_elevation,
        "cover": cover,
        "thin_fraction": thin_fraction,
        "cloud_height": cloud_height,
        "cirrus_height": cirrus_height,
    }
    d.update({k: float(v) for k, v in given.items() if v is not None})
    return CloudParams(
        **d,
        low_alpha_max=float(low_alpha),
        cirrus_alpha_max=float(rng.uniform(0.15, 0.5)),
        low_edge=float(rng.uniform(0.15, 0.6)),
        cirrus_edge=float(rng.uniform(0.5, 1.5)),
        low_beta=float(rng.uniform(3.3, 4.3)),
        cirrus_beta=float(rng.uniform(3.3, 4.3)),
        low_scale_km=float(math.exp(rng.uniform(math.log(0.8), math.log(10.0)))),
        cirrus_scale_km=float(math.exp(rng.uniform(math.log(3.0), math.log(20.0)))),
        cirrus_stretch=float(rng.uniform(2.0, 6.0)),
        cirrus_angle=float(rng.uniform(0.0, math.pi)),
        low_reflectance=float(rng.uniform(0.45, 0.85)),
        cirrus_reflectance=float(rng.uniform(0.4, 0.7)),
        # Tops above ~6 km are mostly glaciated; below, mostly liquid.
        low_ice=bool(glaciated < (0.7 if d["cloud_height"] > 6.0 else 0.1)),
        swir_absorption=float(rng.uniform(0.8, 1.2)),
        shadow_floor=float(rng.uniform(0.1, 0.2)),
        shadow_blue=float(rng.uniform(0.25, 0.45)),
        shadow_exponent=float(rng.uniform(0.8, 1.5)),
        cirrus_shadow=float(rng.uniform(0.3, 0.6)),
        shadow_cooling=float(rng.uniform(1.0, 4.0)),
    )


# --- noise --------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _frequencies(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    return fy, fx


def fractal_noise(
    shape: tuple[int, int],
    rng: np.random.Generator,
    beta: float,
    outer_px: float,
    stretch: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """Periodic Gaussian noise with power spectrum ~ (f^2 + f0^2)^(-beta/2), zero mean, unit std.

    Built directly in the Fourier domain (one inverse FFT): all octaves at once, ~1 ms for 256^2.
    ``outer_px`` (1/f0) caps the largest structures; ``stretch`` > 1 elongates them along
    ``angle`` (cirrus streaks).
    """
    h, w = shape
    fy, fx = _frequencies(h, w)
    if stretch != 1.0:
        c, s = math.cos(angle), math.sin(angle)
        u, v = fx * c + fy * s, fy * c - fx * s
        f2 = (u * stretch) ** 2 + v**2
    else:
        f2 = fx**2 + fy**2
    amp = (f2 + np.float32(1.0 / outer_px) ** 2) ** np.float32(-beta / 4.0)
    amp[0, 0] = 0.0
    # Complex white noise shaped by the amplitude spectrum.
    spec = rng.standard_normal((*amp.shape, 2), dtype=np.float32).view(np.complex64)[..., 0]
    spec *= amp
    n = np.fft.irfft2(spec, s=(h, w)).astype(np.float32, copy=False)
    n -= n.mean()
    std = float(n.std())
    return n / std if std > 0 else n


def _inverse_smoothstep(v: float) -> float:
    """u in [0, 1] with 3u^2 - 2u^3 = v."""
    v = min(max(v, 0.0), 1.0)
    return 0.5 - math.sin(math.asin(1.0 - 2.0 * v) / 3.0)


def _layer(
    n: np.ndarray, cover: float, alpha_max: float, edge: float
) -> tuple[np.ndarray, np.ndarray]:
    """Opacity of one layer: alpha_max * smoothstep((n - t) / edge), exactly 0 outside.

    ``t`` is set so that the fraction of pixels with alpha >= THIN_ALPHA is ``cover``. Also
    returns the ramp position (0 at the outer edge, growing inwards), a proxy for thickness.
    """
    if cover <= 0.0 or alpha_max < THIN_ALPHA:
        z = np.zeros_like(n)
        return z, z
    sample = n[::2, ::2].ravel()  # a quarter of the pixels is plenty for a quantile
    q = float(np.quantile(sample, 1.0 - min(cover, 1.0)))
    t = q - edge * _inverse_smoothstep(THIN_ALPHA / alpha_max)
    r = (n - np.float32(t)) * np.float32(1.0 / edge)
    u = np.clip(r, 0.0, 1.0)
    alpha = (u * u * (3.0 - 2.0 * u)) * np.float32(alpha_max)
    return alpha, r


# --- per-band physics ---------------------------------------------------------------------------


def _band_samples(bands: Sequence[Band]) -> np.ndarray:
    """[B, 9] wavelengths (nm) spread over each band's range, to band-average spectral curves."""
    ranges = np.array([b.wavelength if b.wavelength is not None else (550.0, 550.0) for b in bands])
    return ranges[:, :1] + (ranges[:, 1:] - ranges[:, :1]) * np.linspace(0.0, 1.0, 9)


def _wv_transmittance(lam: np.ndarray, height_km: float) -> np.ndarray:
    above = math.exp(-max(height_km, 0.0) / WV_SCALE_HEIGHT)
    tau = np.zeros_like(lam)
    for centre, sigma, depth in _WV_BANDS:
        tau += depth * np.exp(-0.5 * ((lam - centre) / sigma) ** 2)
    return np.exp(-tau * above)


def cloud_reflectance(
    bands: Sequence[Band], visible: float, height_km: float, ice: bool, swir_absorption: float = 1.0
) -> np.ndarray:
    """[B] band-averaged top-of-atmosphere reflectance of an optically thick cloud."""
    lam = _band_samples(bands)
    curve = np.interp(lam, _SPECTRAL_NM, _SPECTRAL_ICE if ice else _SPECTRAL_WATER)
    curve = 1.0 - (1.0 - curve) * swir_absorption  # droplet/crystal size changes SWIR absorption
    refl = visible * np.mean(np.clip(curve, 0.0, 1.0) * _wv_transmittance(lam, height_km), axis=1)
    return refl.astype(np.float32)


def shadow_factor(bands: Sequence[Band], p: CloudParams) -> np.ndarray:
    """[B] fraction of the light left in an opaque shadow: diffuse skylight, bluer than the sun."""
    centre = _band_samples(bands).mean(axis=1)
    s = p.shadow_floor + p.shadow_blue * (centre / 450.0) ** (-p.shadow_exponent)
    return np.minimum(s, 0.9).astype(np.float32)


# --- rendering ----------------------------------------------------------------------------------


@dataclass
class CloudRendering:
    """The result of `simulate_clouds`, with the fields the labels were derived from."""

    x: np.ndarray  # [N, H, W] float32
    possible: np.ndarray  # [7, H, W] bool
    alpha: np.ndarray  # [H, W] total cloud opacity, 1 - (1 - low)(1 - cirrus)
    alpha_low: np.ndarray
    alpha_cirrus: np.ndarray
    shadow: np.ndarray  # [H, W] shadow opacity (0 none .. 1 opaque)
    eligible: np.ndarray  # [H, W] pixels that could be rendered (valid and not cloud-only)
    shift_low: tuple[int, int]  # (rows, cols) shadow displacement of the low layer
    params: CloudParams


def _shadow_shift(height_km: float, p: CloudParams, pixel_size: float) -> tuple[int, int]:
    """(d_row, d_col) from a cloud to its shadow: away from the sun, h / tan(elevation) long."""
    dist = height_km * 1000.0 / math.tan(math.radians(max(p.sun_elevation, 1.0))) / pixel_size
    az = math.radians(p.sun_azimuth + 180.0)
    # Rows grow southwards, columns eastwards.
    return round(-math.cos(az) * dist), round(math.sin(az) * dist)


def simulate_clouds(
    x: np.ndarray,
    bands: Sequence[Band],
    possible: np.ndarray,
    rng: np.random.Generator,
    *,
    pixel_size: float = 30.0,
    water_dark: float = 0.0,
    **kwargs: Any,
) -> CloudRendering:
    """`render_clouds` with its opacity and shadow fields (for tests and inspection).

    ``water_dark``: see the module docstring (0: a shadow is {cloud_shadow} alone). ``kwargs`` go
    to `sample_params` (sun angles, cover, thin_fraction, heights, ranges).
    """
    x = np.asarray(x, dtype=np.float32)
    possible = np.asarray(possible, dtype=bool)
    if x.ndim != 3 or len(bands) != x.shape[0]:
        raise ValueError(f"x must be [N, H, W] with N = len(bands) = {len(bands)}, got {x.shape}")
    if possible.shape != (len(CLASSES), *x.shape[1:]):
        raise ValueError(f"possible must be [{len(CLASSES)}, H, W], got {possible.shape}")
    if pixel_size <= 0:
        raise ValueError(f"pixel_size must be positive, got {pixel_size}")
    p = sample_params(rng, **kwargs)
    shape = x.shape[1:]
    px_per_km = 1000.0 / pixel_size

    n_low = fractal_noise(shape, rng, p.low_beta, p.low_scale_km * px_per_km)
    n_ci = fractal_noise(
        shape,
        rng,
        p.cirrus_beta,
        p.cirrus_scale_km * px_per_km,
        stretch=p.cirrus_stretch,
        angle=p.cirrus_angle,
    )
    a_low, r_low = _layer(n_low, p.cover * (1.0 - p.thin_fraction), p.low_alpha_max, p.low_edge)
    a_ci, _ = _layer(n_ci, p.cover * p.thin_fraction, p.cirrus_alpha_max, p.cirrus_edge)
    alpha = 1.0 - (1.0 - a_low) * (1.0 - a_ci)
    # Cloud-top brightness rises from the edge inwards (thicker cloud, higher albedo).
    depth = np.float32(0.8) + np.float32(0.2) * np.clip(r_low * np.float32(0.25), 0.0, 1.0)
    # Cloud-top relief: slopes facing the sun are brighter, the others darker (up to +-16 %).
    az = math.radians(p.sun_azimuth)
    to_sun = (round(-math.cos(az)), round(math.sin(az)))  # one pixel towards the sun
    slope = n_low - np.roll(n_low, (-to_sun[0], -to_sun[1]), axis=(0, 1))  # drop towards the sun
    slope *= np.float32(0.08 / (float(slope.std()) + 1e-6))
    texture = depth * (1.0 + np.clip(slope, -0.16, 0.16))

    # Periodic fields: rolling them is the shadow cast by this (infinitely tiled) cloud field.
    shift_low = _shadow_shift(p.cloud_height, p, pixel_size)
    shift_ci = _shadow_shift(p.cirrus_height, p, pixel_size)
    sh_low = np.roll(a_low, shift_low, axis=(0, 1))
    sh_ci = np.roll(a_ci, shift_ci, axis=(0, 1)) * np.float32(p.cirrus_shadow)
    shadow = 1.0 - (1.0 - sh_low) * (1.0 - sh_ci)

    valid = np.isfinite(x).all(axis=0)
    eligible = valid & possible[_CLEAR].any(axis=0)
    touched = eligible & ((alpha > 0) | (shadow > 0))
    rendered = _types(bands) & {REFLECTIVE, THERMAL}
    out = x.copy()
    new_possible = possible.copy()
    if not touched.any() or not rendered:
        # Nothing visible can be drawn (e.g. SAR/DEM-only samples): don't invent labels.
        return CloudRendering(out, new_possible, alpha, a_low, a_ci, shadow, eligible, shift_low, p)

    # Work on the touched pixels only (gathered once for all bands): the rest stays bit for bit.
    flat = np.flatnonzero(touched)
    xf = x.reshape(x.shape[0], -1)
    v = xf.take(flat, axis=1)  # [N, M]
    al, ac, sh, tex, dep = (f.ravel().take(flat) for f in (a_low, a_ci, shadow, texture, depth))

    refl = [i for i, b in enumerate(bands) if b.type == REFLECTIVE]
    if refl:
        sel = [bands[i] for i in refl]
        dark = 1.0 - shadow_factor(sel, p)
        c_low = cloud_reflectance(
            sel, p.low_reflectance, p.cloud_height, p.low_ice, p.swir_absorption
        )
        c_ci = cloud_reflectance(
            sel, p.cirrus_reflectance, p.cirrus_height, True, p.swir_absorption
        )
        # Shadow on the surface, then the low layer, then cirrus on top, folded into one pass:
        # x' = x (1 - s_dark sh)(1 - a_low)(1 - a_ci) + c_low tex a_low (1 - a_ci) + c_ci a_ci
        t_both = (1.0 - al) * (1.0 - ac)
        r = np.multiply.outer(dark, sh * t_both)
        np.subtract(t_both, r, out=r)
        r *= v[refl]
        r += np.multiply.outer(c_low, (1.0 - ac) * al * tex)
        r += np.multiply.outer(c_ci, ac)
        v[refl] = r

    therm = [i for i, b in enumerate(bands) if b.type == THERMAL]
    if therm:
        # One cloud-top temperature per layer, from the scene's surface, not per pixel.
        t_surface = np.median(xf[therm][:, eligible.ravel()], axis=1, keepdims=True)
        t_low = t_surface - LAPSE_RATE * p.cloud_height
        t_ci = t_surface - LAPSE_RATE * p.cirrus_height
        emis_ci = 1.0 - (1.0 - ac) ** 2  # cirrus absorbs more in the thermal than it scatters
        t = v[therm]
        t -= sh * np.float32(p.shadow_cooling)
        # Thicker parts of the low cloud reach higher, i.e. colder (up to 3 K).
        t += al * ((t_low - 15.0 * (dep - 0.8)).astype(np.float32) - t)
        t += emis_ci * (t_ci.astype(np.float32) - t)
        v[therm] = t
    # SAR, incidence angle and DEM rows of v are untouched: clouds are invisible there.

    out.reshape(x.shape[0], -1)[:, flat] = v
    water = _dark_water(x, bands, possible, water_dark) if water_dark > 0 else None
    _relabel(new_possible, possible, eligible, alpha, shadow, water)
    return CloudRendering(out, new_possible, alpha, a_low, a_ci, shadow, eligible, shift_low, p)


def _types(bands: Sequence[Band]) -> set[str]:
    return {b.type for b in bands}


def _dark_water(
    x: np.ndarray, bands: Sequence[Band], possible: np.ndarray, dark: float
) -> np.ndarray:
    """[H, W] pixels that may be open water: labelled so, and every NIR/SWIR band below ``dark``
    (without such a band, every pixel whose label allows water)."""
    ir = [
        i
        for i, b in enumerate(bands)
        if b.type == REFLECTIVE and b.wavelength is not None and b.wavelength[0] >= NIR_NM
    ]
    water = possible[_IDX["water"]].copy()
    if ir:
        water &= (x[ir] < dark).all(axis=0)
    return water


def _relabel(
    new: np.ndarray,
    old: np.ndarray,
    eligible: np.ndarray,
    alpha: np.ndarray,
    shadow: np.ndarray,
    water: np.ndarray | None = None,
) -> None:
    """Write the labels of rendered pixels into ``new`` (see the module docstring)."""
    maybe_cloud = old[_CLOUD].any(axis=0)
    thick = eligible & (alpha >= THICK_ALPHA)
    thin = eligible & (alpha >= THIN_ALPHA) & ~thick
    shade = eligible & (alpha < THIN_ALPHA) & (shadow >= SHADOW_ALPHA)
    changed = thick | thin | shade
    new &= ~changed
    new[_IDX["thick_cloud"]] |= thick | (thin & maybe_cloud)  # thin over a real cloud may be thick
    new[_IDX["thin_cloud"]] |= thin | (shade & (alpha > 0))  # faint haze over a shadow: ambiguous
    new[_IDX["cloud_shadow"]] |= shade
    if water is not None:
        new[_IDX["water"]] |= shade & water
    # A real cloud may already be there under a synthetic shadow: keep that possibility.
    new[_CLOUD] |= old[_CLOUD] & shade


def render_clouds(
    x: np.ndarray,
    bands: Sequence[Band],
    possible: np.ndarray,
    rng: np.random.Generator,
    *,
    sun_azimuth: float | None = None,
    sun_elevation: float | None = None,
    pixel_size: float = 30.0,
    cover: float | None = None,
    thin_fraction: float | None = None,
    cloud_height: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render synthetic clouds and their shadows over ``x``; return (new x, new possible).

    ``x``: [N, H, W] float32 physical values (reflectance, brightness temperature, SAR dB, DEM m),
    NaN invalid; ``bands``: one `Band` per layer; ``possible``: [7, H, W] bool partial labels.
    Angles in degrees (azimuth clockwise from north, where the sun is); ``pixel_size`` in metres;
    ``cover`` the target cloud fraction, ``thin_fraction`` the share of it that is cirrus;
    ``cloud_height`` (km) of the low layer. Unset values are drawn from ``rng``.
    """
    r = simulate_clouds(
        x,
        bands,
        possible,
        rng,
        pixel_size=pixel_size,
        sun_azimuth=sun_azimuth,
        sun_elevation=sun_elevation,
        cover=cover,
        thin_fraction=thin_fraction,
        cloud_height=cloud_height,
    )
    return r.x, r.possible


# --- augmentation -------------------------------------------------------------------------------


@schema
class SyntheticClouds(Settings):
    """Training augmentation: with probability ``p``, render clouds with parameters drawn from
    the ranges below (km for heights, degrees for the sun elevation, metres for pixel_size).

    Call it as ``aug(x, bands, possible, rng[, pixel_size])`` (see `render_clouds`); when it does
    not fire, the inputs come back as they are. It draws the same random numbers whatever the
    band set, so it may run before or after band subsetting; the cloud-top temperature comes from
    the sample's own thermal bands.
    """

    p: Probability = 0.5
    cover: Annotated[Span, span(0.0, 1.0)] = (0.05, 0.7)
    thin_fraction: Annotated[Span, span(0.0, 1.0)] = (0.0, 0.6)
    sun_elevation: Annotated[Span, span(1.0, 90.0)] = (20.0, 70.0)
    cloud_height: Annotated[Span, span(0.0, 20.0)] = (0.5, 4.0)
    cirrus_height: Annotated[Span, span(0.0, 20.0)] = (7.0, 12.0)
    thin_layer_p: Probability = 0.15
    pixel_size: Number = 30.0
    water_dark: Probability = 0.0  # NIR/SWIR reflectance under which shadowed water stays water

    WHAT: ClassVar[str] = "synthetic clouds"

    def __post_init__(self) -> None:
        if self.pixel_size <= 0:
            raise ValueError(f"pixel_size must be positive, got {self.pixel_size}")

    def __call__(
        self,
        x: np.ndarray,
        bands: Sequence[Band],
        possible: np.ndarray,
        rng: np.random.Generator,
        pixel_size: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if rng.random() >= self.p:
            return x, possible
        r = simulate_clouds(
            x,
            bands,
            possible,
            rng,
            pixel_size=pixel_size or self.pixel_size,
            cover_range=self.cover,
            thin_fraction_range=self.thin_fraction,
            sun_elevation_range=self.sun_elevation,
            cloud_height_range=self.cloud_height,
            cirrus_height_range=self.cirrus_height,
            thin_layer_p=self.thin_layer_p,
            water_dark=self.water_dark,
        )
        return r.x, r.possible
