"""Window plan and blend weights.

Windows of ``size`` px step by ``size - overlap``; the last row and column are clamped inside
the image so every window is full-size (or the whole image when it is smaller).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from rasterio.windows import Window


def offsets(length: int, size: int, overlap: int) -> list[int]:
    """Start offsets along one axis: regular steps, the last one clamped to ``length - size``."""
    if size <= overlap:
        raise ValueError(f"window size {size} must exceed the overlap {overlap}")
    if length <= size:
        return [0]
    step = size - overlap
    starts = list(range(0, length - size, step))
    starts.append(length - size)
    return starts


def tiles(shape: tuple[int, int], size: int | None) -> list[tuple[int, int, int, int]]:
    """Tiles ``(row, col, height, width)`` of ``size`` px without overlap, cut as `offsets`
    cuts windows (the last row and column clamped inside); the whole image when ``size`` is
    None. Training datasets cut their samples and crops with it."""
    h, w = shape
    if size is None:
        return [(0, 0, h, w)]
    th, tw = min(size, h), min(size, w)
    return [(r, c, th, tw) for r in offsets(h, size, 0) for c in offsets(w, size, 0)]


def plan_windows(shape: tuple[int, int], size: int = 512, overlap: int = 128) -> list[Window]:
    """All windows over a grid of ``shape`` (rows, cols), in row-major order."""
    h, w = shape
    rows = offsets(h, size, overlap)
    cols = offsets(w, size, overlap)
    return [Window(c, r, min(size, w), min(size, h)) for r in rows for c in cols]


def keep_windows(
    windows: Iterable[Window], coarse_valid: np.ndarray, factor: float
) -> list[Window]:
    """Drop windows whose footprint on a coarse valid mask (1 px = ``factor`` px) has no valid pixel.

    The footprint is grown by one coarse pixel so a window is never dropped by rounding.
    """
    kept = []
    ch, cw = coarse_valid.shape
    for win in windows:
        r0 = max(0, int(win.row_off // factor) - 1)
        c0 = max(0, int(win.col_off // factor) - 1)
        r1 = min(ch, int(-(-(win.row_off + win.height) // factor)) + 1)
        c1 = min(cw, int(-(-(win.col_off + win.width) // factor)) + 1)
        if coarse_valid[r0:r1, c0:c1].any():
            kept.append(win)
    return kept


def blend_weights(height: int, width: int, overlap: int) -> np.ndarray:
    """A cosine taper: 1 in the middle, falling smoothly towards each edge over ``overlap`` px.

    The outer quarter of the overlap gets (almost) no weight: the network's padding disturbs
    predictions near a window's edge, and the neighbouring window sees those pixels well
    inside. Never exactly 0, so a pixel seen by a single window keeps its prediction.
    """

    def ramp(n: int) -> np.ndarray:
        r = np.ones(n, dtype=np.float32)
        k = min(overlap, n // 2)
        if k > 0:
            skip = k // 4
            t = np.clip((np.arange(k, dtype=np.float32) + 0.5 - skip) / (k - skip), 0, 1)
            taper = 0.5 - 0.5 * np.cos(np.pi * t)
            r[:k] = taper
            r[n - k :] = taper[::-1]
        return np.maximum(r, 1e-4)

    return np.outer(ramp(height), ramp(width)).astype(np.float32)
