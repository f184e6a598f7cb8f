"""SEnSeI-v2: any set of bands -> a fixed-width feature map (paper section III-A, Fig. 2).

Per band, the descriptor vector (``descriptors.LENGTH`` entries) gets the band's percentile
statistics appended (``N_STATS`` entries, computed here from the band's normalised values in the
window). The resulting vectors go through fully connected residual blocks with layer norm, then
transformer blocks whose self-attention runs *across bands* (no positional encoding, so the
computation is permutation equivariant), and finally three heads give, per band and channel, a gain
α, a frequency ω and a phase φ. Every band's pixels are embedded as ``α·sin(ω·S + φ)`` and the
embeddings are averaged over the bands that are valid at each pixel (a pixel with no valid band
gets zeros); with ``pooling="weighted"`` (not in the paper) the average is weighted by a learned
positive weight per band, from a fourth head on the same vectors. Bands are first put in a
canonical order (sorted by a fixed projection of their descriptor + statistics), so the result
is bitwise independent of the order they come in.

Normalisation of physical values (per band kind, the kind read from the descriptor flags) also
lives here, so the network and the training loss (recovery target) share one definition.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from cloudmask_cli import descriptors as D

# Band kinds the network normalises differently, and the default (offset, scale) of each:
# normalised = (physical - offset) / scale, then clipped to ±clip.
KINDS = ("reflectance", "thermal", "sar_backscatter", "sar_angle", "dem")
DEFAULT_NORMALISATION: dict[str, tuple[float, float]] = {
    "reflectance": (0.0, 1.0),  # TOA/BOA reflectance, unitless, mostly 0..1
    "thermal": (273.15, 30.0),  # brightness temperature in kelvin: 213 K -> -2, 303 K -> 1
    "sar_backscatter": (-15.0, 10.0),  # VV/VH in dB: -25 dB -> -1, -5 dB -> 1
    "sar_angle": (35.0, 10.0),  # incidence angle in degrees: 25° -> -1, 45° -> 1
    "dem": (0.0, 1000.0),  # elevation in metres: 1 km -> 1
}
DEFAULT_CLIP = 10.0
# How band embeddings are combined: the paper's mean over valid bands, or a mean weighted by a
# learned per-band weight exp(gate), the gate clamped to ±GATE_RANGE.
POOLINGS = ("mean", "weighted")
GATE_RANGE = 5.0
_SAR_ANGLE_INDEX = D.SAR_SLOTS["sar_angle"].start


def band_kinds(descriptors: Tensor) -> dict[str, Tensor]:
    """Boolean masks (shape ``descriptors.shape[:-1]``) of each band kind, from the flags."""
    flag = descriptors[..., : D.LENGTH] > 0.5
    thermal = flag[..., D.FLAG_THERMAL]
    sar = flag[..., D.FLAG_SAR]
    angle = sar & flag[..., _SAR_ANGLE_INDEX]
    return {
        "reflectance": flag[..., D.FLAG_MULTISPECTRAL] & ~thermal,
        "thermal": thermal,
        "sar_backscatter": sar & ~angle,
        "sar_angle": angle,
        "dem": flag[..., D.FLAG_DEM],
    }


def normalise_bands(
    x: Tensor,
    descriptors: Tensor,
    table: Mapping[str, Sequence[float]] = DEFAULT_NORMALISATION,
    clip: float = DEFAULT_CLIP,
    finite: Tensor | None = None,
) -> Tensor:
    """Physical values ``x [B, N, H, W]`` -> normalised float32 values, NaN where not finite.

    ``descriptors [B, N, >=LENGTH]`` (or ``[N, >=LENGTH]``) gives each band's kind; a band with
    no known kind (e.g. zero padding) is passed through unscaled. ``finite``: ``isfinite(x)``
    when the caller has it already.
    """
    x = x.float()
    kinds = band_kinds(descriptors.to(x.device))
    offset = torch.zeros(kinds["dem"].shape, dtype=torch.float32, device=x.device)
    scale = torch.ones_like(offset)
    for kind in KINDS:
        off, sc = table[kind]
        offset = torch.where(kinds[kind], torch.full_like(offset, float(off)), offset)
        scale = torch.where(kinds[kind], torch.full_like(scale, float(sc)), scale)
    if offset.dim() == 1:  # descriptors given without a batch dimension
        offset, scale = offset[None], scale[None]
    out = ((x - offset[..., None, None]) / scale[..., None, None]).clamp(-clip, clip)
    finite = torch.isfinite(x) if finite is None else finite
    # the clamp made infinities finite; a window with no such value needs no second pass
    return out if bool(finite.all()) else out.masked_fill(~finite, float("nan"))


def band_statistics(
    xn: Tensor,
    valid: Tensor,
    percentiles: Sequence[float] = D.PERCENTILES,
    max_samples: int = 4096,
) -> Tensor:
    """Percentiles of each sample's and band's valid pixels: ``[B, N, H, W] -> [B, N, len(q)]``.

    Computed on a regular (deterministic) subsample of about ``max_samples`` pixels, with linear
    interpolation between order statistics (as ``numpy.percentile``). Invalid pixels (``valid``
    False) are ignored; a band with no valid sampled pixel gets zeros.
    """
    b, n, h, w = xn.shape
    stride = max(1, math.ceil(math.sqrt(h * w / max_samples)))
    start = stride // 2 if min(h, w) > stride // 2 else 0
    xs = xn[:, :, start::stride, start::stride].reshape(b, n, -1).float()
    vs = valid[:, :, start::stride, start::stride].reshape(b, n, -1)
    filled = torch.where(vs, xs, torch.full_like(xs, float("inf")))
    ordered = torch.sort(filled, dim=-1).values
    ordered = torch.where(torch.isfinite(ordered), ordered, torch.zeros_like(ordered))
    count = vs.sum(-1, keepdim=True)  # [B, N, 1]
    last = (count - 1).clamp(min=0)
    q = torch.tensor([p / 100.0 for p in percentiles], dtype=torch.float32, device=xn.device)
    pos = q * last.float()  # [B, N, Q]
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, last)
    frac = pos - lo.float()
    a = torch.gather(ordered, -1, lo)
    c = torch.gather(ordered, -1, hi)
    stats = a + (c - a) * frac
    return torch.where(count > 0, stats, torch.zeros_like(stats))


class FCBlock(nn.Module):
    """Pre-norm residual MLP block applied to each band's feature vector."""

    def __init__(self, width: int, expansion: int = 2) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width * expansion)
        self.fc2 = nn.Linear(width * expansion, width)

    def forward(self, v: Tensor) -> Tensor:
        return v + self.fc2(F.gelu(self.fc1(self.norm(v))))


