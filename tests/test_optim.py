import math

import pytest
import torch
from torch import nn

from centernet.training.optim import build_adamw, split_weight_decay, warmup_cosine


def test_warmup_then_cosine_reaches_the_floor():
    factor = warmup_cosine(total_steps=110, warmup_steps=10, min_lr_ratio=0.01)
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factor(110) == pytest.approx(0.01)
    values = [factor(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_warmup_longer_than_the_run_is_capped():
    factor = warmup_cosine(total_steps=5, warmup_steps=100)
    assert factor(4) == pytest.approx(1.0)


def test_norms_and_biases_do_not_decay():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    decay, no_decay = split_weight_decay(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    expected = {id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[2].bias)}
    assert {id(p) for p in no_decay["params"]} == expected
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    torch.optim.AdamW([decay, no_decay], lr=1e-3)


def _one_step(optimizer_factory, seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    # No bias before the BatchNorm: its gradient would be rounding noise, where Adam's update is arbitrary.
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    optimizer = optimizer_factory(split_weight_decay(model, 0.05))
    for _ in range(3):
        loss = model(torch.rand(2, 3, 8, 8)).square().sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def test_build_adamw_is_fused_on_the_cpu_and_updates_like_the_for_loop():
    cpu = torch.device("cpu")
    fused = build_adamw([{"params": [nn.Parameter(torch.ones(2))]}], 1e-3, cpu)
    assert fused.defaults["fused"] and not fused.defaults["foreach"]
    fallback = build_adamw([{"params": [nn.Parameter(torch.ones(2))]}], 1e-3, cpu, allow_fused=False)
    assert fallback.defaults["foreach"] and not fallback.defaults["fused"]
    loop = _one_step(lambda groups: torch.optim.AdamW(groups, lr=1e-2, foreach=False))
    for implementation in (
        _one_step(lambda groups: build_adamw(groups, 1e-2, cpu)),
        _one_step(lambda groups: build_adamw(groups, 1e-2, cpu, allow_fused=False)),
    ):
        for ours, reference in zip(implementation, loop, strict=True):
            torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


def test_build_adamw_falls_back_to_foreach_on_other_devices():
    optimizer = build_adamw([{"params": [nn.Parameter(torch.ones(2))]}], 1e-3, torch.device("meta"))
    assert optimizer.defaults["foreach"] and not optimizer.defaults["fused"]
