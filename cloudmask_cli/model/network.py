"""The cloud-masking network: SEnSeI-v2 embedding -> SegFormer -> 7 class logits.

Input conventions (also written into every checkpoint's YAML):

- ``x [B, N, H, W]``: *physical* values, one plane per band: reflectance (unitless, ~0..1),
  brightness temperature in kelvin, SAR backscatter in dB, SAR incidence angle in degrees, DEM
  in metres. NaN (or any non-finite value) marks an invalid pixel of that band.
- ``descriptors [B, N, LENGTH]`` (or ``[N, LENGTH]`` for the whole batch): the bands' descriptor
  vectors (`cloudmask_cli.descriptors`); the band kind, hence the normalisation, comes from its
  flags. Percentile statistics are appended inside the network.
- ``band_mask [B, N]`` (optional, bool): True where a band is present; lets a batch carry samples
  with different numbers of bands, padded (with anything) to the same N.

Output: ``[B, 7, H, W]`` logits in the order of `CLASSES`, at input resolution. H and W are free
(inputs are padded to a multiple of 32 internally and the output cropped).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass
from torch import Tensor, nn

from cloudmask_cli import descriptors as D
from cloudmask_cli.classes import CLASSES
from cloudmask_cli.model.segformer import SIZES, SegFormer
from cloudmask_cli.model.sensei import (
    DEFAULT_CLIP,
    DEFAULT_NORMALISATION,
    KINDS,
    POOLINGS,
    PoolFn,
    SEnSeI,
    normalise_bands,
)
from cloudmask_cli.schema import CONFIG, validated

NO_DATA_LOGIT = 10.0  # what a sample without any valid pixel gets for the "no_data" class

# Fields that change how the network trains, not its weights: a fine-tuning config may set them.
TRAINING_ONLY = ("drop_path", "dropout", "stats_noise")


@dataclass(config=CONFIG)
class ModelConfig:
    """Everything that fixes the architecture (saved as ``architecture`` in a checkpoint YAML);
    a schema (`cloudmask_cli.schema`): types checked, unknown keys are errors."""

    segformer: str = "b0"  # "b0" | "b1" | "b2" ("tiny": a test-only miniature)
    sensei_width: int = 128  # width of the per-band feature vectors
    sensei_depth: int = 2  # residual fully connected blocks before attention
    sensei_attention_layers: int = 2  # transformer blocks across bands
    sensei_heads: int = 4
    sensei_pooling: str = "mean"  # "mean" (the paper) | "weighted" (learned weight per band)
    embed_channels: int = 32  # SEnSeI output channels = SegFormer input channels
    num_classes: int = 7
    classes: tuple[str, ...] = CLASSES
    recovery_width: int = 128  # recovery head (paper IV-B): 2 FC layers of this width
    drop_path: float = 0.1  # stochastic depth in the encoder (training only)
    dropout: float = 0.1  # before the decoder's classifier (training only)
    stats_samples: int = 4096  # pixels sampled per band for the percentile statistics
    stats_noise: float = 0.0  # std of noise added to those statistics (training only)
    max_frequency: float = 50.0  # initial spread of SEnSeI's embedding frequencies
    # (offset, scale) per band kind: normalised = (physical - offset) / scale, clipped to ±clip
    normalisation: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_NORMALISATION)
    )
    clip: float = DEFAULT_CLIP

    def __post_init__(self) -> None:
        if self.segformer not in SIZES:
            raise ValueError(
                f"unknown segformer size {self.segformer!r}; expected one of {', '.join(SIZES)}"
            )
        if self.sensei_pooling not in POOLINGS:
            raise ValueError(
                f"unknown sensei_pooling {self.sensei_pooling!r}; expected one of "
                f"{', '.join(POOLINGS)}"
            )
        self.classes = tuple(self.classes)
        if len(self.classes) != self.num_classes:
            raise ValueError(f"{len(self.classes)} class names for num_classes={self.num_classes}")
        missing = [k for k in KINDS if k not in self.normalisation]
        if missing:
            raise ValueError(f"normalisation lacks band kinds: {', '.join(missing)}")
        extra = [k for k in self.normalisation if k not in KINDS]
        if extra:
            raise ValueError(f"normalisation has unknown band kinds: {', '.join(extra)}")
        norm = {}
        for k in KINDS:
            off, scale = (float(v) for v in self.normalisation[k])
            if scale == 0:
                raise ValueError(f"normalisation scale of {k} is zero")
            norm[k] = (off, scale)
        self.normalisation = norm
        if self.sensei_width % self.sensei_heads:
            raise ValueError(
                f"sensei_width {self.sensei_width} is not divisible by sensei_heads "
                f"{self.sensei_heads}"
            )

    @classmethod
    def tiny(cls, **overrides: Any) -> ModelConfig:
        """The smallest complete network, for tests (randomly initialised, fast on CPU)."""
        base: dict[str, Any] = dict(
            segformer="tiny",
            sensei_width=32,
            sensei_depth=1,
            sensei_attention_layers=1,
            sensei_heads=2,
            embed_channels=16,
            recovery_width=32,
            drop_path=0.0,
            dropout=0.0,
            stats_noise=0.0,
        )
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-safe types only (lists, not tuples)."""
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["normalisation"] = {k: [float(a), float(b)] for k, (a, b) in self.normalisation.items()}
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys are an error, absent keys take defaults."""
        if not isinstance(data, dict):
            raise ValueError(f"model architecture must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown architecture keys: {', '.join(unknown)}")
        return validated(cls, data)


def normalise(
    x: Tensor, descriptors: Tensor, config: ModelConfig, finite: Tensor | None = None
) -> Tensor:
    """Physical values -> the network's normalised values (NaN kept where invalid).

    This is also the target of the recovery head (`CloudMaskNet.recover`).
    """
    return normalise_bands(x, descriptors, config.normalisation, config.clip, finite)


class RecoveryHead(nn.Module):
    """Predicts each band's normalised values from the embedding and the band's descriptor.

    Equivalent to concatenating the descriptor to the embedding at every pixel and applying
    FC(width) -> GELU -> FC(width) -> GELU -> FC(1); the first layer is split in two so the
    descriptor part is computed once per band, not per pixel.
    """

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.embedding_in = nn.Conv2d(channels, width, 1)
        self.descriptor_in = nn.Linear(D.LENGTH, width, bias=False)
        self.fc2 = nn.Conv2d(width, width, 1)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, embedding: Tensor, descriptors: Tensor) -> Tensor:
        b = embedding.shape[0]
        if descriptors.dim() == 2:
            descriptors = descriptors.expand(b, -1, -1)
        base = self.embedding_in(embedding)
        per_band = self.descriptor_in(descriptors[..., : D.LENGTH].to(base.dtype))
        outs = []
        for i in range(descriptors.shape[1]):
            h = F.gelu(base + per_band[:, i, :, None, None])
            outs.append(self.out(F.gelu(self.fc2(h))))
        return torch.cat(outs, dim=1)


class CloudMaskNet(nn.Module):
    """SEnSeI-v2 + SegFormer; see the module docstring for the input conventions."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.sensei = SEnSeI(
            width=config.sensei_width,
            depth=config.sensei_depth,
            attention_layers=config.sensei_attention_layers,
            heads=config.sensei_heads,
            channels=config.embed_channels,
            stats_samples=config.stats_samples,
            stats_noise=config.stats_noise,
            max_frequency=config.max_frequency,
            pooling=config.sensei_pooling,
        )
        self.segformer = SegFormer(
            config.embed_channels,
            config.num_classes,
            config.segformer,
            drop_path=config.drop_path,
            dropout=config.dropout,
        )
        self.recovery = RecoveryHead(config.embed_channels, config.recovery_width)

    def embed(
        self,
        x: Tensor,
        descriptors: Tensor,
        band_mask: Tensor | None = None,
        finite: Tensor | None = None,
    ) -> Tensor:
        """SEnSeI output ``[B, embed_channels, H, W]`` (zeros where no band is valid);
        ``finite``: ``isfinite(x)`` when the caller has it already."""
        if x.dim() != 4:
            raise ValueError(f"expected x of shape [B, N, H, W], got {tuple(x.shape)}")
        descriptors = descriptors.to(x.device)
        finite = torch.isfinite(x) if finite is None else finite
        xn = normalise(x, descriptors, self.config, finite)
        return self.sensei(xn, descriptors, band_mask, finite)

    def segment(self, embedding: Tensor, present: Tensor | None = None) -> Tensor:
        """SegFormer part: embedding ``[B, C, H, W]`` -> logits ``[B, classes, H, W]``.

        ``present [B]`` (see `has_data`) marks the samples with any valid pixel; the others
        skip the SegFormer and get "no_data" logits. Their embedding is all zeros, and layer
        norms over constant tokens amplify gradients ~1000x each: chained, they overflow and
        poison the whole batch's update (and batch norm would mix them into the others).
        """
        if present is None or bool(present.all()):
            return self.segformer(embedding)
        b, _, h, w = embedding.shape
        logits = embedding.new_zeros(b, self.config.num_classes, h, w)
        if "no_data" in self.config.classes:
            logits[:, self.config.classes.index("no_data")] = NO_DATA_LOGIT
        if bool(present.any()):
            idx = present.nonzero().squeeze(1)
            logits = logits.index_put((idx,), self.segformer(embedding[idx]).to(logits.dtype))
        return logits

    def for_inference(
        self, segformer: nn.Module | None = None, pool: PoolFn | None = None
    ) -> CloudMaskNet:
        """The same network (sharing its weights) with its SegFormer, or SEnSeI's band pooling
        in inference, run another way (inference/openvino.py, inference/compiled.py); this
        network is left as it is."""
        new = copy.copy(self)
        new._modules = dict(self._modules)  # a shallow copy would share the module table
        if segformer is not None:
            new._modules["segformer"] = segformer
        if pool is not None:
            sensei = copy.copy(self.sensei)
            sensei._modules = dict(self.sensei._modules)
            sensei.pool = pool
            new._modules["sensei"] = sensei
        return new

    def recover(self, embedding: Tensor, descriptors: Tensor) -> Tensor:
        """Recovery head (training only): predicted normalised band values ``[B, N, H, W]``.

        Purely per pixel, and its activations cost ``N × recovery_width`` floats per pixel in
        training: pass a pixel subset (e.g. ``embedding[..., ::4, ::4]``, or gathered pixels shaped
        ``[B, C, 1, P]``) with the matching subset of `normalise`'s target to bound memory.
        """
        return self.recovery(embedding, descriptors.to(embedding.device))

    def forward(self, x: Tensor, descriptors: Tensor, band_mask: Tensor | None = None) -> Tensor:
        finite = torch.isfinite(x)  # once: normalising, SEnSeI's statistics and masks use it
        embedding = self.embed(x, descriptors, band_mask, finite)
        return self.segment(embedding, has_data(x, band_mask, finite))


def has_data(x: Tensor, band_mask: Tensor | None = None, finite: Tensor | None = None) -> Tensor:
    """``[B]`` bool: the samples of ``x [B, N, H, W]`` with at least one valid band value."""
    finite = torch.isfinite(x) if finite is None else finite
    if band_mask is not None:
        finite = finite & band_mask.to(device=x.device, dtype=torch.bool)[:, :, None, None]
    return finite.flatten(1).any(1)


def build_model(config: ModelConfig | None = None, *, seed: int | None = None) -> CloudMaskNet:
    """A randomly initialised network (seeded if ``seed`` is given), in eval mode."""
    config = config or ModelConfig()
    if seed is None:
        return CloudMaskNet(config).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CloudMaskNet(config).eval()


def count_parameters(model: nn.Module, *, include_recovery: bool = True) -> int:
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if include_recovery or not name.startswith("recovery.")
    )
