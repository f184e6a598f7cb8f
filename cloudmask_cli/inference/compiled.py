"""SEnSeI's band pooling compiled into one fused loop by ``torch.compile`` (CPU inference).

The pooling (Σ over bands of α·sin(ω·s + φ), for every pixel and channel) is most of SEnSeI's
CPU time. In eager PyTorch it is four passes over each block of waves (the argument, the sine,
the band weight, the sum); compiled, it is one loop that never stores a wave. Written as one
broadcast expression summed over the bands, so one compiled kernel serves every band count and
window size (``dynamic=True``). It needs a C++ compiler, which `available` tries once on a tiny
input; the kernels are cached on disk by PyTorch (a later run loads them in seconds).

The sum runs in another order than `pool_inplace`, so the embedding differs by float rounding
(~1e-5), not bit for bit.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings

import torch
from torch import Tensor

from cloudmask_cli.model.sensei import PoolFn, pool_inplace

log = logging.getLogger("cloudmask")


def pool_fused(s: Tensor, weight: Tensor, alpha: Tensor, omega: Tensor, phi: Tensor) -> Tensor:
    """`pool_inplace` as one expression: [B, N, 1, H, W] waves of [B, N, C] summed over N."""
    wave = torch.sin(omega[..., None, None] * s[:, :, None] + phi[..., None, None])
    return (wave * (alpha[..., None, None] * weight[:, :, None])).sum(1)


@functools.cache
def compiled_pool() -> PoolFn | None:
    """The compiled pooling, or None where ``torch.compile`` cannot build it (no compiler)."""
    fn = torch.compile(pool_fused, dynamic=True)
    gen = torch.Generator().manual_seed(0)
    s, weight = torch.rand(2, 3, 8, 8, generator=gen), torch.ones(2, 3, 8, 8)
    alpha, omega, phi = (torch.rand(2, 3, 4, generator=gen) for _ in range(3))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = fn(s, weight, alpha, omega, phi)
    except Exception as exc:  # noqa: BLE001 - a missing compiler shows up as any of several
        log.debug("torch.compile cannot build the pooling (%s)", exc)
        return None
    if not torch.allclose(got, pool_inplace(s, weight, alpha, omega, phi), atol=1e-5):
        log.debug("the compiled pooling disagrees with pool_inplace: not used")
        return None
    lock = threading.Lock()

    def pool(s: Tensor, weight: Tensor, alpha: Tensor, omega: Tensor, phi: Tensor) -> Tensor:
        # a new shape compiles on first use: threads sharing a masker take turns
        with lock:
            return fn(s, weight, alpha, omega, phi)

    return pool
