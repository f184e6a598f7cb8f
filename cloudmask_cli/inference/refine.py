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

* Green vegetation (NDVI > 0.4, `spectral.vegetation`) is neither water nor snow: their
  probability goes to land and cloud shadow in the network's own proportions between the two
  (where the network said water or snow: land, or shadow for shaded grass). A network that has never seen
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

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.sensors import Band
from cloudmask_cli.spectral import snow, vegetation, water

_I = {c: i for i, c in enumerate(CLASSES)}
# (test, the class it finds, the classes of the network it may replace)
SURFACES = (
    (water, "water", ("land", "cloud_shadow")),
    (snow, "snow", ("land",)),
)
# (test, the classes a passing pixel cannot be, the classes their probability moves to): never
# to cloud, so the cloud and valid masks stay the network's
NOT = ((vegetation, ("water", "snow"), ("land", "cloud_shadow")),)


def refine(probs: torch.Tensor | np.ndarray, x: np.ndarray, bands: Sequence[Band]) -> None:
    """Move, in place, the probabilities ``probs`` ``(B, 7, h, w)`` (or ``(7, h, w)``) of the
    windows ``x`` ``(B, N, h, w)`` (physical units, NaN = no data; bands as ``bands``) where a
    spectral test passes and the network's class is one the test may replace."""
    p = torch.from_numpy(probs) if isinstance(probs, np.ndarray) else probs
    if p.ndim == 3:
        p, x = p[None], x[None]
    # the network's classes, before any test moves anything: one test never feeds another
    top = p.argmax(dim=1)
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
    for test, ruled_out, onto in NOT:
        # every passing pixel, whatever the network's class: a rule on its top class alone
        # would jump where two classes nearly tie, and make last-bit noise a different mask
        hit = torch.from_numpy(np.stack([test(w, bands) for w in x])).to(p.device)
        if not bool(hit.any()):
            continue
        out = sum(p[:, _I[c]] for c in ruled_out)
        share = torch.stack([p[:, _I[c]] for c in onto], dim=1)
        total = share.sum(dim=1, keepdim=True)
        # the network's proportions among `onto`; all to the first where it gave them nothing
        first = torch.zeros_like(share)
        first[:, 0] = 1.0
        weights = torch.where(total > 0, share / total.clamp_min(1e-12), first)
        for k, c in enumerate(onto):
            p[:, _I[c]] += torch.where(hit, out * weights[:, k], 0.0)
        for c in ruled_out:
            p[:, _I[c]].masked_fill_(hit, 0.0)
