"""Write the mask (and optional probabilities) as Cloud Optimized GeoTIFFs, plus a sidecar JSON.

Strips arrive top to bottom. They are gathered into whole rows of 512-px tiles and written
once each to a tiled temporary GeoTIFF beside the output; at the end GDAL's COG driver adds
``mode``-resampled overviews and lays the file out as a COG under a second temporary name,
which is renamed onto the final name. A crash or Ctrl-C never leaves a file under the final
name, and `abort` removes the temporaries.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioError

from cloudmask_cli.classes import CLASSES, NODATA, colormap, style_names
from cloudmask_cli.errors import InputError
from cloudmask_cli.records import Sidecar
from cloudmask_cli.scene import Grid

BLOCK = 512


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + ".json")


def quicklook_path(output: Path) -> Path:
    """Where `batch --quicklooks` puts a mask's quicklook: ``mask.tif`` -> ``mask.png``."""
    return output.with_name(output.stem + ".png")


def run_outputs(
    mask: Path,
    probabilities: Path | None = None,
    stac: bool = False,
    quicklook: Path | None = None,
) -> list[Path]:
    """Every file one run writes: the mask, its sidecar and, if asked for, the probabilities,
    the STAC item and the quicklook."""
    from cloudmask_cli.inference.stac import stac_path

    paths = [Path(mask), sidecar_path(Path(mask))]
    if probabilities is not None:
        paths.append(Path(probabilities))
    if stac:
        paths.append(stac_path(Path(mask)))
    if quicklook is not None:
        from cloudmask_cli.quicklook import check_quicklook_path

        check_quicklook_path(Path(quicklook))
        paths.append(Path(quicklook))
    return paths


def check_outputs(
    paths: Iterable[Path], overwrite: bool = False, inputs: Iterable[str | Path] = ()
) -> None:
    """Refuse, before any work, output paths that could not be written at the end: a folder or
    other non-file in the way, a missing or unwritable parent folder, one path given for two
    outputs, one of the product's ``inputs`` (its files would be replaced by the mask, even
    with ``overwrite``), or (unless ``overwrite``) an existing file. Raises a one-line
    `InputError`."""
    seen: set[Path] = set()
    probed: set[Path] = set()
    sources = {Path(os.path.realpath(p)) for p in inputs}
    for path in map(Path, paths):
        full = Path(os.path.abspath(path))
        if full in seen:
            raise InputError(path, "is given for two outputs of the same run")
        seen.add(full)
        if Path(os.path.realpath(path)) in sources:
            raise InputError(path, "is an input of the product; writing there would destroy it")
        if path.is_dir():
            raise InputError(path, "is a folder; give a file name for the output")
        if path.exists() and not path.is_file():
            raise InputError(path, "exists and is not a regular file")
        folder = full.parent
        if not folder.exists():
            raise InputError(path, f"output folder {path.parent} does not exist")
        if not folder.is_dir():
            raise InputError(path, f"{path.parent} is not a folder")
        if folder not in probed:
            _probe(folder, path)
            probed.add(folder)
        if path.exists() and not overwrite:
            raise InputError(path, "already exists (use --overwrite to replace it)")


def input_files(scene: Any) -> list[str]:
    """The local files a scene reads (band rasters, masks, the product file itself): never
    an output. Remote paths cannot be written over and are left out."""
    paths = [scene.product] + [b.path for b in scene.bands] + [m.path for m in scene.masks]
    paths += [m.path for b in scene.bands for m in b.masks]
    # /vsizip/, /vsitar/ paths: the archive is the product itself, already listed
    return [p for p in map(str, paths) if not p.startswith("/vsi") and os.path.isfile(p)]


