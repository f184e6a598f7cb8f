"""The bundled model weights: ``<name>.safetensors`` + ``<name>.yaml`` beside this file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from cloudmask_cli.errors import InputError

DEFAULT_NAME = "cloudmask-b0"


def bundled_dir() -> Path:
    return Path(str(resources.files(__package__)))


def default_weights() -> Path:
    """The bundled default weights file."""
    path = bundled_dir() / f"{DEFAULT_NAME}.safetensors"
    if not path.is_file():
        raise InputError(path, "the bundled weights are missing; pass --weights W.safetensors")
    return path
