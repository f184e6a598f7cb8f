"""Partial-label losses (paper section III-B) and the recovery loss (paper IV-B).

A partial label is, per pixel, the set of classes it may be: ``possible [B, K, H, W]`` (bool, or
float where > 0.5 means possible). Pixels with no possible class carry no label and are ignored.
For one-hot labels both losses equal the ordinary cross-entropy / mean squared error.
All losses are computed in float32, whatever the autocast dtype of the logits.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _possible(possible: Tensor, logits: Tensor) -> Tensor:
    if possible.shape != logits.shape:
        raise ValueError(
            f"label shape {tuple(possible.shape)} differs from logits {tuple(logits.shape)}"
        )
    mask = possible if possible.dtype == torch.bool else possible > 0.5
    return mask.to(logits.device)


def _reduce(loss: Tensor, labelled: Tensor, reduction: str) -> Tensor:
    loss = torch.where(labelled, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / labelled.sum().clamp(min=1)
    raise ValueError(f"unknown reduction {reduction!r}; expected mean, sum or none")


def ambiguous_cross_entropy(
    logits: Tensor, possible: Tensor, reduction: str = "mean", class_weights: Tensor | None = None
) -> Tensor:
    """``-log Σ_{i possible} softmax(logits)_i``, averaged over labelled pixels (eq. 6).

    ``reduction="none"`` gives the per-pixel loss ``[B, H, W]`` (0 where unlabelled).
    ``class_weights`` ``[K]``: each pixel weighs as the lightest class its label allows (a
    partial "clear" that merely allows water is not up-weighted as water), and the mean is
    over the weights, as torch's weighted cross-entropy (equal to it for one-hot labels).
    """
    logits = logits.float()
    pos = _possible(possible, logits)
    labelled = pos.any(dim=1)
    # Unlabelled pixels keep all classes so no row is all -inf (which would give NaN gradients).
    excluded = ~pos & labelled[:, None]
    masked = logits.masked_fill(excluded, float("-inf"))
    loss = torch.logsumexp(logits, dim=1) - torch.logsumexp(masked, dim=1)
    if class_weights is None:
        return _reduce(loss, labelled, reduction)
    w = class_weights.to(logits.device, torch.float32)[None, :, None, None].expand_as(logits)
    weight = torch.where(pos, w, torch.full_like(w, float("inf"))).amin(dim=1)
    weight = torch.where(labelled, weight, torch.zeros_like(weight))
    if reduction == "mean":
        return (loss * weight).sum() / weight.sum().clamp(min=1e-12)
    return _reduce(loss * weight, labelled, reduction)


def ambiguous_mse(logits: Tensor, possible: Tensor, reduction: str = "mean") -> Tensor:
    """The paper's ambiguous mean squared error (eqs. 5, 7, 8), averaged over labelled pixels.

    With ``y`` the possible-class indicator, ``p = softmax(logits)``, ``φ = Σ y·p`` and the proxy
    prediction ``π = (1 − y)·p + y·φ / Σy``: ``L = (1/K) Σ_i (y_i / Σy − π_i)²``.
    """
    logits = logits.float()
    pos = _possible(possible, logits)
    y = pos.float()
    k = y.sum(dim=1, keepdim=True)
    labelled = k[:, 0] > 0
    p = torch.softmax(logits, dim=1)
    phi = (y * p).sum(dim=1, keepdim=True)
    k = k.clamp(min=1.0)
    proxy = (1.0 - y) * p + y * phi / k
    loss = ((y / k - proxy) ** 2).mean(dim=1)
    return _reduce(loss, labelled, reduction)


def recovery_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean squared error over valid pixels (``valid`` defaults to the finite target pixels).

    ``pred``/``target``/``valid`` are ``[B, N, H, W]``; target is the normalised input
    (`cloudmask_cli.model.network.normalise`), which is NaN where a band is invalid.
    """
    pred = pred.float()
    target = target.float().to(pred.device)
    finite = torch.isfinite(target)
    valid = finite if valid is None else valid.to(pred.device).bool() & finite
    diff = torch.where(valid, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return (diff**2).sum() / valid.sum().clamp(min=1)
