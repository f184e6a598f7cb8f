"""Where a band lives and how its DN become physical values: the band's file and layer, its
radiometry, its no-data values and the masks that invalidate its pixels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine

from cloudmask_cli.sensors import Band


@dataclass(frozen=True)
class Radiometry:
    """DN -> physical value.

    ``x = (dn * scale + offset) / divisor``; with ``k1``/``k2`` the linear part is a radiance
    and the result is the brightness temperature ``k2 / ln(k1 / x + 1)`` in kelvin.
    """

    scale: float = 1.0
    offset: float = 0.0
    divisor: float = 1.0
    k1: float | None = None
    k2: float | None = None
    to_db: bool = False  # linear power -> decibels (SAR given in linear units)
    formula: str = ""

    def apply(self, dn: np.ndarray) -> np.ndarray:
        x = dn.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)
        if self.divisor != 1.0:
            x /= np.float32(self.divisor)
        if self.k1 is not None and self.k2 is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.float32(self.k2) / np.log(np.float32(self.k1) / x + 1.0)
            x[~np.isfinite(x)] = np.nan
        if self.to_db:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.where(x > 0, 10.0 * np.log10(x), np.nan).astype(np.float32)
        return x

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scale": self.scale, "offset": self.offset}
        if self.divisor != 1.0:
            out["divisor"] = self.divisor
        if self.k1 is not None:
            out.update(k1=self.k1, k2=self.k2)
        if self.formula:
            out["formula"] = self.formula
        return out


@dataclass(frozen=True)
class Mask:
    """A raster that marks invalid pixels: set bits, listed values, or values not listed."""

    path: str
    index: int | tuple[int, ...] = 1  # a tuple: layers of one file, read in one call, any flags
    invalid_bits: int = 0
    invalid_values: tuple[float, ...] = ()
    valid_values: tuple[float, ...] = ()
    name: str = ""

    def invalid(self, values: np.ndarray) -> np.ndarray:
        bad = np.zeros(values.shape, dtype=bool)
        if self.invalid_bits:
            bad |= (values.astype(np.int64) & self.invalid_bits) != 0
        if self.invalid_values:
            bad |= equals_any(values, self.invalid_values)
        if self.valid_values:
            bad |= ~equals_any(values, self.valid_values)
        return np.asarray(bad.any(axis=0)) if bad.ndim == 3 else bad


@dataclass(frozen=True, eq=False)
class InMemory:
    """A band's DN held in memory: a 2-D array on its own north-up grid (``transform``, in the
    scene's CRS), e.g. an ``xarray.DataArray``'s values. Read where it is, never written out."""

    values: np.ndarray
    transform: Affine


@dataclass(frozen=True)
class BandSource:
    """Where one band lives and how its DN become physical values."""

    band: Band
    path: str  # a GDAL path: file, /vsizip/..., /vstar/...; a name for an in-memory band
    index: int = 1
    radiometry: Radiometry = field(default_factory=Radiometry)
    nodata: tuple[float, ...] = ()  # DN values that mean "no data"
    masks: tuple[Mask, ...] = ()  # masks that apply to this band only
    resolution: float | None = None  # native resolution, if not the YAML's
    warp: bool = False  # on another grid (auxiliary rasters): warped onto the working grid
    memory: InMemory | None = field(default=None, compare=False, repr=False)  # not in a file


def to_physical(src: BandSource, dn: np.ndarray) -> np.ndarray:
    values = src.radiometry.apply(dn)
    if src.nodata:
        values[equals_any(dn, src.nodata)] = np.nan
    return values


def equals_any(values: np.ndarray, targets: tuple[float, ...]) -> np.ndarray:
    """``np.isin(values, targets)`` for the few targets of a no-data or mask list: one
    comparison per target (isin looks every pixel up in a table, several times slower)."""
    out = values == targets[0]
    for t in targets[1:]:
        out |= values == t
    return out
