"""Tests of the CenterNet assembly and its parts (backbone, neck, head)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import per_image
from torch import nn

from centernet.errors import PretrainedWeightsError
from centernet.model import CenterNet
from centernet.model.backbones import ResNetBackbone
from centernet.model.necks import LateralUpsamplingNeck, UpsamplingNeck
from centernet.tasks.detection.heads import CenterNetHead

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def model() -> CenterNet:
    torch.manual_seed(0)
    return CenterNet(NUM_CLASSES, backbone="resnet18", neck={"channels": (32, 16, 8)}, head={"channels": 8}).eval()


def _batch(num_images: int = 2, height: int = 64, width: int = 96) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(num_images, 3, height, width, generator=generator),
        "bboxes": torch.tensor([[[0.5, 0.5, 0.4, 0.3], [0.2, 0.8, 0.1, 0.2]], [[0.3, 0.6, 0.5, 0.5], [0.0] * 4]]),
        "labels": torch.tensor([[0, 2], [1, 0]]),
        "mask": torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
    }


def test_forward_shapes_non_square(model):
    with torch.no_grad():
        outputs = model(_batch()["image"])
    assert set(outputs) == {"heatmap", "size", "offset"}
    assert outputs["heatmap"].shape == (2, NUM_CLASSES, 16, 24)
    assert outputs["size"].shape == (2, 2, 16, 24) and outputs["offset"].shape == (2, 2, 16, 24)


def test_tensor_and_dict_inputs_agree(model):
    batch = _batch()
    with torch.no_grad():
        from_dict, from_tensor = model(batch), model(batch["image"])
    for key in from_dict:
        assert torch.equal(from_dict[key], from_tensor[key]), key


@pytest.mark.parametrize("height, width", [(64, 100), (70, 96)])
def test_size_not_multiple_of_32_is_rejected(model, height, width):
    with pytest.raises(ValueError, match=rf"\({height}, {width}\)"):
        model(torch.rand(1, 3, height, width))


def test_heatmap_prior_and_regression_init():
    head = CenterNetHead(16, NUM_CLASSES, head_channels=8, prior=0.1)
    torch.testing.assert_close(head.heatmap[-1].bias, torch.full((NUM_CLASSES,), -math.log(9.0)))
    assert head.heatmap[-1].bias[0].item() == pytest.approx(-2.1972, abs=1e-4)
    for branch in (head.size, head.offset):
        assert branch[-1].bias.abs().sum() == 0
        assert branch[-1].weight.std().item() == pytest.approx(0.001, rel=0.5)


def test_neck_deconvolutions_start_as_bilinear_upsampling():
    neck = UpsamplingNeck(16, channels=(8, 6, 4))
    deconvs = [m for m in neck.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(deconvs) == 3 and neck.out_channels == 4
    generator = torch.Generator().manual_seed(0)
    for deconv in deconvs:
        channels = deconv.in_channels
        with torch.no_grad():
            constant = deconv(torch.full((1, channels, 5, 7), 3.0))
            features = torch.rand(1, channels, 5, 7, generator=generator)
            upsampled = deconv(features)
        assert constant.shape == (1, channels, 10, 14)
        torch.testing.assert_close(constant[..., 1:-1, 1:-1], torch.full((1, channels, 8, 12), 3.0))
        bilinear = F.interpolate(features, scale_factor=2, mode="bilinear", align_corners=False)
        torch.testing.assert_close(upsampled[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1])
    with torch.no_grad():
        assert neck([torch.rand(2, 16, 2, 3)]).shape == (2, 4, 16, 24)  # stride 32 -> 4


def test_lateral_neck_adds_shortcuts_at_strides_16_8_4():
    torch.manual_seed(0)
    neck = LateralUpsamplingNeck((4, 5, 6, 7), channels=(8, 6, 5)).eval()
    features = [torch.rand(2, c, 16 // s, 24 // s) for c, s in ((4, 1), (5, 2), (6, 4), (7, 8))]
    with torch.no_grad():
        out = neck(features)
        assert out.shape == (2, 5, 16, 24)
        # The stride-4 shortcut reaches the output: changing only that map changes the result.
        changed = neck([features[0] + 1.0, *features[1:]])
    assert not torch.allclose(out, changed)
    with pytest.raises(ValueError, match="strides 4, 8, 16, 32"):
        LateralUpsamplingNeck((4, 5, 6), channels=(8, 6, 5))


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = CenterNet(NUM_CLASSES, neck={"channels": (16, 16, 8)}, head={"channels": 8}).train()
    batch = _batch()
    losses = model.compute_loss(model(batch), batch)
    assert set(losses) == {"heatmap", "size", "offset", "total"}
    losses["total"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def test_decode_shapes_cap_and_batched_equals_per_image(model):
    batch = _batch(num_images=3)
    with torch.no_grad():
        outputs = model(batch["image"])
    detections = model.decode(outputs, max_detections=7)
    assert detections["boxes"].shape == (3, 7, 4)
    assert detections["scores"].shape == (3, 7) and detections["labels"].shape == (3, 7)
    assert model.decode(outputs)["boxes"].shape == (3, 100, 4)  # the constructor's default
    assert model.decode(outputs, max_detections=10**6)["scores"].shape == (3, NUM_CLASSES * 16 * 24)
    batched = per_image(model.decode(outputs, max_detections=50))
    for n in range(3):
        single = per_image(model.decode({k: v[n : n + 1] for k, v in outputs.items()}, max_detections=50))[0]
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(batched[n][key], single[key]), key


def test_normalisation_buffers_are_not_saved(model):
    state = model.state_dict()
    assert "pixel_mean" not in state and "pixel_std" not in state
    assert model.pixel_mean.shape == (1, 3, 1, 1)


def test_backbone_channels_stride_and_unknown_name():
    backbone = ResNetBackbone("resnet18")
    assert backbone.out_channels == 512 and backbone.stride == 32
    with torch.no_grad():
        assert [f.shape for f in backbone(torch.rand(1, 3, 64, 96))] == [
            (1, 64, 16, 24),
            (1, 128, 8, 12),
            (1, 256, 4, 6),
            (1, 512, 2, 3),
        ]
    with pytest.raises(ValueError, match="resnet18"):
        ResNetBackbone("resnet7")


def test_missing_pretrained_weights_explain_where_to_put_them(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(PretrainedWeightsError) as error:
        ResNetBackbone("resnet18", pretrained=True)
    message = str(error.value)
    assert str(tmp_path / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "pretrained: false" in message


def test_neck_must_reach_stride_4():
    with pytest.raises(ValueError, match=r"\[8, 8\]"):
        CenterNet(NUM_CLASSES, neck={"channels": (8, 8)})
