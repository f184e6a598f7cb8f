"""The bundled model weights: ``<name>.safetensors`` + ``<name>.yaml`` in the repository's
``weights/``, installed as the package ``cloudmask_cli.weight_files`` (pyproject.toml maps it)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from cloudmask_cli.errors import InputError

DEFAULT_NAME = "cloudmask-b0"


def bundled_dir() -> Path:
    return Path(str(resources.files("cloudmask_cli.weight_files")))


def default_weights() -> Path:
    """The bundled default weights file."""
    path = bundled_dir() / f"{DEFAULT_NAME}.safetensors"
    if not path.is_file():
        raise InputError(path, "the bundled weights are missing; pass --weights W.safetensors")
    return path
