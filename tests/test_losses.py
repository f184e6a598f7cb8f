"""Partial-label losses: one-hot labels give the ordinary losses; unlabelled pixels ignored."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cloudmask_cli.model import ambiguous_cross_entropy, ambiguous_mse, recovery_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _logits(b=2, k=7, h=5, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(b, k, h, w, generator=g)).requires_grad_(True)


def _one_hot(label, k=7):
    return F.one_hot(label, k).permute(0, 3, 1, 2).bool()


def _labels(b=2, h=5, w=6, seed=1):
    return torch.randint(0, 7, (b, h, w), generator=torch.Generator().manual_seed(seed))


def test_cross_entropy_reduces_to_standard_for_one_hot():
    logits, label = _logits(), _labels()
    ours = ambiguous_cross_entropy(logits, _one_hot(label))
    ref = F.cross_entropy(logits, label)
    assert torch.allclose(ours, ref, atol=1e-6)
    (g1,) = torch.autograd.grad(ours, logits)
    (g2,) = torch.autograd.grad(ref, logits)
    assert torch.allclose(g1, g2, atol=1e-7)


def test_mse_reduces_to_standard_for_one_hot():
    logits, label = _logits(), _labels()
    onehot = _one_hot(label)
    ours = ambiguous_mse(logits, onehot)
    ref = F.mse_loss(torch.softmax(logits, 1), onehot.float())  # mean over classes and pixels
    assert torch.allclose(ours, ref, atol=1e-7)


def test_cross_entropy_is_minus_log_possibility_score():
    logits = _logits()
    g = torch.Generator().manual_seed(5)
    possible = torch.rand(logits.shape, generator=g) > 0.6
    possible[:, 0] |= ~possible.any(1)  # every pixel labelled
    p = torch.softmax(logits, 1)
    ref = -torch.log((p * possible).sum(1)).mean()
    assert torch.allclose(ambiguous_cross_entropy(logits, possible), ref, atol=1e-5)
    # Float labels (0/1) are accepted as well.
    assert torch.allclose(ambiguous_cross_entropy(logits, possible.float()), ref, atol=1e-5)


def test_mse_matches_paper_equations():
    logits = _logits(seed=3)
    g = torch.Generator().manual_seed(6)
    y = (torch.rand(logits.shape, generator=g) > 0.5).float()
    y[:, 2] = torch.where(y.sum(1) == 0, 1.0, y[:, 2])
    p = torch.softmax(logits, 1)
    phi = (y * p).sum(1, keepdim=True)
    n = y.sum(1, keepdim=True)
    proxy = (1 - y) * p + y * phi / n
    ref = ((y / n - proxy) ** 2).mean(1).mean()
    assert torch.allclose(ambiguous_mse(logits, y), ref, atol=1e-7)


@pytest.mark.parametrize("loss_fn", [ambiguous_cross_entropy, ambiguous_mse])
def test_free_to_distribute_within_possible_set(loss_fn):
    possible = torch.zeros(1, 7, 1, 2, dtype=torch.bool)
    possible[:, 3:5] = True  # thin or thick cloud
    a = torch.tensor([5.0, 0.0]).view(1, 1, 1, 2).expand(1, 7, 1, 2).clone()
    a[:, :3] = -4.0
    a[:, 5:] = -4.0
    a[0, 3, 0, :] = torch.tensor([6.0, 1.0])  # confident thin vs confident thick
    a[0, 4, 0, :] = torch.tensor([1.0, 6.0])
    per_pixel = loss_fn(a, possible, reduction="none")
    assert torch.allclose(per_pixel[..., 0], per_pixel[..., 1], atol=1e-7)
    everything = torch.ones_like(possible)
    assert torch.allclose(loss_fn(a, everything), torch.tensor(0.0), atol=1e-6)


@pytest.mark.parametrize("loss_fn", [ambiguous_cross_entropy, ambiguous_mse])
def test_unlabelled_pixels_are_ignored(loss_fn):
    logits, label = _logits(), _labels()
    possible = _one_hot(label)
    possible[0, :, :2] = False  # no possible class: unlabelled
    loss = loss_fn(logits, possible)
    keep = possible.any(1)
    ref = loss_fn(
        logits.permute(0, 2, 3, 1)[keep][:, :, None, None],
        possible.permute(0, 2, 3, 1)[keep][:, :, None, None],
    )
    assert torch.allclose(loss, ref, atol=1e-6)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(grad).all()
    assert torch.all(grad[0, :, :2] == 0)
    nothing = torch.zeros_like(possible)
    empty = loss_fn(logits, nothing)
    assert empty.item() == 0.0
    (grad,) = torch.autograd.grad(empty, logits)
    assert torch.all(grad == 0)


def test_losses_accept_low_precision_logits():
    logits, label = _logits(), _labels()
    ce = ambiguous_cross_entropy(logits.bfloat16(), _one_hot(label))
    assert ce.dtype == torch.float32
    assert torch.allclose(ce, F.cross_entropy(logits, label), atol=0.05)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        ambiguous_cross_entropy(torch.zeros(1, 7, 4, 4), torch.ones(1, 6, 4, 4, dtype=torch.bool))


def test_recovery_loss_over_valid_pixels():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 3, 4, 4, generator=g, requires_grad=True)
    target = torch.randn(2, 3, 4, 4, generator=g)
    target[0, 1, :2] = float("nan")
    valid = torch.isfinite(target)
    ref = ((pred - target)[valid] ** 2).mean()
    loss = recovery_loss(pred, target)
    assert torch.allclose(loss, ref, atol=1e-6)
    (grad,) = torch.autograd.grad(loss, pred)
    assert torch.isfinite(grad).all() and torch.all(grad[0, 1, :2] == 0)
    explicit = valid.clone()
    explicit[1] = False
    ref1 = ((pred - target)[explicit] ** 2).mean()
    assert torch.allclose(recovery_loss(pred, target, explicit), ref1, atol=1e-6)
    assert torch.allclose(
        recovery_loss(pred, target.nan_to_num(), torch.ones_like(valid)),
        F.mse_loss(pred, target.nan_to_num()),
        atol=1e-6,
    )


def test_class_weights_match_weighted_cross_entropy_for_one_hot():
    logits, label = _logits(), _labels()
    w = torch.tensor([1.0, 3.0, 3.0, 1.0, 1.0, 2.0, 1.0])
    ours = ambiguous_cross_entropy(logits, _one_hot(label), class_weights=w)
    assert torch.allclose(ours, F.cross_entropy(logits, label, weight=w), atol=1e-6)
    assert not torch.allclose(ours, F.cross_entropy(logits, label), atol=1e-3)


def test_a_partial_label_weighs_as_its_lightest_class():
    # "clear" = {land, water, snow} allows the rare classes without deciding them: weight 1
    logits = _logits(b=1, h=1, w=2)
    possible = torch.zeros(1, 7, 1, 2, dtype=torch.bool)
    possible[0, [0, 1, 2], 0, 0] = True  # clear
    possible[0, 1, 0, 1] = True  # water
    w = torch.tensor([1.0, 4.0, 4.0, 1.0, 1.0, 1.0, 1.0])
    per = ambiguous_cross_entropy(logits, possible, reduction="none")
    weighted = ambiguous_cross_entropy(logits, possible, class_weights=w)
    assert torch.allclose(weighted, (per[0, 0, 0] + 4 * per[0, 0, 1]) / 5)
