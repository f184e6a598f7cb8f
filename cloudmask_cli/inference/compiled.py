"""SEnSeI's band pooling compiled by ``torch.compile`` (CPU inference).

The pooling (Σ over bands of α·sin(ω·s + φ), for every pixel and channel) is most of SEnSeI's
CPU time: 32 sines per band and pixel. But each band's wave is a smooth function of one number,
the band's value at the pixel, so per window and band it is tabulated at knots spread over the
band's range of values (value and slope, as the coefficients of a cubic on each interval) and
evaluated by Hermite interpolation: four loads and three multiply-adds per channel instead of a
sine. The knots are spaced so that no channel's phase moves more than `KNOT_PHASE` between two
of them, which bounds the error by |α|·KNOT_PHASE⁴/384 (~1e-5·|α|, the float32 rounding of the
sine's sum). A window whose range would need more than `MAX_KNOTS` knots (values out at the
clip) is pooled with the sines. The tabulated pooling writes channels-last, the layout the
SegFormer's first convolution reads fastest.

Both versions are compiled into one loop (kernels cached on disk by PyTorch, so a later run
loads them in seconds); compiling needs a C++ compiler, which `compiled_pool` tries once on a
tiny input. The result differs from `pool_inplace` by float rounding, not bit for bit.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import warnings

import torch
from torch import Tensor

from cloudmask_cli.model.sensei import PoolFn, pool_inplace

log = logging.getLogger("cloudmask")

KNOT_PHASE = 0.25  # the largest ω·h between two knots (h: the knot spacing)
MAX_KNOTS = 4096  # per band: past this the table no longer stays in cache
KNOT_MULTIPLE = 64  # knot counts rounded up, so that few table shapes are compiled


def pool_fused(s: Tensor, weight: Tensor, alpha: Tensor, omega: Tensor, phi: Tensor) -> Tensor:
    """`pool_inplace` as one expression: [B, N, 1, H, W] waves of [B, N, C] summed over N."""
    wave = torch.sin(omega[..., None, None] * s[:, :, None] + phi[..., None, None])
    return (wave * (alpha[..., None, None] * weight[:, :, None])).sum(1)


def wave_table(
    s: Tensor, alpha: Tensor, omega: Tensor, phi: Tensor, max_knots: int = MAX_KNOTS
) -> tuple[Tensor, Tensor, Tensor] | None:
    """Each band's wave α·sin(ω·s + φ) over the band's range of ``s``, as cubics.

    Returns ``lo [B, N]`` (the first knot), ``inv_step [B, N]`` (knots per unit of s) and the
    coefficients ``[B, N, K, 4, C]`` of the cubic in t ∈ [0, 1] on each of the K intervals
    (Hermite: value and slope at both ends), or None when K would exceed ``max_knots``.
    """
    lo, hi = s.amin((2, 3)), s.amax((2, 3))
    span = hi - lo
    widest = float((omega.abs().amax(-1) * span).max())
    knots = max(1, math.ceil(widest / KNOT_PHASE))
    knots = -(-knots // KNOT_MULTIPLE) * KNOT_MULTIPLE
    if knots > max_knots:
        return None
    step = (span / knots).clamp(min=torch.finfo(s.dtype).tiny)  # [B, N]; a flat band: any
    at = lo[..., None] + step[..., None] * torch.arange(knots + 1, dtype=s.dtype)  # [B, N, K+1]
    theta = omega[:, :, None] * at[..., None] + phi[:, :, None]  # [B, N, K+1, C]
    value = alpha[:, :, None] * torch.sin(theta)
    slope = alpha[:, :, None] * omega[:, :, None] * torch.cos(theta) * step[..., None, None]
    v0, v1, d0, d1 = value[:, :, :-1], value[:, :, 1:], slope[:, :, :-1], slope[:, :, 1:]
    cubic = torch.stack([v0, d0, 3 * (v1 - v0) - 2 * d0 - d1, 2 * (v0 - v1) + d0 + d1], 3)
    return lo, 1.0 / step, cubic.contiguous()


def pool_tabled(s: Tensor, weight: Tensor, lo: Tensor, inv_step: Tensor, cubic: Tensor) -> Tensor:
    """The pooled waves from `wave_table`'s cubics, channels-last: ``[B, H, W, C]``."""
    b, n = s.shape[:2]
    x = (s - lo[..., None, None]) * inv_step[..., None, None]
    i = x.floor().clamp(0, cubic.shape[2] - 1)
    t = (x - i)[..., None]
    rows = cubic[
        torch.arange(b)[:, None, None, None], torch.arange(n)[None, :, None, None], i.long()
    ]  # [B, N, H, W, 4, C]
    wave = ((rows[..., 3, :] * t + rows[..., 2, :]) * t + rows[..., 1, :]) * t + rows[..., 0, :]
    return (wave * weight[..., None]).sum(1)


@functools.cache
def compiled_pool() -> PoolFn | None:
    """The compiled pooling, or None where ``torch.compile`` cannot build it (no compiler)."""
    fused = torch.compile(pool_fused, dynamic=True)
    # static shapes where they hold (a run's windows and bands), the knot count free
    tabled = torch.compile(pool_tabled)

    def run_tabled(s: Tensor, weight: Tensor, table: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        torch._dynamo.mark_dynamic(table[2], 2)
        return tabled(s, weight, *table).permute(0, 3, 1, 2)  # [B, C, H, W], channels-last

    gen = torch.Generator().manual_seed(0)
    s, weight = torch.rand(2, 3, 8, 8, generator=gen), torch.ones(2, 3, 8, 8)
    alpha, omega, phi = (torch.rand(2, 3, 4, generator=gen) for _ in range(3))
    table = wave_table(s, alpha, omega, phi)
    assert table is not None
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = [fused(s, weight, alpha, omega, phi), run_tabled(s, weight, table)]
    except Exception as exc:  # noqa: BLE001 - a missing compiler shows up as any of several
        log.debug("torch.compile cannot build the pooling (%s)", exc)
        return None
    want = pool_inplace(s, weight, alpha, omega, phi)
    if not all(torch.allclose(g, want, atol=1e-5) for g in got):
        log.debug("the compiled pooling disagrees with pool_inplace: not used")
        return None
    lock = threading.Lock()

    def pool(s: Tensor, weight: Tensor, alpha: Tensor, omega: Tensor, phi: Tensor) -> Tensor:
        table = wave_table(s, alpha, omega, phi)
        # a new shape compiles on first use: threads sharing a masker take turns
        with lock:
            if table is None:
                return fused(s, weight, alpha, omega, phi)
            return run_tabled(s, weight, table)

    return pool
