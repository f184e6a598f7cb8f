"""Blend overlapping window probabilities in a rolling band of rows.

Windows arrive in row-major order. All windows of one window-row start on the same row, so
once the next window-row begins at row ``r``, every row above ``r`` is final: it is
normalised, handed out, and dropped. The buffer never holds more than one window's height,
whatever the scene's height. It lives on the model's device: on a GPU the probabilities never
leave it, only the folded codes do (and the probabilities when the user asks for them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from rasterio.windows import Window

from cloudmask_cli.inference.tiling import blend_weights


def _tensor(a: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(np.ascontiguousarray(a))
    return a.to(device)


class StripBlender:
    """Accumulates weighted probabilities for rows ``[base, base + capacity)``."""

    def __init__(
        self,
        shape: tuple[int, int],
        n_classes: int,
        window: int,
        overlap: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.height, self.width = shape
        self.overlap = overlap
        self.device = torch.device(device)
        self.capacity = min(window, self.height)
        self.base = 0
        kw: dict[str, Any] = {"device": self.device}
        self.acc = torch.zeros((n_classes, self.capacity, self.width), dtype=torch.float32, **kw)
        self.wsum = torch.zeros((self.capacity, self.width), dtype=torch.float32, **kw)
        self.valid = torch.zeros((self.capacity, self.width), dtype=torch.bool, **kw)
        self._weights: dict[tuple[int, int], torch.Tensor] = {}

    def _weight(self, h: int, w: int) -> torch.Tensor:
        key = (h, w)
        if key not in self._weights:
            self._weights[key] = _tensor(blend_weights(h, w, self.overlap), self.device)
        return self._weights[key]

    def add(
        self, window: Window, probs: np.ndarray | torch.Tensor, valid: np.ndarray | torch.Tensor
    ) -> None:
        """Add one window's probabilities ``(C, h, w)`` and its valid-input mask ``(h, w)``."""
        r0 = int(window.row_off) - self.base
        c0 = int(window.col_off)
        probs, valid = _tensor(probs, self.device), _tensor(valid, self.device)
        h, w = probs.shape[1:]
        if r0 < 0 or r0 + h > self.capacity:
            raise ValueError(f"window {window} is outside the open rows starting at {self.base}")
        weight = self._weight(h, w)
        self.acc[:, r0 : r0 + h, c0 : c0 + w].addcmul_(probs, weight)  # no (C, h, w) temporary
        self.wsum[r0 : r0 + h, c0 : c0 + w] += weight
        self.valid[r0 : r0 + h, c0 : c0 + w] |= valid

    def finish(self, row: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """Hand out rows ``[base, row)`` as strips (first row, probs (C, n, W), valid (n, W)),
        tensors on the blender's device.

        Pixels no window covered have all-zero probabilities.
        """
        strips = []
        row = min(row, self.height)
        while self.base < row:
            strips.append(self._pop(min(row - self.base, self.capacity)))
        return strips

    def _pop(self, n: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        # where no window reached, the sums are 0 too: 0 / tiny = 0
        probs = self.acc[:, :n] / self.wsum[:n].clamp(min=1e-12)
        valid = self.valid[:n].clone()
        first = self.base
        keep = self.capacity - n
        # Slide the open rows to the top of the buffer (torch refuses overlapping in-place
        # copies: the source is cloned) and clear the rest.
        if keep:
            self.acc[:, :keep] = self.acc[:, n:].clone()
            self.wsum[:keep] = self.wsum[n:].clone()
            self.valid[:keep] = self.valid[n:].clone()
        self.acc[:, keep:] = 0
        self.wsum[keep:] = 0
        self.valid[keep:] = False
        self.base += n
        return first, probs, valid
