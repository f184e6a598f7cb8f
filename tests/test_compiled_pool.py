"""SEnSeI's pooling tabulated per window (inference/compiled.py): each band's wave interpolated
from cubics at knots over the band's range equals the sines within the stated bound, on
smooth bands with no-data, flat bands and values out at the clip (pooled with the sines)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cloudmask_cli.inference import compiled
from cloudmask_cli.model.sensei import pool_inplace


def _waves(b=2, n=5, c=8, size=(48, 40), seed=0):
    gen = torch.Generator().manual_seed(seed)
    # smooth fields like real bands, reflectance-like range
    coarse = torch.rand(b, n, 6, 5, generator=gen)
    s = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False) * 1.95 - 0.05
    weight = torch.ones_like(s)
    weight[:, 1, :10] = 0.0  # a band without data in part of the window
    s = s.masked_fill(weight == 0, 0.0)
    alpha = torch.randn(b, n, c, generator=gen)
    omega = torch.rand(b, n, c, generator=gen) * 60.0
    phi = (torch.rand(b, n, c, generator=gen) - 0.5) * 2 * torch.pi
    return s, weight, alpha, omega, phi


def test_the_tabled_waves_equal_the_sines_within_the_bound():
    s, weight, alpha, omega, phi = _waves()
    table = compiled.wave_table(s, alpha, omega, phi)
    assert table is not None
    lo, inv_step, cubic = table
    # the spacing keeps every channel's phase step within KNOT_PHASE
    step = 1.0 / inv_step
    assert float((omega.abs().amax(-1) * step).max()) <= compiled.KNOT_PHASE * (1 + 1e-6)
    got = compiled.pool_tabled(s, weight, lo, inv_step, cubic).permute(0, 3, 1, 2)
    want = pool_inplace(s.double(), weight.double(), alpha.double(), omega.double(),
                        phi.double())  # fmt: skip
    bound = alpha.abs().sum(1).max() * compiled.KNOT_PHASE**4 / 384
    err = (got.double() - want).abs().max()
    assert err <= bound + 1e-5, (float(err), float(bound))
    assert err > 0  # interpolated, not the sines themselves


def test_a_flat_band_and_fewer_knots_than_needed():
    s, weight, alpha, omega, phi = _waves(seed=1)
    s[:, 2] = 0.3  # the same value everywhere: a zero range
    table = compiled.wave_table(s, alpha, omega, phi)
    assert table is not None
    got = compiled.pool_tabled(s, weight, *table).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, pool_inplace(s, weight, alpha, omega, phi), atol=1e-4,
                               rtol=0)  # fmt: skip
    assert compiled.wave_table(s, alpha, omega, phi, max_knots=64) is None


def test_the_compiled_pooling_tabulates_and_falls_back_to_the_sines_at_the_clip():
    pool = compiled.compiled_pool()
    if pool is None:
        pytest.skip("torch.compile cannot build here (no C++ compiler)")
    s, weight, alpha, omega, phi = _waves(seed=2)
    with torch.no_grad():
        got = pool(s, weight, alpha, omega, phi)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, pool_inplace(s, weight, alpha, omega, phi), atol=1e-4,
                               rtol=0)  # fmt: skip
    # a band spanning the normalisation's clip (±10) needs more knots than MAX_KNOTS
    s[:, 0, 0, 0], s[:, 0, -1, -1] = -10.0, 10.0
    assert compiled.wave_table(s, alpha, omega, phi) is None
    with torch.no_grad():
        got = pool(s, weight, alpha, omega, phi)
    assert got.is_contiguous(), "the sines' path writes the usual layout"
    torch.testing.assert_close(got, pool_inplace(s, weight, alpha, omega, phi), atol=1e-4,
                               rtol=0)  # fmt: skip
