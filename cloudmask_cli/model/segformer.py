"""SegFormer (Xie et al. 2021) in plain PyTorch: Mix Transformer encoder + all-MLP decoder.

Encoder: four stages, each an overlapping patch embedding (strided convolution, 7×7/4 then 3×3/2),
transformer blocks with efficient self-attention (keys and values spatially reduced by a strided
convolution of ratio R) and a Mix-FFN (MLP with a depthwise 3×3 convolution), then a layer norm.
Decoder: every stage projected to a common width, upsampled to 1/4 resolution, concatenated, fused
by a 1×1 convolution and classified; the logits are upsampled bilinearly to the input size.

Sizes come from one table (`SIZES`); the input width is whatever SEnSeI produces.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class SegFormerSize:
    dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    heads: tuple[int, int, int, int]
    sr_ratios: tuple[int, int, int, int]
    decoder_dim: int
    mlp_ratio: int = 4


SIZES: dict[str, SegFormerSize] = {
    "b0": SegFormerSize((32, 64, 160, 256), (2, 2, 2, 2), (1, 2, 5, 8), (8, 4, 2, 1), 256),
    "b1": SegFormerSize((64, 128, 320, 512), (2, 2, 2, 2), (1, 2, 5, 8), (8, 4, 2, 1), 256),
    "b2": SegFormerSize((64, 128, 320, 512), (3, 4, 6, 3), (1, 2, 5, 8), (8, 4, 2, 1), 768),
    # Not a SegFormer size: the smallest network that still has every part, for fast tests.
    "tiny": SegFormerSize((8, 16, 32, 32), (1, 1, 1, 1), (1, 1, 2, 2), (8, 4, 2, 1), 32, 2),
}
STRIDES = (4, 2, 2, 2)
OUTPUT_STRIDE = 32  # total downsampling of the last stage: inputs are padded to a multiple


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_ch: int, dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, kernel, stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys/values come from an R×R-reduced copy of the map."""

    def __init__(self, dim: int, heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        d = c // self.heads
        q = self.q(x).view(b, n, self.heads, d).transpose(1, 2)
        if self.sr_ratio > 1:
            r = self.sr(x.transpose(1, 2).reshape(b, c, h, w))
            r = self.norm(r.flatten(2).transpose(1, 2))
        else:
            r = x
        kv = self.kv(r).view(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = self.fc1(x)
        b, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, sr_ratio: int, mlp_ratio: int, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientSelfAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = MixFFN(dim, dim * mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.ffn(self.norm2(x), h, w))


class Stage(nn.Module):
    def __init__(
        self,
        in_ch: int,
        dim: int,
        heads: int,
        sr: int,
        mlp_ratio: int,
        stride: int,
        drop_paths: list[float],
    ) -> None:
        super().__init__()
        self.embed = OverlapPatchEmbed(in_ch, dim, 7 if stride == 4 else 3, stride)
        self.blocks = nn.ModuleList(Block(dim, heads, sr, mlp_ratio, p) for p in drop_paths)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x, h, w = self.embed(x)
        for block in self.blocks:
            x = block(x, h, w)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(x.shape[0], -1, h, w)


class MixTransformer(nn.Module):
    """The hierarchical encoder: four feature maps at strides 4, 8, 16, 32."""

    def __init__(self, in_ch: int, size: SegFormerSize, drop_path: float = 0.0) -> None:
        super().__init__()
        total = sum(size.depths)
        rates = [drop_path * i / max(total - 1, 1) for i in range(total)]
        stages, first, prev = [], 0, in_ch
        for i in range(4):
            depth = size.depths[i]
            stages.append(
                Stage(
                    prev,
                    size.dims[i],
                    size.heads[i],
                    size.sr_ratios[i],
                    size.mlp_ratio,
                    STRIDES[i],
                    rates[first : first + depth],
                )
            )
            first += depth
            prev = size.dims[i]
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class AllMLPDecoder(nn.Module):
    def __init__(self, dims: tuple[int, ...], dim: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(d, dim, 1) for d in dims)
        self.fuse = nn.Sequential(
            nn.Conv2d(dim * len(dims), dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU()
        )
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Conv2d(dim, classes, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        size = feats[0].shape[-2:]
        ups = []
        for proj, f in zip(self.project, feats, strict=True):
            f = proj(f)
            if f.shape[-2:] != size:
                f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            ups.append(f)
        # Concatenate deepest first (as the reference decoder does).
        return self.classify(self.dropout(self.fuse(torch.cat(ups[::-1], dim=1))))


class FoldedDecoder(nn.Module):
    """An `AllMLPDecoder` for inference, with the same logits up to float rounding.

    The fuse convolution (1×1, 4·dim -> dim) over the concatenated upsampled projections is
    most of a B0's arithmetic: at a quarter of the input size it multiplies 1024 channels per
    pixel. Each stage's projection, its block of the fuse weights and the (eval-mode) batch
    norm are all linear, and bilinear upsampling is linear per channel with weights summing to
    1, so they commute: one 1×1 convolution per stage, applied at the stage's own resolution,
    then upsampled and summed, gives the fused map; the biases add up to one.
    """

    def __init__(self, decoder: AllMLPDecoder) -> None:
        super().__init__()
        conv, norm = decoder.fuse[0], decoder.fuse[1]
        assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
        assert norm.running_mean is not None and norm.running_var is not None
        dim = conv.out_channels
        with torch.no_grad():  # in float64: the products are rounded once, to float32
            scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
            bias = norm.bias.double() - norm.running_mean.double() * scale
            # the fuse input is concatenated deepest stage first
            blocks = conv.weight.double()[:, :, 0, 0].split(dim, dim=1)[::-1]
            self.project = nn.ModuleList()
            for proj, block in zip(decoder.project, blocks, strict=True):
                assert isinstance(proj, nn.Conv2d) and proj.bias is not None
                weight = scale[:, None] * (block @ proj.weight.double()[:, :, 0, 0])
                bias = bias + scale * (block @ proj.bias.double())
                folded = nn.Conv2d(proj.in_channels, dim, 1, bias=False)
                folded.weight.copy_(weight[:, :, None, None].float())
                self.project.append(folded)
            self.register_buffer("bias", bias.float()[None, :, None, None])
        self.classify = decoder.classify

    def forward(self, feats: list[Tensor]) -> Tensor:
        size = feats[0].shape[-2:]
        fused = self.project[0](feats[0]) + self.bias
        for proj, f in zip(self.project[1:], feats[1:], strict=True):
            fused += F.interpolate(proj(f), size=size, mode="bilinear", align_corners=False)
        return self.classify(F.relu_(fused))


class SegFormer(nn.Module):
    """``[B, in_ch, H, W] -> [B, classes, H, W]`` logits; any H, W (padded to a multiple of 32)."""

    def __init__(
        self,
        in_ch: int,
        classes: int,
        size: str = "b0",
        drop_path: float = 0.1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"unknown SegFormer size {size!r}; expected one of {', '.join(SIZES)}")
        spec = SIZES[size]
        self.encoder = MixTransformer(in_ch, spec, drop_path)
        self.decoder = AllMLPDecoder(spec.dims, spec.decoder_dim, classes, dropout)
        self.apply(_init_weights)

    def folded(self) -> SegFormer:
        """This network for inference (in eval mode) with its decoder folded
        (`FoldedDecoder`), sharing the encoder's weights; this one is left as it is."""
        new = copy.copy(self)
        new._modules = dict(self._modules)  # a shallow copy would share the module table
        decoder = self.decoder
        assert isinstance(decoder, AllMLPDecoder)
        new._modules["decoder"] = FoldedDecoder(decoder)
        return new

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = pad_to_stride(x)
        logits = self.decoder(self.encoder(x))
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :h, :w]


def pad_to_stride(x: Tensor) -> Tensor:
    """``x [B, C, H, W]`` padded at the bottom and right to a multiple of `OUTPUT_STRIDE`
    (mirrored, or repeated where the image is smaller than the padding)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % OUTPUT_STRIDE, (-w) % OUTPUT_STRIDE
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)
