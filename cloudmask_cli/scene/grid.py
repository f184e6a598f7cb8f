"""The working grid: a north-up pixel grid every band of a scene is read onto."""

from __future__ import annotations

from dataclasses import dataclass

import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, transform and size."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @classmethod
    def from_bounds(
        cls, crs: CRS, bounds: tuple[float, float, float, float], resolution: float
    ) -> Grid:
        left, bottom, right, top = bounds
        width = max(1, round((right - left) / resolution))
        height = max(1, round((top - bottom) / resolution))
        return cls(crs, Affine(resolution, 0, left, 0, -resolution, top), width, height)

    @property
    def resolution(self) -> float:
        return abs(self.transform.a)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    def at_resolution(self, resolution: float) -> Grid:
        return Grid.from_bounds(self.crs, self.bounds, resolution)

    def window_bounds(self, window: Window) -> tuple[float, float, float, float]:
        return rasterio.windows.bounds(window, self.transform)

    def window_transform(self, window: Window) -> Affine:
        return rasterio.windows.transform(window, self.transform)
