"""The focal loss's hand-written gradient against autograd through the plain formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from centernet.losses import _FocalLossSum, focal_loss_with_logits


def _reference(logits, target, num_objects, alpha=2.0, beta=4.0):
    """The loss exactly as the paper writes it, differentiated by autograd (the implementation before the
    hand-written gradient)."""
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p, not_p = torch.sigmoid(logits), torch.sigmoid(-logits)
    positive_term = not_p.pow(alpha) * log_p
    negative_term = (1.0 - target).pow(beta) * p.pow(alpha) * log_not_p
    loss = -torch.where(target == 1.0, positive_term, negative_term).sum()
    return loss / max(1.0, float(num_objects))


def _heatmap(shape, dtype, seed=0):
    """Logits over a wide range and a target with Gaussian-like values and a few exact 1.0 centres."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator, dtype=dtype) * 6
    target = torch.rand(shape, generator=generator, dtype=dtype) ** 4
    centres = torch.rand(shape, generator=generator) < 0.02
    target[centres] = 1.0
    return logits, target, int(centres.sum())


@pytest.mark.parametrize(("alpha", "beta"), [(2.0, 4.0), (1.5, 2.0), (2.0, 0.0)])
def test_gradcheck_in_float64(alpha, beta):
    logits, target, _ = _heatmap((2, 3, 5, 4), torch.float64)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: _FocalLossSum.apply(x, target, alpha, beta), (logits,))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("alpha", "beta"), [(2.0, 4.0), (2.0, 0.0)])
def test_value_and_gradient_equal_the_reference_formula(channels_last, alpha, beta):
    logits, target, count = _heatmap((2, 80, 32, 32), torch.float32, seed=1)
    logits[0, 0, 0, :4] = torch.tensor([100.0, -100.0, 30.0, -30.0])  # saturated cells stay finite
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
        target = target.contiguous(memory_format=torch.channels_last)
    ours_in = logits.clone().requires_grad_(True)
    reference_in = logits.clone().requires_grad_(True)
    ours = focal_loss_with_logits(ours_in, target, count, alpha, beta)
    reference = _reference(reference_in, target, count, alpha, beta)
    (ours * 3.0).backward()
    (reference * 3.0).backward()
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_in.grad, reference_in.grad, rtol=1e-5, atol=1e-7)
    assert torch.isfinite(ours_in.grad).all()


def test_no_objects_and_no_gradient_needed():
    logits = torch.randn(1, 2, 4, 4)
    target = torch.zeros(1, 2, 4, 4)
    torch.testing.assert_close(focal_loss_with_logits(logits, target, 0), _reference(logits, target, 0))
    with torch.no_grad():
        torch.testing.assert_close(focal_loss_with_logits(logits, target, 0), _reference(logits, target, 0))
