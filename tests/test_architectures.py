"""Every backbone x neck x head combination, DLA-34, deformable convolution, timm backbones and freezing."""

from __future__ import annotations

import itertools

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from centernet.errors import PretrainedWeightsError
from centernet.model import CenterNet
from centernet.model.dcn import ModulatedDeformConv2d
from centernet.model.dla import DLABackbone
from centernet.model.dla_up import DLAUpNeck, _bilinear_upsampling
from centernet.model.timm_backbone import TimmBackbone

NUM_CLASSES = 3
BACKBONES = ("resnet18", "dla34", "timm:mobilenetv3_small_050")
NECKS = ("upsampling", "lateral", "dla_up")
HEADS = ("size", "ltrb")


def _batch(height: int = 64, width: int = 96) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(2, 3, height, width, generator=generator),
        "bboxes": torch.tensor([[[0.5, 0.5, 0.4, 0.3], [0.2, 0.8, 0.1, 0.2]], [[0.3, 0.6, 0.5, 0.5], [0.0] * 4]]),
        "labels": torch.tensor([[0, 2], [1, 0]]),
        "mask": torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
    }


@pytest.mark.parametrize(
    "backbone, neck, head, deformable", list(itertools.product(BACKBONES, NECKS, HEADS, (False, True)))
)
def test_every_combination_trains_and_rejects_bad_sizes(backbone, neck, head, deformable):
    torch.manual_seed(0)
    model = CenterNet(
        NUM_CLASSES,
        backbone=backbone,
        neck={"name": neck, "channels": (16, 16, 16), "deformable": deformable},
        head={"type": head, "channels": 16},
    )
    batch = _batch()  # 64 x 96: the width is not a power of two, the stride-32 map is 2 x 3
    outputs = model(batch)
    expected = (
        {"heatmap": NUM_CLASSES, "size": 2, "offset": 2} if head == "size" else {"heatmap": NUM_CLASSES, "ltrb": 4}
    )
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {k: (2, c, 16, 24) for k, c in expected.items()}
    losses = model.compute_loss(outputs, batch)
    assert torch.isfinite(losses["total"])
    losses["total"].backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    detections = model.eval().decode(model(batch["image"][:1]))
    assert detections["boxes"].shape == (1, 100, 4)
    with pytest.raises(ValueError, match=r"multiple of 32, got \(H, W\) = \(70, 100\)"):
        model(torch.rand(1, 3, 70, 100))


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        CenterNet(2, backbone="vgg16")
    with pytest.raises(ValueError, match="neck must be"):
        CenterNet(2, neck="fpn2")
    with pytest.raises(ValueError, match="head type must be 'size' or 'ltrb'"):
        CenterNet(2, head="corners")
    with pytest.raises(ValueError, match="unknown timm model 'no_such_net'"):
        CenterNet(2, backbone="timm:no_such_net")


# --- DLA-34 -------------------------------------------------------------------------------------------------------


