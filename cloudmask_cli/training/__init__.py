"""Training and evaluation: partial-label datasets, adapters, the loop, the paper's metrics.

Public API::

    from cloudmask_cli.training import load_config, train, evaluate, open_dataset, convert
"""

from __future__ import annotations

from typing import Any

__all__ = ["convert", "evaluate", "load_config", "open_dataset", "train"]


def __getattr__(name: str) -> Any:  # lazy: importing the package must not import torch
    if name == "train":
        from cloudmask_cli.training.loop import train

        return train
    if name == "evaluate":
        from cloudmask_cli.training.evaluate import evaluate

        return evaluate
    if name == "load_config":
        from cloudmask_cli.training.config import load_config

        return load_config
    if name in ("open_dataset", "convert"):
        from cloudmask_cli.training import adapters

        return getattr(adapters, name)
    raise AttributeError(name)