class BandAttention(nn.Module):
    """Multi-head self-attention across the bands of each sample (no positional encoding)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"SEnSeI width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, v: Tensor, key_mask: Tensor) -> Tensor:
        b, n, c = v.shape
        qkv = self.qkv(v).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, val = qkv[0], qkv[1], qkv[2]
        # key_mask [B, N] True = attend; broadcast over heads and queries.
        out = F.scaled_dot_product_attention(q, k, val, attn_mask=key_mask[:, None, None, :])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class TransformerBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = BandAttention(width, heads)
        self.ff = FCBlock(width)

    def forward(self, v: Tensor, key_mask: Tensor) -> Tensor:
        v = v + self.attn(self.norm1(v), key_mask)
        return self.ff(v)


def _head(width: int, channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, channels))


def _last(head: nn.Sequential) -> nn.Linear:
    layer = head[-1]
    assert isinstance(layer, nn.Linear)
    return layer


class SEnSeI(nn.Module):
    """Descriptors + normalised band values -> embedding ``[B, channels, H, W]``.

    ``forward(xn, descriptors, band_mask)`` takes *normalised* values (see `normalise_bands`;
    NaN marks an invalid pixel), descriptors ``[B, N, LENGTH]`` and an optional ``band_mask
    [B, N]`` (True = band present; absent bands are padding and are ignored everywhere).
    """

    def __init__(
        self,
        width: int = 128,
        depth: int = 2,
        attention_layers: int = 2,
        heads: int = 4,
        channels: int = 32,
        stats_samples: int = 4096,
        max_frequency: float = 50.0,
        stats_noise: float = 0.0,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown band pooling {pooling!r}; expected one of {POOLINGS}")
        self.channels = channels
        self.stats_samples = stats_samples
        self.stats_noise = stats_noise
        self.inp = nn.Linear(D.LENGTH + D.N_STATS, width)
        self.blocks = nn.ModuleList(FCBlock(width) for _ in range(depth))
        self.attention = nn.ModuleList(
            TransformerBlock(width, heads) for _ in range(attention_layers)
        )
        self.norm = nn.LayerNorm(width)
        self.alpha = _head(width, channels)
        self.omega = _head(width, channels)
        self.phi = _head(width, channels)
        # "weighted": a fourth head gives each band a positive weight in the average, so a band
        # that adds nothing (e.g. the cirrus band over low cloud) need not dilute the others.
        # Zero-initialised, so training starts from the paper's plain mean.
        self.gate = _head(width, 1) if pooling == "weighted" else None
        # Start as random Fourier features: unit gains, frequencies spread from 1 to
        # max_frequency (normalised units), phases spread over the circle.
        with torch.no_grad():
            nn.init.ones_(_last(self.alpha).bias)
            _last(self.omega).bias.copy_(torch.logspace(0.0, math.log10(max_frequency), channels))
            _last(self.phi).bias.copy_(torch.linspace(-math.pi, math.pi, channels + 1)[:-1])
            if self.gate is not None:
                nn.init.zeros_(_last(self.gate).weight)
                nn.init.zeros_(_last(self.gate).bias)
        # A fixed projection of each band's input vector gives a canonical band order, so that
        # every sum over bands runs in the same order whatever order the bands come in: the
        # output is then bitwise independent of band order (not just up to rounding).
        # inference only: another implementation of `pool_inplace` (inference/compiled.py)
        self.pool: PoolFn | None = None
        gen = torch.Generator().manual_seed(20240501)
        key = torch.randn(D.LENGTH + D.N_STATS, generator=gen, dtype=torch.float64)
        self.register_buffer("order_key", key, persistent=False)

    def canonical_order(self, features: Tensor, band_mask: Tensor) -> Tensor:
        """Band permutation ``[B, N]`` sorting each sample's bands by a fixed key (absent last)."""
        key = features.double() @ cast(Tensor, self.order_key)
        key = torch.where(band_mask, key, torch.full_like(key, float("inf")))
        return torch.sort(key, dim=-1, stable=True).indices

    def band_vectors(self, features: Tensor, band_mask: Tensor) -> Tensor:
        """Descriptor + statistics ``[B, N, LENGTH + N_STATS]`` -> feature vectors after the
        FC and attention blocks ``[B, N, width]``."""
        v = self.inp(features)
        for block in self.blocks:
            v = block(v)
        # A sample with no band at all would give an empty softmax: let it attend to its
        # (ignored) padding instead; its embedding is zero anyway.
        key_mask = band_mask | ~band_mask.any(-1, keepdim=True)
        for block in self.attention:
            v = block(v, key_mask)
        return self.norm(v)

    def forward(
        self,
        xn: Tensor,
        descriptors: Tensor,
        band_mask: Tensor | None = None,
        finite: Tensor | None = None,
    ) -> Tensor:
        """Embedding ``[B, channels, H, W]`` of normalised bands ``xn [B, N, H, W]``
        (``finite``: ``isfinite(xn)`` when the caller has it already)."""
        b, n, h, w = xn.shape
        if descriptors.dim() == 2:
            descriptors = descriptors.expand(b, -1, -1)
        if descriptors.shape[:2] != (b, n):
            raise ValueError(
                f"descriptors of shape {tuple(descriptors.shape)} do not match {n} bands "
                f"in a batch of {b}"
            )
        if band_mask is None:
            band_mask = torch.ones(b, n, dtype=torch.bool, device=xn.device)
        band_mask = band_mask.to(device=xn.device, dtype=torch.bool)
        with torch.autocast(device_type=xn.device.type, enabled=False):
            xn = xn.float()
            valid = (torch.isfinite(xn) if finite is None else finite) & band_mask[:, :, None, None]
            stats = band_statistics(xn, valid, max_samples=self.stats_samples)
            if self.training and self.stats_noise > 0:
                # Trained on few scenes, the network can key on a window's exact statistics
                # (and call a whole window one class); jitter keeps it looking at the pixels.
                stats = stats + self.stats_noise * torch.randn_like(stats)
            features = torch.cat([descriptors[..., : D.LENGTH].to(xn.device).float(), stats], -1)
            order = self.canonical_order(features, band_mask)
            rows = torch.arange(b, device=xn.device)
            features = features[rows[:, None], order]
            v = self.band_vectors(features, band_mask[rows[:, None], order])
            alpha, omega, phi = self.alpha(v), self.omega(v), self.phi(v)  # [B, N, C] each
            # Band planes in canonical order, zero where invalid. Plain indexing copies whole
            # planes; take_along_dim broadcasts its index over every pixel (a remainder per
            # element), a large share of SEnSeI's CPU time (benchmarks/results.md).
            if not bool((order == torch.arange(n, device=order.device)).all()):
                valid, xn = valid[rows[:, None], order], xn[rows[:, None], order]
            # (bands already in canonical order, all valid: the usual window, no copies)
            s = xn if bool(valid.all()) else xn.masked_fill(~valid, 0.0)
            weight = valid.float()
            if self.gate is not None:
                # weighted mean: Σ g·w·α·sin(...) / Σ g·w, g = exp(gate) in [e^-GATE, e^GATE]
                g = self.gate(v).squeeze(-1).clamp(-GATE_RANGE, GATE_RANGE).exp()  # [B, N]
                alpha = alpha * g[:, :, None]
                count = torch.einsum("bnhw,bn->bhw", weight, g)[:, None]
                # 0 only where no band is valid (total is 0 there too); 1, not a tiny clamp,
                # keeps d(total/count) finite: a tiny count gave NaN gradients on no-data pixels
                count = torch.where(count > 0, count, torch.ones_like(count))
            else:
                count = weight.sum(1, keepdim=True).clamp(min=1.0)  # valid bands (exact)
            if torch.compiler.is_compiling():
                total = pool_reference(s, weight, alpha, omega, phi)
            elif torch.is_grad_enabled():
                total = _PooledSine.apply(s, weight, alpha, omega, phi)
            elif self.pool is not None:
                total = self.pool(s, weight, alpha, omega, phi)
            else:
                total = pool_inplace(s, weight, alpha, omega, phi)
            return total / count


