"""The training state beside a checkpoint, for ``--resume``: no pickles.

``<stem>.state.safetensors`` holds tensors (optimiser moments, RNG states); ``<stem>.state.json``
holds everything else (counters, schedule, optimiser hyper-parameters, AMP scaler, config).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from cloudmask_cli.errors import InputError
from cloudmask_cli.model.checkpoint import atomic_write

FORMAT = "cloudmask-training-state"
VERSION = 1


def state_paths(checkpoint: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(tensors, json) paths of the training state beside ``…/name.safetensors``."""
    p = Path(checkpoint)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".yaml", ".yml") else p
    return stem.with_name(stem.name + ".state.safetensors"), stem.with_name(
        stem.name + ".state.json"
    )


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                plain.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = t
    for pid, extra in meta.get("plain_state", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def save_state(
    checkpoint: str | os.PathLike[str],
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
    extra: dict[str, torch.Tensor] | None = None,
) -> tuple[Path, Path]:
    """Write the optimiser state, the RNG states, ``extra`` tensors (the weight average) and
    ``info`` (JSON-able) beside a checkpoint."""
    tensor_path, json_path = state_paths(checkpoint)
    tensors, optim_meta = _flatten_optimizer(optimizer.state_dict())
    tensors.update(extra or {})
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    atomic_write(tensor_path, lambda tmp: safetensors.torch.save_file(tensors, tmp))
    doc = {"format": FORMAT, "version": VERSION, "optimizer": optim_meta, **info}
    text = json.dumps(doc, indent=1, default=float)
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return tensor_path, json_path


def read_info(json_path: Path) -> dict[str, Any]:
    """The JSON half of a training state (counters, schedule, config), checked for its format."""
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(json_path, f"unreadable training state ({exc})") from None
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise InputError(json_path, f"not a cloudmask training state (format {FORMAT} v{VERSION})")
    return info


def load_state(
    checkpoint: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, info) of the training state beside ``checkpoint``."""
    tensor_path, json_path = state_paths(checkpoint)
    for p in (tensor_path, json_path):
        if not p.is_file():
            raise InputError(
                p, "training state for --resume is missing (written beside last.safetensors)"
            )
    info = read_info(json_path)
    try:
        tensors = safetensors.torch.load_file(str(tensor_path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(tensor_path, f"unreadable safetensors file: {exc}") from None
    return tensors, info


def restore(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any]
) -> None:
    """Load the optimiser state and the RNG states saved by `save_state`."""
    optimizer.load_state_dict(_unflatten_optimizer(tensors, info["optimizer"]))
    torch.set_rng_state(tensors["rng.cpu"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
