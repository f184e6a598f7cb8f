"""Band -> descriptor vector (SEnSeI-v2, paper section III-A and Fig. 1).

Layout (fixed here, nowhere else; ``LENGTH`` entries before statistics):

=========  ==========================================================================
index      meaning
=========  ==========================================================================
0..31      spectral encoding of the band's minimum wavelength (optical and thermal)
32..63     spectral encoding of the band's maximum wavelength (optical and thermal)
           SAR bands use 0..63 for their kind instead: VV -> 0..20 set to 1,
           VH -> 21..41 set to 1, incidence angle -> 42..63 set to 1. DEM: all 0.
64         flag: multispectral (reflectance or thermal)
65         flag: SAR
66         flag: DEM
67         flag: thermal (brightness temperature)
68..73     spare flags (0), kept for future data types
=========  ==========================================================================

The model appends ``N_STATS`` per-window statistics (the 1/10/50/90/99th percentiles of the
band's normalised values) to make the vector it consumes (``LENGTH + N_STATS``).

Spectral encoding: ``lambda_norm = log10(lambda - 300) - 2`` (lambda in nm) and, for
i = 1..32, ``f_i = sin(omega_i * lambda_norm)`` for even i, ``cos(...)`` for odd i, with
``omega_i = 10000 ** (-2 i / 32)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_OMEGA = 32
LENGTH = 74
N_STATS = 5
PERCENTILES = (1.0, 10.0, 50.0, 90.0, 99.0)

FLAG_MULTISPECTRAL = 64
FLAG_SAR = 65
FLAG_DEM = 66
FLAG_THERMAL = 67

# The kinds of bands a sensor YAML can declare.
BAND_TYPES = ("reflectance", "brightness_temperature", "sar_vv", "sar_vh", "sar_angle", "dem")
SAR_SLOTS = {"sar_vv": slice(0, 21), "sar_vh": slice(21, 42), "sar_angle": slice(42, 64)}

_OMEGA = 10000.0 ** (-2.0 * np.arange(1, N_OMEGA + 1) / N_OMEGA)


def spectral_encoding(wavelength_nm: float) -> np.ndarray:
    """The 32 sinusoidal features of one wavelength (smooth in wavelength)."""
    if wavelength_nm <= 300:
        raise ValueError(f"wavelength {wavelength_nm} nm is outside the encodable range (> 300 nm)")
    lam = np.log10(wavelength_nm - 300.0) - 2.0
    phase = _OMEGA * lam
    i = np.arange(1, N_OMEGA + 1)
    return np.where(i % 2 == 0, np.sin(phase), np.cos(phase)).astype(np.float32)


def descriptor(band_type: str, wavelength: Sequence[float] | None = None) -> np.ndarray:
    """Descriptor vector of one band from its type and wavelength range [min, max] in nm."""
    if band_type not in BAND_TYPES:
        raise ValueError(
            f"unknown band type {band_type!r}; expected one of {', '.join(BAND_TYPES)}"
        )
    vec = np.zeros(LENGTH, dtype=np.float32)
    if band_type in ("reflectance", "brightness_temperature"):
        if wavelength is None or len(wavelength) != 2:
            raise ValueError(f"a {band_type} band needs wavelength: [min_nm, max_nm]")
        lo, hi = float(wavelength[0]), float(wavelength[1])
        if not lo <= hi:
            raise ValueError(f"wavelength minimum {lo} is above maximum {hi}")
        vec[0:N_OMEGA] = spectral_encoding(lo)
        vec[N_OMEGA : 2 * N_OMEGA] = spectral_encoding(hi)
        vec[FLAG_MULTISPECTRAL] = 1.0
        if band_type == "brightness_temperature":
            vec[FLAG_THERMAL] = 1.0
    elif band_type in SAR_SLOTS:
        vec[SAR_SLOTS[band_type]] = 1.0
        vec[FLAG_SAR] = 1.0
    else:  # dem
        vec[FLAG_DEM] = 1.0
    return vec


def descriptor_matrix(bands: Sequence[object]) -> np.ndarray:
    """Stack the descriptors of objects with ``type`` and ``wavelength`` attributes: (N, LENGTH)."""
    if not bands:
        return np.zeros((0, LENGTH), dtype=np.float32)
    return np.stack([descriptor(b.type, b.wavelength) for b in bands])  # type: ignore[attr-defined]


def summary(vec: np.ndarray) -> str:
    """A short human description of a descriptor vector, for `cloudmask info`."""
    kinds = []
    if vec[FLAG_MULTISPECTRAL]:
        kinds.append("thermal" if vec[FLAG_THERMAL] else "multispectral")
    if vec[FLAG_SAR]:
        slot = next(k for k, s in SAR_SLOTS.items() if vec[s].all())
        kinds.append(slot.replace("sar_", "SAR "))
    if vec[FLAG_DEM]:
        kinds.append("DEM")
    return f"{'/'.join(kinds)} |v|={np.linalg.norm(vec):.2f}"
