"""product -> Scene -> windows -> engine -> blender -> writer.

`masked_strips` is the loop (shared by the file writer and the xarray API): each row of
windows is read once as a strip, its bands decoded in parallel on the read threads while the
model works on the row before (inference/strips.py); the windows are batched, predicted,
blended, and handed out as finished strips of rows. `mask_to_file` adds the COG writer and the
sidecar. On a GPU the probabilities are blended and folded there, so only class codes come back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window

from cloudmask_cli import __version__
from cloudmask_cli.classes import CLASSES, NODATA, fold, style_names
from cloudmask_cli.inference import heap
from cloudmask_cli.inference.aoi import AOI
from cloudmask_cli.inference.blender import StripBlender
from cloudmask_cli.inference.engine import Engine, default_read_threads
from cloudmask_cli.inference.refine import refine
from cloudmask_cli.inference.strips import StripReader, Tile
from cloudmask_cli.inference.tiling import keep_windows, plan_windows
from cloudmask_cli.inference.writer import MaskWriter
from cloudmask_cli.products import product_id
from cloudmask_cli.records import Sidecar, Timings, Windows
from cloudmask_cli.scene import Scene
from cloudmask_cli.sensors import Band

log = logging.getLogger("cloudmask")


@dataclass
class RunOptions:
    """How to run the model over a scene."""

    style: str = "7class"
    window: int = 512
    overlap: int = 128
    read_threads: int | None = None  # None: `default_read_threads` of the engine's device
    aoi: str | Path | None = None
    # water and snow from published spectral tests where the network says land or shadow
    # (inference/refine.py); False: the network's classes as they are
    spectral: bool = True


@dataclass
class Stats:
    """What happened during a run, for the sidecar and the progress display."""

    windows_planned: int = 0
    windows_run: int = 0
    windows_empty: int = 0
    read_seconds: float = 0.0
    read_threads: int = 0
    model_seconds: float = 0.0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))


def plan(scene: Scene, options: RunOptions, aoi: AOI | None) -> list[Window]:
    """Windows over the grid, without those with no valid pixel (judged on a coarse read)."""
    windows = plan_windows(scene.shape, options.window, options.overlap)
    if aoi is not None:
        windows = [w for w in windows if aoi.touches(w)]
    factor = max(1.0, options.window / 16)
    if factor > 1 and len(windows) > 1:
        coarse = scene.with_resolution(scene.grid.resolution * factor)
        h, w = coarse.shape
        # every primary band at the coarse grid (reduced-resolution decodes, small next to the
        # run): a pixel has data where any band has, as the strips judge it. One band alone (the
        # coarsest) dropped windows where only that band lacked data.
        sample = coarse.read(Window(0, 0, w, h), bands=list(scene.primary))
        valid = np.isfinite(sample).any(axis=0)
        coarse.close()
        # the coarse grid may round the extent: scale by the true ratio of sizes
        windows = keep_windows(windows, valid, scene.shape[0] / h)
    return windows


def masked_strips(
    scene: Scene,
    engine: Engine,
    options: RunOptions,
    stats: Stats | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield finished strips ``(first_row, probabilities (7, n, W), valid (n, W))`` top to
    bottom, as tensors on the engine's device."""
    stats = stats if stats is not None else Stats()
    aoi = AOI(options.aoi, scene.grid) if options.aoi else None
    windows = plan(scene, options, aoi)
    stats.windows_planned = len(windows)
    if progress:
        progress(0, len(windows))
    blender = StripBlender(
        scene.shape, len(CLASSES), options.window, options.overlap, device=engine.device
    )
    desc = scene.descriptors()
    surfaces = [b.band for b in scene.bands] if options.spectral else None
    heap.limit_arenas()
    threads = options.read_threads or default_read_threads(engine.device)
    stats.read_threads = threads
    per_batch = engine.batch_size or 1  # the engine sets it on creation
    done = 0
    try:
        # leaving the reader waits for its reads in flight: they share the scene's handles
        with StripReader(scene, windows, aoi, threads) as reader:
            for strip in reader:
                stats.read_seconds += strip.seconds
                # rows above a new row of windows are final: hand them out before adding
                if strip.window.row_off > blender.base:
                    yield from blender.finish(int(strip.window.row_off))
                    heap.release()
                for k in range(0, len(strip.tiles), per_batch):
                    batch = strip.tiles[k : k + per_batch]
                    _predict(engine, desc, batch, blender, stats, surfaces)
                    done += len(batch)
                    if progress:
                        progress(done, len(windows))
    finally:
        scene.close()
    yield from blender.finish(scene.shape[0])


