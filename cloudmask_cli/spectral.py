"""Published per-pixel spectral tests: open water, snow and ice, green vegetation.

Each test finds its bands by wavelength (whatever the sensor) in physical units (reflectance,
brightness temperature in K) and labels nothing when a band it needs is missing. Training uses
them to narrow partial labels (`training.rules`), `cloudmask run` to tell which clear surface a
pixel is (`inference.refine`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cloudmask_cli.sensors import Band

# Spectral windows (nm): a reflectance band whose centre lies inside is that band.
WINDOWS = {
    "blue": (450, 520),
    "green": (530, 600),
    "red": (630, 690),
    "nir": (760, 900),
    "cirrus": (1340, 1410),
    "swir1": (1550, 1750),
}
THERMAL = (10000, 12500)  # a brightness-temperature band (K) centred here: the thermal band
SNOW_MAX_BT = 273.15 + 9.85  # Fmask's snow test: colder than 9.85 degC


def find_band(bands: Sequence[Band], name: str) -> int | None:
    """Index of the band for a window of `WINDOWS` (or ``thermal``): the non-panchromatic band
    of the right type whose centre lies in the window, nearest its centre; None if none."""
    lo, hi = THERMAL if name == "thermal" else WINDOWS[name]
    kind = "brightness_temperature" if name == "thermal" else "reflectance"
    best: tuple[float, int] | None = None
    for i, b in enumerate(bands):
        if b.type != kind or b.wavelength is None or b.panchromatic:
            continue
        centre = (b.wavelength[0] + b.wavelength[1]) / 2
        if lo <= centre <= hi:
            d = abs(centre - (lo + hi) / 2)
            if best is None or d < best[0]:
                best = (d, i)
    return None if best is None else best[1]


def _bands(image: np.ndarray, bands: Sequence[Band], *names: str) -> list[np.ndarray] | None:
    idx = [find_band(bands, n) for n in names]
    return None if any(i is None for i in idx) else [image[i] for i in idx]


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised difference (a - b) / (a + b); NaN where undefined (fails every test)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a - b) / (a + b)


def fmask_water(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """Fmask's water test (Zhu & Woodcock 2012, Remote Sens. Environ. 118:83-94, eq. 5):
    (NDVI < 0.01 and NIR < 0.11) or (NDVI < 0.1 and NIR < 0.05)."""
    ndvi = _nd(nir, red)
    return ((ndvi < 0.01) & (nir < 0.11)) | ((ndvi < 0.1) & (nir < 0.05))


def water(image: np.ndarray, bands: Sequence[Band]) -> np.ndarray:
    """Open water: Fmask's water test AND NDWI = (green - NIR) / (green + NIR) > 0.2 AND, with
    SWIR1, MNDWI = (green - SWIR1) / (green + SWIR1) > 0 (Xu 2006, Int. J. Remote Sens.
    27:3025-3033). Dark cloud shadow on soil passes Fmask's test (low NIR) but not MNDWI (soil
    reflects more in SWIR1 than in green). NDWI is McFeeters' (1996, Int. J. Remote Sens.
    17:1425-1432) with a margin above his 0: snow in shadow (NIR still close to green, SWIR1 dark)
    passes Fmask and MNDWI but stays under ~0.1 on the Biome patches, open water above ~0.3.

    Without SWIR1 (the RGB+NIR form) the same less MNDWI. Without red, green or NIR: nothing.
    """
    h, w = image.shape[1:]
    got = _bands(image, bands, "red", "nir", "green")
    if got is None:
        return np.zeros((h, w), bool)
    red, nir, green = got
    out = fmask_water(red, nir) & (_nd(green, nir) > 0.2)
    swir1 = _bands(image, bands, "swir1")
    if swir1 is not None:
        out &= _nd(green, swir1[0]) > 0
    return out


def snow(image: np.ndarray, bands: Sequence[Band]) -> np.ndarray:
    """Snow and ice, SNOMAP's test (Hall, Riggs & Salomonson 1995, Remote Sens. Environ.
    54:127-140: NDSI = (green - SWIR1) / (green + SWIR1) > 0.4) with brighter green and NIR
    (> 0.2 where SNOMAP and Fmask ask 0.1 and 0.11: sediment-laden flood water reaches 0.18 in
    the Sen1Floods11 chip, snow in cloud shadow 0.15), brightness temperature < 9.85 degC where
    there is a thermal band (Fmask's snow test, Zhu & Woodcock 2012, eq. 4, whose NDSI > 0.15
    passes most water and ice clouds: Fmask applies it only to pixels it found clear), and
    SWIR-cirrus (~1375 nm) reflectance < 0.04, i.e. Fmask 3.2's cirrus cloud probability
    B9 / 0.04 < 1 (Zhu, Wang & Woodcock 2015, Remote Sens. Environ. 159:269-277): high, cold
    ice cloud is snow-like in every other band.

    Needs green, NIR, SWIR1 and the cirrus band, else labels nothing (without the cirrus band a
    fifth of the Biome thick-cloud pixels pass). Without a thermal band, the rest. Snow on high,
    dry ice sheets, bright in the cirrus band too, is missed."""
    h, w = image.shape[1:]
    got = _bands(image, bands, "green", "nir", "swir1", "cirrus")
    if got is None:
        return np.zeros((h, w), bool)
    green, nir, swir1, cirrus = got
    out = (_nd(green, swir1) > 0.4) & (nir > 0.2) & (green > 0.2) & (cirrus < 0.04)
    bt = _bands(image, bands, "thermal")
    if bt is not None:
        out &= bt[0] < SNOW_MAX_BT
    return out


VEGETATION_NDVI = 0.4


def vegetation(image: np.ndarray, bands: Sequence[Band]) -> np.ndarray:
    """Green vegetation: NDVI = (NIR - red) / (NIR + red) > 0.4 (Tucker 1979, Remote Sens.
    Environ. 8:127-150; 0.4 is well above open water, snow and bare soil, < 0.1, < 0.1 and
    ~0.1-0.3, and Fmask's water test's 0.1). Vegetation in a cloud shadow keeps its NDVI, so the
    rule does not decide shadow: it takes water and snow out of a clear set (land or shadow
    left). Without red or NIR: nothing."""
    h, w = image.shape[1:]
    got = _bands(image, bands, "red", "nir")
    if got is None:
        return np.zeros((h, w), bool)
    red, nir = got
    return _nd(nir, red) > VEGETATION_NDVI
