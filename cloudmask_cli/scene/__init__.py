"""Scene: a product's bands on one working grid, read window by window.

A reader (``cloudmask_cli.products``) builds a `Scene` from a product's metadata; nothing is
decoded until `Scene.read` asks for a window, and each read decodes every band of the window once,
whatever the band's own resolution (`resample`: decimated through JPEG 2000 resolution levels and
overviews, upsampled without letting no data bleed).

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
