"""Windows cut from strips: each row of windows read in a few wide strips, bands in parallel.

Windows overlap, so reading them one by one decodes the shared rows and columns again (or
finds them in GDAL's block cache when it is large enough to hold them). Here the plan's
windows are grouped by row, and a row into strips of at most `STRIP_WIDTH` columns; each
strip is read once per band (the bands on the read threads at once, GDAL decoding whole
JPEG 2000 tiles across it), the scene's masks once per strip (their tall tiles once per
tile row, `Scene._mask_span`), and the windows are views into it. ``ahead`` strips are read
while the model works on this one, so memory is bounded whatever the scene's height.

A window cut from a strip equals `Scene.read` of that window bit for bit: every read path
resamples per pixel, independently of the window it was asked for (tests/test_strips.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from rasterio.windows import Window

from cloudmask_cli.inference.aoi import AOI
from cloudmask_cli.scene import Scene

# A strip spans at most this many columns: the decoders' buffers grow with a read's width (a
# full-width strip of a 10 m tile held ~1 GB more at the peak); neighbouring strips of a row
# share the window overlap, read twice, and the JPEG 2000 tiles on their border, which GDAL's
# block cache still holds when the next strip reads them.
STRIP_WIDTH = 4096


@dataclass
class Tile:
    """One window of the plan, ready for the model."""

    window: Window
    x: np.ndarray  # (bands, h, w) physical values, NaN invalid: a view into its strip
    valid: np.ndarray  # pixels with data (and inside the AOI)
    bands: np.ndarray  # bands with any data in the window (the model's band mask)


@dataclass
class Strip:
    """The windows of one row of the plan, read together."""

    window: Window  # the span read: the row's windows' rows, from the first to the last column
    tiles: list[Tile]
    seconds: float = 0.0  # decoding time, summed over the threads that read it


@dataclass
class _Pending:
    window: Window
    windows: list[Window]
    x: np.ndarray
    parts: list[Future[float]] = field(default_factory=list)
    invalid: Future[np.ndarray | None] | None = None


def group_rows(windows: Sequence[Window], max_width: int | None = None) -> list[list[Window]]:
    """The windows of a row-major plan, grouped by their first row, and each row cut into
    groups spanning at most ``max_width`` columns (at least one window each)."""
    rows: list[list[Window]] = []
    for win in windows:
        last = rows[-1] if rows else None
        if (
            last is not None
            and last[0].row_off == win.row_off
            and (max_width is None or win.col_off + win.width - last[0].col_off <= max_width)
        ):
            last.append(win)
        else:
            rows.append([win])
    return rows


def strip_window(windows: Sequence[Window]) -> Window:
    """The span covering one row of windows (all of equal height)."""
    c0 = min(int(w.col_off) for w in windows)
    c1 = max(int(w.col_off + w.width) for w in windows)
    row, height = int(windows[0].row_off), max(int(w.height) for w in windows)
    return Window(c0, row, c1 - c0, height)


class StripReader:
    """Iterate over the strips of a window plan, reading ``ahead`` strips in advance on
    ``threads`` read threads. Use as a context manager: leaving it waits for the reads in
    flight (they share the scene's file handles) and cancels the queued ones."""

    def __init__(
        self,
        scene: Scene,
        windows: Sequence[Window],
        aoi: AOI | None = None,
        threads: int = 2,
        ahead: int = 1,
        max_width: int | None = STRIP_WIDTH,
    ) -> None:
        self.scene = scene
        self.aoi = aoi
        self.rows = group_rows(windows, max_width)
        self.ahead = max(0, ahead)
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="read")

    def __enter__(self) -> StripReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[Strip]:
        pending: list[_Pending] = []
        rows = iter(self.rows)
        while True:
            while len(pending) < self.ahead + 1:
                row = next(rows, None)
                if row is None:
                    break
                pending.append(self._submit(row))
            if not pending:
                return
            yield self._finish(pending.pop(0))

    def _submit(self, windows: list[Window]) -> _Pending:
        span = strip_window(windows)
        shape = (len(self.scene.bands), int(span.height), int(span.width))
        job = _Pending(span, windows, np.empty(shape, dtype=np.float32))

        def band(i: int) -> float:
            t0 = time.perf_counter()
            job.x[i] = self.scene.read_band(i, span, strip=True)
            return time.perf_counter() - t0

        # the costliest first (finest native resolution): the strip is ready when they are
        order = sorted(
            range(shape[0]), key=lambda i: self.scene.native_resolution(self.scene.bands[i])
        )
        job.parts = [self._pool.submit(band, i) for i in order]
        if self.scene.masks:
            job.invalid = self._pool.submit(self.scene.invalid, span, True)
        return job

    def _finish(self, job: _Pending) -> Strip:
        seconds = sum(f.result() for f in job.parts)
        x = job.x
        if job.invalid is not None:
            bad = job.invalid.result()
            if bad is not None:
                x[:, bad] = np.nan
        # a pixel has data where a primary band has: decided per pixel, so once for the strip
        finite = np.isfinite(x)
        data = np.zeros(x.shape[1:], dtype=bool)
        for i in self.scene.primary:
            data |= finite[i]
        if not data.all():
            x[:, ~data] = np.nan
            finite &= data
        c0 = int(job.window.col_off)
        tiles = []
        for win in job.windows:
            c, h, w = int(win.col_off) - c0, int(win.height), int(win.width)
            t, valid, fin = x[:, :h, c : c + w], data[:h, c : c + w], finite[:, :h, c : c + w]
            if self.aoi is not None:
                valid = valid & self.aoi.inside(win)
                # per pixel, so the same in every window that shares it: safe on the strip
                t[:, ~valid] = np.nan
                fin = fin & valid
            bands = fin.any(axis=(1, 2))
            tiles.append(Tile(win, t, valid, bands))
        return Strip(job.window, tiles, seconds)