def test_dla34_matches_timm_with_the_same_weights():
    """Our DLA-34 is written here; with timm's dla34 weights it must compute timm's features exactly."""
    torch.manual_seed(0)
    reference = timm.create_model("dla34", features_only=True, out_indices=(2, 3, 4, 5)).eval()
    classifier = timm.create_model("dla34")
    classifier.load_state_dict(reference.state_dict(), strict=False)
    ours = DLABackbone().eval()
    ours.load_state_dict({k: v for k, v in classifier.state_dict().items() if not k.startswith("fc.")})
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for ours_map, reference_map, channels, stride in zip(
            ours(image), reference(image), (64, 128, 256, 512), (4, 8, 16, 32), strict=True
        ):
            assert ours_map.shape == (1, channels, 64 // stride, 96 // stride)
            torch.testing.assert_close(ours_map, reference_map, rtol=0, atol=0)
    assert ours.channels == (64, 128, 256, 512) and ours.strides == (4, 8, 16, 32)


def test_bilinear_upsampling_kernels():
    # f = 2: [1, 3, 3, 1] / 4; f = 4: [1, 3, 5, 7, 7, 5, 3, 1] / 8 (outer products, one per channel).
    for factor, taps in ((2, [1, 3, 3, 1]), (4, [1, 3, 5, 7, 7, 5, 3, 1])):
        up = _bilinear_upsampling(3, factor)
        one_d = torch.tensor(taps, dtype=torch.float32) / (2 * factor)
        torch.testing.assert_close(up.weight[1, 0], one_d[:, None] * one_d[None, :])
        # In the interior it is bilinear interpolation (align_corners=False).
        x = torch.rand(1, 3, 6, 6)
        expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        margin = factor
        torch.testing.assert_close(
            up(x)[..., margin:-margin, margin:-margin], expected[..., margin:-margin, margin:-margin]
        )


def test_dla_up_neck_on_narrow_channels():
    neck = DLAUpNeck((8, 16, 32, 64))
    features = [torch.rand(1, c, 64 // s, 64 // s) for c, s in zip((8, 16, 32, 64), (4, 8, 16, 32), strict=True)]
    assert neck(features).shape == (1, 8, 16, 16) and neck.out_channels == 8
    # Upsampling factors: every DLA-up step doubles; the final IDA-up brings strides 8 and 16 to 4.
    assert [up.stride[0] for up in neck.ida_up.up] == [2, 4]
    assert all(up.stride[0] == 2 for ida in neck.dla_up for up in ida.up)


# --- deformable convolution -----------------------------------------------------------------------------------------


def test_deformable_conv_starts_as_the_plain_conv():
    torch.manual_seed(0)
    dcn = ModulatedDeformConv2d(4, 6, 3, stride=2, bias=True)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
    conv.weight.data.copy_(dcn.weight.data)
    conv.bias.data.copy_(torch.randn(6))
    dcn.bias.data.copy_(conv.bias.data)
    x = torch.randn(2, 4, 11, 14)
    torch.testing.assert_close(dcn(x), conv(x), rtol=1e-5, atol=1e-5)
    assert torch.count_nonzero(dcn.offset_conv.weight) == 0 and torch.count_nonzero(dcn.offset_conv.bias) == 0


def test_deformable_conv_offsets_move_the_samples():
    """An offset of +1 input pixel in x for every tap samples x(i + a - 1, j + b) instead of x(i + a - 1, j + b - 1)."""
    torch.manual_seed(0)
    dcn = ModulatedDeformConv2d(2, 3, 3, bias=False)
    with torch.no_grad():
        dcn.offset_conv.bias[1:18:2] = 1.0  # (dy, dx) pairs: every dx = 1
    x = torch.randn(1, 2, 8, 9)
    expected = F.conv2d(F.pad(x, (0, 2, 1, 1)), dcn.weight)  # zero beyond the borders, as deform_conv2d samples
    torch.testing.assert_close(dcn(x), expected, rtol=1e-5, atol=1e-5)


def test_deformable_conv_learns_offsets_and_mask():
    dcn = ModulatedDeformConv2d(2, 3, 3)
    dcn(torch.randn(1, 2, 8, 8)).square().sum().backward()
    assert dcn.offset_conv.weight.grad.abs().sum() > 0


# --- timm -----------------------------------------------------------------------------------------------------------


def test_timm_backbone_reads_channels_and_strides_from_feature_info():
    backbone = TimmBackbone("mobilenetv3_small_050")
    assert backbone.channels == (8, 16, 24, 288)  # timm's feature_info at strides 4, 8, 16, 32
    maps = backbone(torch.rand(1, 3, 64, 96))
    assert [tuple(m.shape[1:]) for m in maps] == [(8, 16, 24), (16, 8, 12), (24, 4, 6), (288, 2, 3)]


def test_timm_model_without_a_stride_pyramid_is_rejected():
    with pytest.raises(ValueError, match=r"strides \[16, 16, 16.*missing \[4, 8, 32\]"):
        TimmBackbone("vit_tiny_patch16_224")


@pytest.mark.parametrize("backbone", ["timm:mobilenetv3_small_050", "dla34"])
def test_offline_pretrained_timm_weights_fail_with_instructions(backbone, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match=r"Hugging Face Hub cache.*pretrained: false"):
        CenterNet(2, backbone={"name": backbone, "pretrained": True})


# --- freezing -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", ["resnet18", "dla34"])
def test_frozen_stages_and_batchnorm(backbone):
    torch.manual_seed(0)
    small = {"neck": {"name": "upsampling", "channels": (16, 16, 16)}, "head": {"channels": 16}}
    reference = CenterNet(2, backbone=backbone, **small)
    for module in reference.modules():  # non-trivial statistics, so that a wrong copy would show
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    frozen = CenterNet(2, backbone={"name": backbone, "frozen_stages": 2}, **small)
    frozen.load_state_dict(reference.state_dict())  # FrozenBatchNorm2d keeps BatchNorm2d's state names
    stem, first, second = frozen.backbone.stages()[:3]
    assert not any(p.requires_grad for p in [*stem.parameters(), *first.parameters()])
    assert all(p.requires_grad for p in second.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in [*stem.modules(), *first.modules()])
    assert any(isinstance(m, FrozenBatchNorm2d) for m in first.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in second.modules())
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(frozen.eval()(image), reference.eval()(image))

    all_frozen = CenterNet(2, backbone={"name": backbone, "freeze_bn": True}, **small)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in all_frozen.backbone.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in all_frozen.neck.modules())  # only the backbone
    with pytest.raises(ValueError, match="frozen_stages must be in"):
        CenterNet(2, backbone={"name": backbone, "frozen_stages": 9})
