"""The network (SEnSeI-v2 + SegFormer), its losses and its checkpoint format."""

from cloudmask_cli.model.checkpoint import load_checkpoint, model_hash, save_checkpoint
from cloudmask_cli.model.losses import ambiguous_cross_entropy, ambiguous_mse, recovery_loss
from cloudmask_cli.model.network import (
    CLASSES,
    CloudMaskNet,
    ModelConfig,
    build_model,
    count_parameters,
    normalise,
)

__all__ = [
    "CLASSES",
    "CloudMaskNet",
    "ModelConfig",
    "ambiguous_cross_entropy",
    "ambiguous_mse",
    "build_model",
    "count_parameters",
    "load_checkpoint",
    "model_hash",
    "normalise",
    "recovery_loss",
    "save_checkpoint",
]
