"""Radiometric and band-set perturbations of evaluation inputs: how far a mask moves when the
same scene arrives with another calibration, level or band set (issue: robust to radiometry).

A perturbation maps a sample's physical bands to perturbed ones and the bands fed:
``perturb(x, bands, key) -> (x, bands)``; ``key`` seeds any randomness (per sample, so a
rerun scores the same pixels the same way). Reflectance bands only are changed by gains and
offsets; thermal, SAR and DEM bands pass through. The ``as_*`` perturbations feed the sample as
a sensor no labelled sample comes from (`training.other_sensors`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

from cloudmask_cli.sensors import OPTICAL, Band
from cloudmask_cli.training.other_sensors import as_sensor, bundled_bands

Perturbation = Callable[[np.ndarray, Sequence[Band], str], tuple[np.ndarray, list[Band]]]


def _mid(band: Band) -> float:
    """The centre of a band's wavelength range (bands chosen by `_in` have one)."""
    assert band.wavelength is not None
    return (band.wavelength[0] + band.wavelength[1]) / 2


def _refl(bands: Sequence[Band]) -> list[int]:
    return [i for i, b in enumerate(bands) if b.type == "reflectance"]


def gain(g: float) -> Perturbation:
    def perturb(x: np.ndarray, bands: Sequence[Band], key: str) -> tuple[np.ndarray, list[Band]]:
        x = x.copy()
        x[_refl(bands)] *= np.float32(g)
        return x, list(bands)

    return perturb


def offset(o: float) -> Perturbation:
    def perturb(x: np.ndarray, bands: Sequence[Band], key: str) -> tuple[np.ndarray, list[Band]]:
        x = x.copy()
        x[_refl(bands)] += np.float32(o)
        return x, list(bands)

    return perturb


def band_gain_noise(g: float) -> Perturbation:
    """Each reflectance band under its own gain, uniform in [1 - g, 1 + g] (seeded by ``key``)."""

    def perturb(x: np.ndarray, bands: Sequence[Band], key: str) -> tuple[np.ndarray, list[Band]]:
        refl = _refl(bands)
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        x = x.copy()
        x[refl] *= rng.uniform(1 - g, 1 + g, len(refl)).astype(np.float32)[:, None, None]
        return x, list(bands)

    return perturb


def without(what: str, test: Callable[[Band], bool]) -> Perturbation:
    """The bands for which ``test`` holds left out (all kept when that would leave none)."""

    def perturb(x: np.ndarray, bands: Sequence[Band], key: str) -> tuple[np.ndarray, list[Band]]:
        kept = [i for i, b in enumerate(bands) if not test(b)]
        return (x[kept], [bands[i] for i in kept]) if kept else (x, list(bands))

    perturb.__doc__ = f"without the {what} bands"
    return perturb


def _in(b: Band, lo: float, hi: float) -> bool:
    return (
        b.type == "reflectance" and b.wavelength is not None and lo <= sum(b.wavelength) / 2 <= hi
    )


# Common band sets, as (name, window in nm, nominal centre): Landsat TM / ETM+ and ukis-csmask's six
# (blue, green, red, NIR, SWIR1, SWIR2), and the four of PerúSat-1, many VHR sensors and On Cloud N
TM6 = (
    ("blue", (450, 520), 485),
    ("green", (520, 600), 560),
    ("red", (630, 690), 660),
    ("nir", (760, 900), 840),
    ("swir1", (1550, 1750), 1650),
    ("swir2", (2080, 2350), 2215),
)
RGBN = TM6[:4]


def only(what: str, band_set: Sequence[tuple[str, tuple[int, int], int]]) -> Perturbation:
    """Only the reflectance bands of ``band_set``: per entry, the band whose centre lies in its
    window nearest its centre (S2's B8 rather than B8A, Landsat 8's B3 rather than its pan band);
    thermal, SAR and DEM left out, as in a stack cut to that sensor's bands. A sample with none
    of them is left whole."""

    def perturb(x: np.ndarray, bands: Sequence[Band], key: str) -> tuple[np.ndarray, list[Band]]:
        kept = []
        for _, (lo, hi), centre in band_set:
            inside = [i for i in _refl(bands) if _in(bands[i], lo, hi)]
            if inside:
                kept.append(min(inside, key=lambda i: abs(_mid(bands[i]) - centre)))
        kept = sorted(set(kept))
        return (x[kept], [bands[i] for i in kept]) if kept else (x, list(bands))

    perturb.__doc__ = f"only the {what} bands"
    return perturb


def as_other(name: str) -> Perturbation:
    """The sample fed as the bundled sensor ``name``: the bands its own bands cover, made over
    that sensor's windows; SAR and DEM left out, as in a stack of that sensor."""

    def perturb(x: np.ndarray, bands: Sequence[Band], key: str) -> tuple[np.ndarray, list[Band]]:
        optical = [i for i, b in enumerate(bands) if b.type in OPTICAL]
        own = x[optical]
        y, made = as_sensor(own, [bands[i] for i in optical], bundled_bands(name))
        return (x, list(bands)) if y is own else (y, made)  # nothing made: left whole

    perturb.__doc__ = f"fed as {name}"
    return perturb


PERTURBATIONS: dict[str, Perturbation] = {
    "gain0.8": gain(0.8),
    "gain1.2": gain(1.2),
    "offset-0.02": offset(-0.02),
    "offset+0.02": offset(0.02),
    "bandgain0.1": band_gain_noise(0.1),
    "no_swir": without("SWIR (1.5-2.4 um)", lambda b: _in(b, 1500, 2400)),
    "no_thermal": without("thermal", lambda b: b.type == "brightness_temperature"),
    "no_cirrus": without("cirrus (1.36-1.39 um)", lambda b: _in(b, 1350, 1400)),
    "tm6": only("six Landsat TM (blue, green, red, NIR, SWIR1, SWIR2)", TM6),
    "rgbn": only("four visible and NIR", RGBN),
    "as_tm5": as_other("landsat5_tm"),
    "as_etm7": as_other("landsat7_etm"),
    "as_perusat1": as_other("perusat1_naomi"),
}


def get_perturbation(name: str) -> Perturbation:
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r} (known: {', '.join(PERTURBATIONS)})")
    return PERTURBATIONS[name]
