"""Radiometric and band-set perturbations of evaluation inputs: how far a mask moves when the
same scene arrives with another calibration, level or band set (issue: robust to radiometry).

A perturbation maps a sample's physical bands to perturbed ones and the bands kept:
``perturb(x, bands, key) -> (x, kept indices)``; ``key`` seeds any randomness (per sample, so a
rerun scores the same pixels the same way). Reflectance bands only are changed by gains and
offsets; thermal, SAR and DEM bands pass through.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

from cloudmask_cli.sensors import Band

Perturbation = Callable[[np.ndarray, Sequence[Band], str], tuple[np.ndarray, list[int]]]


def _refl(bands: Sequence[Band]) -> list[int]:
    return [i for i, b in enumerate(bands) if b.type == "reflectance"]


def gain(g: float) -> Perturbation:
    def perturb(x: np.ndarray, bands: Sequence[Band], key: str) -> tuple[np.ndarray, list[int]]:
        x = x.copy()
        x[_refl(bands)] *= np.float32(g)
        return x, list(range(len(bands)))

    return perturb


def offset(o: float) -> Perturbation:
    def perturb(x: np.ndarray, bands: Sequence[Band], key: str) -> tuple[np.ndarray, list[int]]:
        x = x.copy()
        x[_refl(bands)] += np.float32(o)
        return x, list(range(len(bands)))

    return perturb


def band_gain_noise(g: float) -> Perturbation:
    """Each reflectance band under its own gain, uniform in [1 - g, 1 + g] (seeded by ``key``)."""

    def perturb(x: np.ndarray, bands: Sequence[Band], key: str) -> tuple[np.ndarray, list[int]]:
        refl = _refl(bands)
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        x = x.copy()
        x[refl] *= rng.uniform(1 - g, 1 + g, len(refl)).astype(np.float32)[:, None, None]
        return x, list(range(len(bands)))

    return perturb


def without(what: str, test: Callable[[Band], bool]) -> Perturbation:
    """The bands for which ``test`` holds left out (all kept when that would leave none)."""

    def perturb(x: np.ndarray, bands: Sequence[Band], key: str) -> tuple[np.ndarray, list[int]]:
        kept = [i for i, b in enumerate(bands) if not test(b)]
        return (x[kept], kept) if kept else (x, list(range(len(bands))))

    perturb.__doc__ = f"without the {what} bands"
    return perturb


def _in(b: Band, lo: float, hi: float) -> bool:
    return (
        b.type == "reflectance" and b.wavelength is not None and lo <= sum(b.wavelength) / 2 <= hi
    )


PERTURBATIONS: dict[str, Perturbation] = {
    "gain0.8": gain(0.8),
    "gain1.2": gain(1.2),
    "offset-0.02": offset(-0.02),
    "offset+0.02": offset(0.02),
    "bandgain0.1": band_gain_noise(0.1),
    "no_swir": without("SWIR (1.5-2.4 um)", lambda b: _in(b, 1500, 2400)),
    "no_thermal": without("thermal", lambda b: b.type == "brightness_temperature"),
    "no_cirrus": without("cirrus (1.36-1.39 um)", lambda b: _in(b, 1350, 1400)),
}


def get_perturbation(name: str) -> Perturbation:
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r} (known: {', '.join(PERTURBATIONS)})")
    return PERTURBATIONS[name]