# The band embedding sum over bands n, for every pixel and channel c,
#     total[b, c] = Σ_n weight[b, n] · α[b, n, c] · sin(ω[b, n, c] · S[b, n] + φ[b, n, c])
# (pixel planes S, weight: [B, N, H, W]; α, ω, φ: [B, N, C]), in three versions
# that give the same result: a plain autograd one (for torch.compile, which fuses it), an in-place
# one (inference: no large allocation per band, no masking of bands valid everywhere), and an
# autograd Function whose backward recomputes each band's wave instead of storing N·C·H·W
# intermediates (training memory stays O(C·H·W) whatever the number of bands).


def pool_reference(s: Tensor, weight: Tensor, alpha: Tensor, omega: Tensor, phi: Tensor) -> Tensor:
    b, n, h, w = s.shape
    total = s.new_zeros(b, alpha.shape[2], h, w)
    for i in range(n):
        wave = torch.sin(
            torch.addcmul(phi[:, i, :, None, None], omega[:, i, :, None, None], s[:, i : i + 1])
        )
        total = torch.addcmul(total, wave * weight[:, i : i + 1], alpha[:, i, :, None, None])
    return total


PoolFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]
POOL_BLOCK_BYTES = 1 << 20  # one block of waves: stays in a core's L2 cache while it is summed


