"""An exponential moving average of the weights (Polyak averaging), for ``ema`` in the config.

A short CPU run (about a thousand steps of batch 8) ends wherever the last few noisy updates
left it; the average of the recent weights is a steadier model, and the one validated, chosen
as ``best`` and shipped. The raw weights keep training (and are ``last``, for ``--resume``).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class WeightAverage:
    """``average = d * average + (1 - d) * weights`` after every step, with ``d`` ramping up to
    ``decay`` as ``(1 + n) / (10 + n)`` so the first steps' random weights fade out quickly.
    Buffers are averaged too (float) or copied (integer counters)."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.updates = 0
        self.net = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, new in zip(self.net.state_dict().values(), net.state_dict().values(), strict=True):
            if avg.dtype.is_floating_point:
                avg.lerp_(new.detach(), 1 - d)
            else:
                avg.copy_(new)

    def tensors(self) -> dict[str, Tensor]:
        """The average and its update count, for the training state (``ema.`` names)."""
        out = {f"ema.{k}": v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
        out["ema_updates"] = torch.tensor(self.updates, dtype=torch.int64)
        return out

    def load(self, tensors: dict[str, Tensor]) -> None:
        """Restore from `tensors` (a training state); a state saved without one keeps the
        current weights as the start of the average."""
        saved = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        if saved:
            self.net.load_state_dict(saved)
            self.updates = int(tensors["ema_updates"])