def _predict(
    engine: Engine,
    desc: np.ndarray,
    batch: list[Tile],
    blender: StripBlender,
    stats: Stats,
    surfaces: list[Band] | None = None,
) -> None:
    run = [t for t in batch if t.valid.any()]
    stats.windows_empty += len(batch) - len(run)
    if not run:
        return
    x = engine.host_batch((len(run), *run[0].x.shape))
    np.stack([t.x for t in run], out=x.numpy())  # straight into (pinned) memory: one copy
    band_mask = np.stack([t.bands for t in run])
    t0 = time.perf_counter()
    probs = engine.predict_tensor(x, desc, band_mask)
    stats.model_seconds += time.perf_counter() - t0
    stats.windows_run += len(run)
    if surfaces is not None:
        refine(probs, x.numpy(), surfaces)
    valid = torch.from_numpy(np.stack([t.valid for t in run])).to(probs.device)
    probs.mul_(valid[:, None])  # no probability where the input has no data
    for tile, p, v in zip(run, probs, valid, strict=True):
        blender.add(tile.window, p, v)


def mask_to_file(
    scene: Scene,
    engine: Engine,
    output: Path,
    options: RunOptions,
    *,
    probabilities: Path | None = None,
    overwrite: bool = False,
    model_info: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    stac: bool = False,
    quicklook: Path | None = None,
    quicklook_size: int = 1024,
    quicklook_layout: str = "side",
) -> Sidecar:
    """Mask a scene into a COG (and optional probability COG, STAC item and quicklook);
    returns the sidecar it wrote."""
    t0 = time.perf_counter()
    stats = Stats()
    if stac:
        from cloudmask_cli.inference.stac import check_stac_source

        check_stac_source(scene.product, scene.metadata)
    writer = MaskWriter(
        output, scene.grid, options.style, probabilities, overwrite, stac, quicklook
    )
    with writer:
        for _, probs, valid in masked_strips(scene, engine, options, stats, progress):
            codes = fold(probs, options.style, valid).cpu().numpy()
            stats.counts += np.bincount(codes.ravel(), minlength=256)
            writer.write(codes, probs.cpu().numpy() if probabilities is not None else None)
        sidecar = _sidecar(scene, engine, options, stats, model_info, time.perf_counter() - t0)

        def draw() -> None:  # from the finished COG's overviews and a decimated read
            from cloudmask_cli.quicklook import write_quicklook

            assert quicklook is not None  # drawn only when asked for
            t1 = time.perf_counter()
            write_quicklook(quicklook, scene, output, size=quicklook_size,
                            layout=quicklook_layout, fractions=sidecar.class_fractions)  # fmt: skip
            sidecar.quicklook = str(quicklook)
            assert sidecar.timings is not None  # set by `_sidecar`
            sidecar.timings.quicklook_s = round(time.perf_counter() - t1, 3)

        writer.finish(sidecar, draw if quicklook is not None else None)
    return sidecar


def _sidecar(
    scene: Scene,
    engine: Engine,
    options: RunOptions,
    stats: Stats,
    model_info: dict[str, Any] | None,
    seconds: float,
) -> Sidecar:
    total = int(stats.counts.sum())
    valid = total - int(stats.counts[NODATA])
    names = style_names(options.style)
    fractions = {
        names[code]: round(int(stats.counts[code]) / valid, 6) if valid else 0.0
        for code in names
        if code != NODATA
    }
    return Sidecar(
        cloudmask_version=__version__,
        product=scene.product,
        product_id=product_id(scene),
        product_type=scene.product_type,
        datetime=scene.metadata.get("datetime"),
        sensor=scene.sensor.name,
        style=options.style,
        codes={str(k): v for k, v in names.items()},
        class_fractions=fractions,
        valid_fraction=round(valid / total, 6) if total else 0.0,
        model=model_info or {},
        bands=[b.band.name for b in scene.bands],
        radiometry={b.band.name: b.radiometry.describe() for b in scene.bands},
        radiometric_offsets=scene.metadata.get("offsets"),
        auxiliary=scene.metadata.get("auxiliary"),
        resolution=scene.grid.resolution,
        crs=scene.crs.to_string(),
        shape=list(scene.shape),
        aoi=str(options.aoi) if options.aoi else None,
        spectral_tests=options.spectral,
        windows=Windows(
            size=options.window,
            overlap=options.overlap,
            planned=stats.windows_planned,
            run=stats.windows_run,
            empty=stats.windows_empty,
        ),
        device=str(engine.device),
        batch_size=engine.batch_size,
        precision=engine.precision,
        runtime=engine.runtime,
        flips=engine.flips,
        oom_events=engine.oom_events,
        float32_retries=engine.float32_retries,
        read_threads=stats.read_threads,
        timings=Timings(
            total_s=round(seconds, 3),
            read_s_summed_over_threads=round(stats.read_seconds, 3),
            model_s=round(stats.model_seconds, 3),
        ),
    )
