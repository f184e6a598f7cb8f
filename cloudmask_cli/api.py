"""The Python API: `CloudMasker` (the model loaded once), and the one-call conveniences `mask`
(an xarray.DataArray) and `run` (a COG like the CLI's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr

from cloudmask_cli.masker import CloudMasker, load_model
from cloudmask_cli.records import Sidecar

__all__ = ["CloudMasker", "load_model", "mask", "run"]


def mask(
    source: str | Path | xr.DataArray,
    *,
    weights: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    precision: str | None = None,
    flips: bool = False,
    runtime: str = "auto",
    **options: Any,
) -> xr.DataArray:
    """`CloudMasker.mask` (its keyword ``options``) with a masker made for this one call: it
    loads the model, so to mask many products make one `CloudMasker` and call it for each."""
    masker = CloudMasker(weights, device=device, batch_size=batch_size, precision=precision,
                         flips=flips, runtime=runtime)  # fmt: skip
    return masker.mask(source, **options)


def run(
    product: str | Path,
    output: str | Path,
    *,
    weights: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    precision: str | None = None,
    flips: bool = False,
    runtime: str = "auto",
    masker: CloudMasker | None = None,
    **options: Any,
) -> Sidecar:
    """What `cloudmask run` does: `CloudMasker.run` (its keyword ``options``) with ``masker``,
    or one made for this call from ``weights``, ``device``, ``batch_size``, ``precision``,
    ``flips`` and ``runtime``."""
    if masker is None:
        masker = CloudMasker(weights, device=device, batch_size=batch_size,
                             precision=precision, flips=flips, runtime=runtime)  # fmt: skip
    return masker.run(product, output, **options)