def pool_inplace(
    s: Tensor, weight: Tensor, alpha: Tensor, omega: Tensor, phi: Tensor, rows: int | None = None
) -> Tensor:
    b, n, h, w = s.shape
    c = alpha.shape[2]
    whole = (weight > 0).flatten(2).all(-1).all(0).tolist()  # band valid everywhere in batch
    total = s.new_zeros(b, c, h, w)
    # Every band is summed into a block of ``rows`` rows before the next block: the same
    # element-wise operations in the same order (bitwise the same sum), but the partial sums
    # are not streamed through memory once per band.
    if rows is None:
        rows = max(1, POOL_BLOCK_BYTES // (b * c * w * s.element_size()))
    buffer = s.new_empty(b, c, min(rows, h), w)
    for r in range(0, h, rows):
        part = total[:, :, r : r + rows]
        wave = buffer[:, :, : part.shape[2]]
        for i in range(n):
            torch.addcmul(phi[:, i, :, None, None], omega[:, i, :, None, None],
                          s[:, i : i + 1, r : r + rows], out=wave)  # fmt: skip
            wave.sin_()
            if not whole[i]:
                wave.mul_(weight[:, i : i + 1, r : r + rows])
            part.addcmul_(wave, alpha[:, i, :, None, None])
    return total


class _PooledSine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, weight, alpha, omega, phi):
        ctx.save_for_backward(s, weight, alpha, omega, phi)
        return pool_inplace(s, weight, alpha, omega, phi)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        s, weight, alpha, omega, phi = ctx.saved_tensors
        n = s.shape[1]
        need_s = ctx.needs_input_grad[0]
        g_alpha, g_omega, g_phi = (torch.zeros_like(t) for t in (alpha, omega, phi))
        g_s = torch.zeros_like(s) if need_s else None
        for i in range(n):
            s_i = s[:, i : i + 1]
            theta = torch.addcmul(phi[:, i, :, None, None], omega[:, i, :, None, None], s_i)
            gw = grad * weight[:, i : i + 1]  # [B, C, H, W]
            g_alpha[:, i] = (gw * torch.sin(theta)).sum((2, 3))
            gc = gw.mul_(theta.cos_()).mul_(alpha[:, i, :, None, None])  # grad·w·α·cos θ
            g_phi[:, i] = gc.sum((2, 3))
            g_omega[:, i] = (gc * s_i).sum((2, 3))
            if need_s:
                g_s[:, i] = (gc * omega[:, i, :, None, None]).sum(1)
        return g_s, None, g_alpha, g_omega, g_phi
