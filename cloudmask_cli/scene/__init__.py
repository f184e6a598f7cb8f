"""Scene: a product's bands on one working grid, read window by window.

A reader (``cloudmask_cli.products``) builds a `Scene` from a product's metadata; nothing is
decoded until `Scene.read` asks for a window. Each read decodes every band of the window once:

- source finer than the grid (e.g. 10 m bands at 60 m): GDAL decimates with ``average`` from
  ``out_shape``, so JP2 resolution levels and TIFF overviews are used instead of full decoding;
- same resolution: a plain windowed read;
- source coarser (e.g. 20 m bands at 10 m): the covering source pixels are read natively and
  upsampled here with a no-data-aware bilinear kernel, so no-data never bleeds into valid
  pixels and edges stay where the nearest source pixel puts them.

The package: `grid` (the working grid), `sources` (where a band lives, its radiometry and
masks), `resample` (one band read onto a window at any resolution), `scene` (the `Scene`).
"""

from dataclasses import replace

from cloudmask_cli.scene.grid import Grid
from cloudmask_cli.scene.resample import bilinear_nan
from cloudmask_cli.scene.scene import Scene, replace_bands
from cloudmask_cli.scene.sources import BandSource, InMemory, Mask, Radiometry

__all__ = [
    "BandSource",
    "Grid",
    "InMemory",
    "Mask",
    "Radiometry",
    "Scene",
    "bilinear_nan",
    "replace",
    "replace_bands",
]
