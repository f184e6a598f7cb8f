"""Bands of another sensor made from a sample's own: unseen sensors in training and scoring.

The labelled data is Landsat 8 and Sentinel-2 only; users bring Landsat 4/5 TM, Landsat 7
ETM+ and PerúSat-1 too. A band of such a sensor sees the spectrum over its own window, so
it is made from the sample's bands over that window: the window is cut at every source band's
edge, each piece takes the mean of the source bands spanning it, and the band is the mean
of the covered pieces weighted by their width (a box response; real responses are smoother,
which this treats as part of the per-band gain jitter). A band whose window the sources cover
less than ``min_cover`` of is not made (Sentinel-2 makes no thermal band; On Cloud N's four
bands make no SWIR). The default, a fifth, lets narrow bands stand for the wider TM and ETM+
bands around them (Landsat 8's NIR covers 22 % of ETM+'s, Sentinel-2's B11 42 % of TM's SWIR 1). The made bands carry the other sensor's wavelength ranges, so the model
sees that sensor's descriptors on real pixels.

Reflectance is made from reflectance, brightness temperature from brightness temperature
(an average of temperatures, close to the band's within a kelvin over the ranges of
Landsat's thermal bands); panchromatic source bands are not used (they would blur the narrow
bands they overlap). SAR and DEM bands pass through.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from itertools import pairwise

import numpy as np

from cloudmask_cli.schema import schema
from cloudmask_cli.sensors import OPTICAL, Band, bundled_sensors

# The sensors users bring that no labelled sample comes from (sensors/*.yaml names)
UNSEEN = ("landsat5_tm", "landsat7_etm", "perusat1_naomi")


def band_weights(
    sources: Sequence[Band], target: Band, min_cover: float = 0.2
) -> np.ndarray | None:
    """Weights over ``sources`` (summing to 1) that make ``target``, or None where the sources
    cover less than ``min_cover`` of its window or it is not an optical band."""
    if target.type not in OPTICAL or target.wavelength is None:
        return None
    lo, hi = target.wavelength
    windows = {
        i: s.wavelength
        for i, s in enumerate(sources)
        if s.type == target.type and s.wavelength is not None and not s.panchromatic
    }
    edges = sorted({lo, hi} | {e for w in windows.values() for e in w if lo < e < hi})
    weights = np.zeros(len(sources))
    covered = 0.0
    for a, b in pairwise(edges):
        spanning = [i for i, (s_lo, s_hi) in windows.items() if s_lo <= a and b <= s_hi]
        if spanning:
            covered += b - a
            weights[spanning] += (b - a) / len(spanning)
    if covered <= 0 or covered < min_cover * (hi - lo):
        return None
    return weights / weights.sum()


def as_sensor(
    x: np.ndarray, bands: Sequence[Band], targets: Sequence[Band], min_cover: float = 0.2
) -> tuple[np.ndarray, list[Band]]:
    """``x`` [B, H, W] in ``bands`` made into the ``targets`` that the sources cover, then the
    SAR and DEM bands as they were. Returns ``x`` and ``bands`` unchanged where no target
    can be made. A made pixel is NaN where any source band it uses is."""
    made, rows = [], []
    for t in targets:
        w = band_weights(bands, t, min_cover)
        if w is not None:
            used = np.flatnonzero(w)
            made.append(t)
            # a weighted sum in float32: NaN in any used band stays NaN
            rows.append(np.tensordot(w[used].astype(np.float32), x[used], axes=1))
    if not made:
        return x, list(bands)
    rest = [i for i, b in enumerate(bands) if b.type not in OPTICAL]
    out = np.concatenate([np.stack(rows).astype(np.float32, copy=False), x[rest]], axis=0)
    return out, made + [bands[i] for i in rest]


@cache
def bundled_bands(name: str) -> tuple[Band, ...]:
    """A bundled sensor's bands, parsed once per process."""
    sensors = bundled_sensors()
    if name not in sensors:
        raise ValueError(f"unknown sensor {name!r} (bundled: {', '.join(sorted(sensors))})")
    return sensors[name].bands


@schema
class OtherSensors:
    """With probability ``p``, a training crop is fed as one of ``sensors`` (drawn uniformly),
    its bands made by `as_sensor` after the synthetic clouds and before the radiometric jitter,
    then sampled into a subset as any crop's bands are."""

    p: float = 0.0
    sensors: tuple[str, ...] = UNSEEN
    min_cover: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1], got {self.p!r}")
        if not 0 < self.min_cover <= 1:
            raise ValueError(f"min_cover must be in (0, 1], got {self.min_cover!r}")
        if not self.sensors:
            raise ValueError("sensors: at least one sensor")
        for name in self.sensors:
            bundled_bands(name)

    def draw(self, rng: np.random.Generator) -> tuple[Band, ...] | None:
        """The bands of the sensor a crop is fed as, or None (the crop's own bands)."""
        if self.p <= 0 or rng.random() >= self.p:
            return None
        return bundled_bands(self.sensors[int(rng.integers(len(self.sensors)))])
