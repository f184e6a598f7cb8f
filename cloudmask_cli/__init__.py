"""cloudmask: sensor-independent cloud and cloud-shadow masks (SEnSeI-v2 + SegFormer)."""

from __future__ import annotations

__version__ = "0.1.0"

from cloudmask_cli.errors import InputError
from cloudmask_cli.products import open_product

__all__ = ["InputError", "__version__", "open_product"]