def _probe(folder: Path, path: Path) -> None:
    # create and remove a file: permission bits lie to root and to read-only mounts
    try:
        fd, name = tempfile.mkstemp(prefix=".cloudmask-probe-", dir=folder)
    except OSError as exc:
        raise InputError(path, f"cannot write in folder {path.parent} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(name)


def _tmp(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}.tif")


class _RasterSink:
    """One temporary tiled GeoTIFF fed by row strips, finished as a COG."""

    def __init__(self, path: Path, grid: Grid, count: int, tags: dict[str, str]) -> None:
        self.path = path
        self.raw = _tmp(path, "raw")
        self.cog = _tmp(path, "cog")
        self.grid = grid
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.next_row = 0
        self.ds = rasterio.open(
            self.raw,
            "w",
            driver="GTiff",
            width=grid.width,
            height=grid.height,
            count=count,
            dtype="uint8",
            crs=grid.crs,
            transform=grid.transform,
            nodata=NODATA,
            tiled=True,
            blockxsize=BLOCK,
            blockysize=BLOCK,
            compress="ZSTD",
            zstd_level=1,
            BIGTIFF="IF_SAFER",
        )
        self.ds.update_tags(**tags)

    def write(self, rows: np.ndarray) -> None:
        """Append rows ``(count, n, W)``; whole tile rows are written as soon as they are full."""
        self.pending.append(rows)
        self.pending_rows += rows.shape[1]
        while self.pending_rows >= BLOCK or (
            self.pending_rows and self.next_row + self.pending_rows >= self.grid.height
        ):
            block = np.concatenate(self.pending, axis=1)
            n = min(BLOCK, block.shape[1])
            window = rasterio.windows.Window(0, self.next_row, self.grid.width, n)
            self.ds.write(block[:, :n], window=window)
            self.next_row += n
            rest = block[:, n:]
            self.pending = [rest] if rest.shape[1] else []
            self.pending_rows = rest.shape[1]

    def finish(self, resampling: str) -> None:
        if self.next_row != self.grid.height:
            raise RuntimeError(f"{self.path}: {self.next_row} of {self.grid.height} rows written")
        self.ds.close()
        rasterio.shutil.copy(
            self.raw,
            self.cog,
            driver="COG",
            COMPRESS="DEFLATE",
            BLOCKSIZE=BLOCK,
            OVERVIEW_RESAMPLING=resampling,
            BIGTIFF="IF_SAFER",
            NUM_THREADS="ALL_CPUS",
        )
        self.raw.unlink()
        os.replace(self.cog, self.path)

    def abort(self) -> None:
        if not self.ds.closed:
            self.ds.close()
        for p in (self.raw, self.cog):
            p.unlink(missing_ok=True)


class MaskWriter:
    """The class raster, the optional probability raster, and the sidecar JSON."""

    def __init__(
        self,
        path: Path,
        grid: Grid,
        style: str,
        probabilities: Path | None = None,
        overwrite: bool = False,
        stac: bool = False,
        quicklook: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.style = style
        self.stac = stac
        check_outputs(run_outputs(self.path, probabilities, stac, quicklook), overwrite)
        names = style_names(style)
        tags = {
            "CLOUDMASK_STYLE": style,
            "CLOUDMASK_CLASSES": json.dumps({str(k): v for k, v in names.items()}),
        }
        try:
            self.mask = _RasterSink(self.path, grid, 1, tags)
            self.mask.ds.write_colormap(1, colormap(style))
            self.mask.ds.set_band_description(
                1, f"cloudmask {style}: " + ", ".join(f"{k}={v}" for k, v in names.items())
            )
            self.probs = None
            if probabilities is not None:
                self.probs = _RasterSink(
                    Path(probabilities),
                    grid,
                    len(CLASSES),
                    {"CLOUDMASK_SCALE": "probability = value / 254; 255 = no data"},
                )
                for i, name in enumerate(CLASSES, start=1):
                    self.probs.ds.set_band_description(i, f"probability of {name} (value / 254)")
        except RasterioError as exc:
            raise InputError(self.path, f"cannot write ({exc})") from None

    def write(self, codes: np.ndarray, probs: np.ndarray | None = None) -> None:
        """Append rows: class codes ``(n, W)`` and, if asked for, probabilities ``(7, n, W)``."""
        self.mask.write(codes[None])
        if self.probs is not None and probs is not None:
            scaled = np.rint(np.clip(probs, 0, 1) * 254).astype(np.uint8)
            scaled[:, codes == NODATA] = NODATA
            self.probs.write(scaled)

    def finish(self, sidecar: Sidecar, before_sidecar: Callable[[], None] | None = None) -> None:
        """Finish the rasters, then ``before_sidecar`` (the quicklook: it reads the finished
        COG), the STAC item (if asked for), then the sidecar: the sidecar comes last, so its
        presence means the run is complete."""
        self.mask.finish("MODE")
        if self.probs is not None:
            self.probs.finish("AVERAGE")
        if before_sidecar is not None:
            before_sidecar()
        side = sidecar_path(self.path)
        if self.stac:
            from cloudmask_cli.inference.stac import stac_path, write_item

            probs = self.probs.path if self.probs is not None else None
            write_item(stac_path(self.path), self.path, sidecar, probs, side)
        tmp = side.with_name(f".{side.name}.{os.getpid()}")
        tmp.write_text(sidecar.to_json())
        os.replace(tmp, side)

    def abort(self) -> None:
        self.mask.abort()
        if self.probs is not None:
            self.probs.abort()

    def __enter__(self) -> MaskWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()
