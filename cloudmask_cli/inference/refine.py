"""Which clear surface a pixel is: the network decides cloud, shadow or clear, and where it says
clear land or cloud shadow, published spectral tests (`cloudmask_cli.spectral`) say water or snow.

Why: the labelled data decides water and snow on a few thousand pixels, and every network
trained here calls lakes cloud shadow (dark, often beside a cloud) and never says water or snow.
The tests are per pixel, physical and sensor-independent (bands found by wavelength):

* Open water (Fmask's water test with NDWI and MNDWI): a pixel the network calls land or cloud
  shadow becomes water. Shadowed vegetation and soil fail it (NDVI stays high; soil is brighter
  at 1.6 um than in the green), so real shadows stay shadows; shadow over water becomes water.
* Snow and ice (NDSI, bright NIR and green, cold, dark in the cirrus band): only a pixel the
  network calls land becomes snow. Cloud is left alone: some bright cloud passes the test, and
  turning it into snow costs more cloud than it frees (benchmarks/quality/README.md).

* Green vegetation (NDVI > 0.4, `spectral.vegetation`) is neither water nor snow: where the
  network says either, its probabilities become its own given "not water, not snow" (those
  two to 0, the rest rescaled alike): its next choice wins (land, or shadow for shaded grass),
  the order of the other classes stays the network's. Near a tie the two are mixed, so the
  mask never jumps on last-bit differences. A network that has never seen
  land decided on a sensor (Biome's and On Cloud N's clear allows water) may call a whole
  pasture water; the same rule narrows those labels in training (`training.rules`).

Probability mass moves from the classes replaced to the class found, so the 7-class mask, the
binary masks and the probability COG all agree. A pixel with no data, or a scene without the
bands a test needs, is left as the network said.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cloudmask_cli.classes import CLASSES, first_argmax
from cloudmask_cli.sensors import Band
from cloudmask_cli.spectral import snow, vegetation, water

_I = {c: i for i, c in enumerate(CLASSES)}
# (test, the class it finds, the classes of the network it may replace)
SURFACES = (
    (water, "water", ("land", "cloud_shadow")),
    (snow, "snow", ("land",)),
)
# (test, the classes a passing pixel cannot be)
NOT = ((vegetation, ("water", "snow")),)
# a lead of LEAD / 2 in probability of a ruled-out class over the best other one applies a NOT
# rule fully, a tie half (see `refine`)
LEAD = 0.1


def refine(probs: torch.Tensor | np.ndarray, x: np.ndarray, bands: Sequence[Band]) -> None:
    """Move, in place, the probabilities ``probs`` ``(B, 7, h, w)`` (or ``(7, h, w)``) of the
    windows ``x`` ``(B, N, h, w)`` (physical units, NaN = no data; bands as ``bands``) where a
    spectral test passes and the network's class is one the test may replace (`SURFACES`), and
    away from the classes a passing pixel cannot be (`NOT`)."""
    p = torch.from_numpy(probs) if isinstance(probs, np.ndarray) else probs
    if p.ndim == 3:
        p, x = p[None], x[None]
    # the network's classes, before any test moves anything: one test never feeds another
    top = first_argmax(p.transpose(0, 1))
    for test, cls, replaces in SURFACES:
        found = torch.from_numpy(np.stack([test(w, bands) for w in x])).to(p.device)
        if not bool(found.any()):
            continue
        hit = found & torch.isin(top, torch.tensor([_I[c] for c in replaces], device=p.device))
        gain = torch.zeros_like(p[:, 0])
        for c in replaces:
            gain += torch.where(hit, p[:, _I[c]], 0.0)
            p[:, _I[c]].masked_fill_(hit, 0.0)
        p[:, _I[cls]] += gain
    for test, ruled_out in NOT:
        hit = torch.from_numpy(np.stack([test(w, bands) for w in x])).to(p.device)
        if not bool(hit.any()):
            continue
        idx = torch.tensor([_I[c] for c in ruled_out], device=p.device)
        rest = torch.tensor([i for c, i in _I.items() if c not in ruled_out], device=p.device)
        out = p[:, idx].sum(dim=1)
        kept = p.sum(dim=1) - out
        # Bayes: the network's probabilities given "none of `ruled_out`" (the other classes
        # rescaled alike, so their order stays the network's), mixed in by how far a ruled-out
        # class leads the best other one: fully from a lead of LEAD / 2, half at a tie, not at
        # all from a deficit of LEAD / 2. A switch on the top class would jump where classes
        # tie, and last-bit noise between batch sizes would then pick the mask
        lead = p[:, idx].amax(dim=1) - p[:, rest].amax(dim=1)
        mix = torch.where(hit & (kept > 0), (lead / LEAD + 0.5).clamp(0.0, 1.0), 0.0)
        p[:, rest] *= (1 + mix * out / kept.clamp_min(1e-12))[:, None]
        p[:, idx] *= (1 - mix)[:, None]
