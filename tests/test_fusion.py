"""BatchNorm folding for inference: the folded copy computes what the model computes, for every architecture."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from centernet.inference.fusion import fold_batchnorm
from centernet.model import CenterNet


def _randomise_norms(model: nn.Module, seed: int = 0) -> int:
    """Give every BatchNorm statistics and an affine map far from identity, so folding is really tested."""
    generator = torch.Generator().manual_seed(seed)
    count = 0
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) or type(module).__name__ == "FrozenBatchNorm2d":
            channels = module.weight.numel()
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(channels, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(channels, generator=generator) * 2 + 0.2)
                module.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(channels, generator=generator) * 0.3)
            count += 1
    return count


def _norm_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) or type(m).__name__ == "FrozenBatchNorm2d" for m in model.modules())


@pytest.mark.parametrize(
    "options",
    [
        {"backbone": "resnet18", "neck": {"name": "lateral", "channels": (32, 32, 32)}, "head": {"channels": 32}},
        {"backbone": "resnet18", "neck": {"channels": (32, 32, 32), "deformable": True}, "head": {"channels": 32}},
        {"backbone": {"name": "resnet18", "freeze_bn": True}, "neck": {"name": "lateral", "channels": (32, 32, 32)}},
        {"backbone": "dla34", "neck": "dla_up", "head": {"channels": 32}},
        {
            "backbone": "timm:mobilenetv3_small_050",
            "neck": {"name": "lateral", "channels": (32, 32, 32)},
            "head": "ltrb",
        },
    ],
    ids=["resnet18-lateral", "resnet18-dcn-deconv", "frozen-bn", "dla34-dla_up", "timm-bn-act-ltrb"],
)
def test_folded_copy_equals_the_model_and_has_no_batchnorm_left(options):
    torch.manual_seed(0)
    model = CenterNet(3, **options).eval()
    norms = _randomise_norms(model)
    images = torch.rand(2, 3, 64, 96)
    folded, count = fold_batchnorm(model, torch.rand(1, 3, 64, 64))
    assert count == norms and _norm_count(folded) == 0
    assert _norm_count(model) == norms  # the model itself is untouched
    with torch.inference_mode():
        expected, actual = model(images), folded(images)
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=2e-4, rtol=1e-4)


class _SharedConvOutput(nn.Module):
    """A convolution whose output feeds its BatchNorm and another module: folding would change the other one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm, self.act = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.norm(y) + self.act(y)


class _FunctionalReuse(_SharedConvOutput):
    """The same, but the second use is plain tensor code that module hooks cannot see."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.norm(y) + y


def test_a_convolution_output_used_twice_is_not_folded():
    model = _SharedConvOutput().eval()
    _randomise_norms(model)
    folded, count = fold_batchnorm(model, torch.rand(1, 3, 8, 8))
    assert count == 0 and folded is model


def test_folding_that_changes_the_outputs_is_refused_with_a_warning():
    model = _FunctionalReuse().eval()
    _randomise_norms(model)
    with pytest.warns(UserWarning, match="changed the outputs"):
        folded, count = fold_batchnorm(model, torch.rand(1, 3, 8, 8))
    assert count == 0 and folded is model and isinstance(model.norm, nn.BatchNorm2d)
