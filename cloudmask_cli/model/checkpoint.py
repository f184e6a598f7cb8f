"""Checkpoints: ``<name>.safetensors`` (weights) + ``<name>.yaml`` (everything else).

The YAML holds the format version, the full architecture (`ModelConfig.to_dict`), the class list,
the input conventions, the weights file's SHA-256 and whatever metadata the caller adds
(provenance, training, metrics, ...). Loading checks all of it and never unpickles anything.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import yaml
from torch import nn

from cloudmask_cli import descriptors as D
from cloudmask_cli.errors import InputError
from cloudmask_cli.model.network import CloudMaskNet, ModelConfig

FORMAT = "cloudmask-checkpoint"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
RESERVED_KEYS = (
    "format",
    "format_version",
    "weights",
    "architecture",
    "classes",
    "input",
    "output",
)

INPUT_CONVENTIONS: dict[str, Any] = {
    "x": "float32 [B, N, H, W]: physical values, one plane per band; NaN = invalid pixel",
    "units": {
        "reflectance": "reflectance (unitless, ~0..1)",
        "brightness_temperature": "kelvin",
        "sar_vv": "dB",
        "sar_vh": "dB",
        "sar_angle": "degrees",
        "dem": "metres",
    },
    "descriptors": f"[B, N, {D.LENGTH}] from cloudmask_cli.descriptors (flags at "
    f"{D.FLAG_MULTISPECTRAL} multispectral, {D.FLAG_SAR} SAR, {D.FLAG_DEM} DEM, "
    f"{D.FLAG_THERMAL} thermal)",
    "descriptor_length": D.LENGTH,
    "statistics": {
        "percentiles": list(D.PERCENTILES),
        "of": "normalised valid values of each band in each window, computed by the network",
    },
    "band_mask": "optional bool [B, N], True = band present",
    "spatial": "any H, W (padded to a multiple of 32 inside, output cropped)",
}
OUTPUT_CONVENTIONS = "float [B, num_classes, H, W] logits in the order of `classes`"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a checkpoint's weights file (``path``: the .safetensors, its YAML or stem)."""
    return sha256_file(_paths(Path(path))[0])


def model_hash(path: str | os.PathLike[str]) -> str:
    """Short (12 hex digits) SHA-256 of a checkpoint's weights file."""
    return weights_sha256(path)[:12]


def _paths(path: Path) -> tuple[Path, Path]:
    """(weights, yaml) for a path to either file (or to the common stem)."""
    if path.suffix in (".safetensors", ".yaml", ".yml"):
        stem = path.with_suffix("")
    else:
        stem = path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".yaml")


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it onto ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; weights are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    model: nn.Module,
    config: ModelConfig,
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Path, Path]:
    """Write ``path`` (``…/name.safetensors``) and ``…/name.yaml``; return both paths.

    Floating-point tensors are stored as ``dtype`` (float32, float16 or bfloat16); integer
    buffers as they are. ``metadata`` keys go to the top level of the YAML (they must not clash
    with the reserved keys). Both files are written under temporary names and renamed.
    """
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"unsupported checkpoint dtype {dtype}")
    metadata = dict(metadata or {})
    clash = [k for k in metadata if k in RESERVED_KEYS]
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved by the checkpoint format")
    weights_path, yaml_path = _paths(Path(path))
    weights_path.parent.mkdir(parents=True, exist_ok=True)

    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.contiguous().clone()
    atomic_write(
        weights_path,
        lambda tmp: safetensors.torch.save_file(tensors, tmp, metadata={"format": "pt"}),
    )
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "weights": {
            "file": weights_path.name,
            "sha256": sha256_file(weights_path),
            "dtype": str(dtype).removeprefix("torch."),
            "tensors": len(tensors),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "architecture": config.to_dict(),
        "classes": list(config.classes),
        "input": INPUT_CONVENTIONS,
        "output": OUTPUT_CONVENTIONS,
    }
    doc.update(metadata)
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)

    def write_yaml(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(yaml_path, write_yaml)
    return weights_path, yaml_path


def _first(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" (and {len(keys) - n} more)" if len(keys) > n else "")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's YAML as a dict, after checking the format (not the weights)."""
    weights_path, yaml_path = _paths(Path(path))
    if not yaml_path.is_file():
        raise InputError(yaml_path, "checkpoint description (.yaml) is missing beside the weights")
    try:
        doc = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(yaml_path, f"not a valid YAML file: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(yaml_path, f"not a cloudmask checkpoint description (format != {FORMAT})")
    version = doc.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise InputError(
            yaml_path,
            f"unsupported checkpoint format version {version!r} (this cloudmask reads "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))})",
        )
    for key in ("weights", "architecture"):
        if not isinstance(doc.get(key), dict):
            raise InputError(yaml_path, f"checkpoint description lacks the {key!r} section")
    return doc


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[CloudMaskNet, ModelConfig, dict[str, Any]]:
    """Load ``name.safetensors`` + ``name.yaml`` -> (model in eval mode, config, YAML dict).

    Raises `InputError` naming the file for a missing YAML or weights file, an unsupported
    format version, a bad architecture, a SHA-256 mismatch, or tensors that do not match the
    architecture. Weights are loaded as float32 whatever their stored dtype.
    """
    weights_path, yaml_path = _paths(Path(path))
    doc = read_metadata(path)
    if not weights_path.is_file():
        raise InputError(weights_path, "checkpoint weights (.safetensors) are missing")
    expected = doc["weights"].get("sha256")
    actual = sha256_file(weights_path)
    if expected != actual:
        raise InputError(
            weights_path,
            f"SHA-256 {actual[:12]}… does not match {str(expected)[:12]}… recorded in "
            f"{yaml_path.name}: the weights were changed or belong to another checkpoint",
        )
    try:
        config = ModelConfig.from_dict(doc["architecture"])
    except (TypeError, ValueError) as e:
        raise InputError(yaml_path, f"bad architecture: {e}") from None
    try:
        tensors = safetensors.torch.load_file(str(weights_path), device="cpu")
    except Exception as e:  # safetensors raises its own error types for malformed files
        raise InputError(weights_path, f"unreadable safetensors file: {e}") from None

    model = CloudMaskNet(config)
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    shaped = [
        f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}"
        for k, v in own.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors: {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {_first(unexpected)}")
    if shaped:
        problems.append(f"mis-shaped tensors: {_first(shaped, 3)}")
    if problems:
        raise InputError(
            weights_path,
            "weights do not match the architecture in the YAML; " + "; ".join(problems),
        )
    state = {k: (t.float() if t.is_floating_point() else t) for k, t in tensors.items()}
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    return model, config, doc
