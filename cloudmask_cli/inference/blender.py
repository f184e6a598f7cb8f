"""Blend overlapping window probabilities in a rolling band of rows.

Windows arrive in row-major order. All windows of one window-row start on the same row, so
once the next window-row begins at row ``r``, every row above ``r`` is final: it is
normalised, handed out, and dropped. The buffer never holds more than one window's height,
whatever the scene's height.
"""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from cloudmask_cli.inference.tiling import blend_weights


class StripBlender:
    """Accumulates weighted probabilities for rows ``[base, base + capacity)``."""

    def __init__(self, shape: tuple[int, int], n_classes: int, window: int, overlap: int) -> None:
        self.height, self.width = shape
        self.overlap = overlap
        self.capacity = min(window, self.height)
        self.base = 0
        self.acc = np.zeros((n_classes, self.capacity, self.width), dtype=np.float32)
        self.wsum = np.zeros((self.capacity, self.width), dtype=np.float32)
        self.valid = np.zeros((self.capacity, self.width), dtype=bool)
        self._weights: dict[tuple[int, int], np.ndarray] = {}

    def _weight(self, h: int, w: int) -> np.ndarray:
        key = (h, w)
        if key not in self._weights:
            self._weights[key] = blend_weights(h, w, self.overlap)
        return self._weights[key]

    def add(self, window: Window, probs: np.ndarray, valid: np.ndarray) -> None:
        """Add one window's probabilities ``(C, h, w)`` and its valid-input mask ``(h, w)``."""
        r0 = int(window.row_off) - self.base
        c0 = int(window.col_off)
        h, w = probs.shape[1:]
        if r0 < 0 or r0 + h > self.capacity:
            raise ValueError(f"window {window} is outside the open rows starting at {self.base}")
        weight = self._weight(h, w)
        acc = self.acc[:, r0 : r0 + h, c0 : c0 + w]
        for k in range(acc.shape[0]):  # per class: no (C, h, w) temporary
            acc[k] += probs[k] * weight
        self.wsum[r0 : r0 + h, c0 : c0 + w] += weight
        self.valid[r0 : r0 + h, c0 : c0 + w] |= valid

    def finish(self, row: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Hand out rows ``[base, row)`` as strips (first row, probs (C, n, W), valid (n, W)).

        Pixels no window covered have all-zero probabilities.
        """
        strips = []
        row = min(row, self.height)
        while self.base < row:
            strips.append(self._pop(min(row - self.base, self.capacity)))
        return strips

    def _pop(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        # one output allocation: at 10 m a strip is ~120 MB per temporary
        probs = np.zeros((self.acc.shape[0], n, self.width), dtype=np.float32)
        np.divide(self.acc[:, :n], self.wsum[:n], out=probs, where=self.wsum[:n] > 0)
        valid = self.valid[:n].copy()
        first = self.base
        keep = self.capacity - n
        # Slide the open rows to the top of the buffer and clear the rest (numpy copies
        # through a buffer only where source and destination overlap).
        self.acc[:, :keep] = self.acc[:, n:]
        self.wsum[:keep] = self.wsum[n:]
        self.valid[:keep] = self.valid[n:]
        self.acc[:, keep:] = 0
        self.wsum[keep:] = 0
        self.valid[keep:] = False
        self.base += n
        return first, probs, valid
