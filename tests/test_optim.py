import math

import pytest
import torch
from torch import nn

from centernet.training.optim import split_weight_decay, warmup_cosine


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
