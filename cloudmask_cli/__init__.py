"""cloudmask: sensor-independent cloud and cloud-shadow masks (SEnSeI-v2 + SegFormer).

>>> import cloudmask_cli
>>> scene = cloudmask_cli.open_product("S2A_MSIL1C_....SAFE", resolution=20)
>>> codes = cloudmask_cli.mask("S2A_MSIL1C_....SAFE")     # xarray.DataArray with CRS
>>> cloudmask_cli.run("S2A_MSIL1C_....SAFE", "mask.tif")  # COG + sidecar, like the CLI
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from cloudmask_cli.errors import InputError
from cloudmask_cli.products import open_product


def __getattr__(name: str) -> Any:
    # torch and xarray load only when the model is used, so `cloudmask info` starts fast
    if name in ("CloudMasker", "mask", "run", "load_model"):
        from cloudmask_cli import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["CloudMasker", "InputError", "__version__", "load_model", "mask", "open_product", "run"]
