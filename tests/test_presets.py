"""The presets in centernet/configs/: parameter counts against the published architectures, `centernet info`,
the Lightning config schema, and ONNX export parity of the networks (raw output maps).
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from centernet.cli.info import build_model_from_configs, run_info
from centernet.configs import config_path
from centernet.model.summary import count_flops
from centernet.training.cli import CenterNetCLI

PRESETS = ("resnet18", "resnet18_dcn", "dla34", "dla34_dcn", "mobilenetv3")
COCO_CLASSES = 80


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _dcn_block(c_in: int, c_out: int) -> int:
    """DCNv2 3x3 conv as in the original code (weight + bias + the 3x3 offset/mask conv with 27 outputs) + BN."""
    return c_out * c_in * 9 + c_out + 27 * c_in * 9 + 27 + 2 * c_out


def _heads(c_in: int, head_conv: int, classes: int) -> int:
    """Heatmap, size and offset heads: 3x3 conv (bias) + ReLU + 1x1 conv (bias) each."""
    return sum(c_in * head_conv * 9 + head_conv + head_conv * c + c for c in (classes, 2, 2))


# torchvision's ResNet-18 has 11,689,512 parameters (its documentation), 513,000 of them in the ImageNet classifier.
RESNET18_BODY = 11_689_512 - (512 * 1000 + 1000)
# The ImageNet DLA-34 of the DLA paper (Yu et al. 2018) has 15.7 M parameters; timm's dla34, whose features ours
# reproduce exactly (test_architectures.py), has 15,742,104, 513,000 of them in the classifier.
DLA34_BODY = 15_742_104 - (512 * 1000 + 1000)


def _resnet18_dcn_original() -> int:
    """CenterNet-ResNet-18 of the original code (resnet_dcn.py): three (DCN + BN + ReLU, 4x4 deconv + BN + ReLU)."""
    neck = sum(
        _dcn_block(c_in, c_out) + c_out * c_out * 16 + 2 * c_out for c_in, c_out in ((512, 256), (256, 128), (128, 64))
    )
    return RESNET18_BODY + neck + _heads(64, 64, COCO_CLASSES)


def _ida_up(out: int, channels: list[int], factors: list[int]) -> int:
    """IDAUp of the original pose_dla_dcn.py: per extra input a DCN projection, a DCN node, a depthwise deconv."""
    return sum(
        _dcn_block(c, out) + _dcn_block(out, out) + out * (2 * f) ** 2
        for c, f in zip(channels[1:], factors[1:], strict=True)
    )


def _dla34_dcn_original() -> int:
    """CenterNet-DLA-34 of the original code (pose_dla_dcn.py, DLASeg with head_conv 256), minus the 41,728
    parameters of the two 1x1 ``project`` convolutions + BN that its DLA-34 owns but never uses (levels 3, 4)."""
    dla_up = (
        _ida_up(256, [256, 512], [1, 2])
        + _ida_up(128, [128, 256, 256], [1, 2, 2])
        + _ida_up(64, [64, 128, 128, 128], [1, 2, 2, 2])
    )
    ida_up = _ida_up(64, [64, 128, 256], [1, 2, 4])
    return DLA34_BODY + dla_up + ida_up + _heads(64, 256, COCO_CLASSES)


def test_paper_models_have_the_published_parameter_counts():
    resnet, _ = build_model_from_configs([str(config_path("resnet18_dcn"))], COCO_CLASSES)
    assert _parameters(resnet.backbone) == RESNET18_BODY == 11_176_512
    assert _parameters(resnet) == _resnet18_dcn_original() == 14_437_349
    dla, _ = build_model_from_configs([str(config_path("dla34_dcn"))], COCO_CLASSES)
    assert _parameters(dla.backbone) == DLA34_BODY == 15_229_104
    assert _parameters(dla) == _dla34_dcn_original() == 19_634_164
    unused_projections = (64 * 128 + 2 * 128) + (128 * 256 + 2 * 256)
    assert _parameters(dla) + unused_projections == 19_675_892  # the original model: "about 20 M"


def test_info_prints_parameters_and_gflops(capsys):
    summary = run_info(["--config", "resnet18", "--image-size", "64", "--num-classes", "80"])
    assert summary["parameters"] == 14_219_092
    out = capsys.readouterr().out
    assert "14,219,092" in out and "GFLOPs" in out and "at 64x64" in out
    # At 512 px the convolutions scale with the area: 64 times the FLOPs of 64 px.
    model, _ = build_model_from_configs(["resnet18"], 80)
    assert count_flops(model, 512) == pytest.approx(64 * summary["gflops"] * 1e9, rel=1e-6)


def test_flop_count_of_a_deformable_convolution():
    from centernet.model.dcn import ModulatedDeformConv2d

    dcn = ModulatedDeformConv2d(3, 8, 3)
    offset_conv = 2 * 27 * 3 * 9 * 16 * 16
    deform = 2 * 8 * 3 * 9 * 16 * 16 + 9 * 3 * 9 * 16 * 16
    assert count_flops(dcn, (16, 16)) == offset_conv + deform


def test_unknown_model_keys_in_a_config_are_errors(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  backbone:\n    name: dla34\n  neck_width: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml.*does not accept option 'model.neck_width'"):
        build_model_from_configs([str(config)])
    with pytest.raises(FileNotFoundError, match="no_such_preset"):
        build_model_from_configs(["no_such_preset"])


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_are_valid_lightning_configs(preset, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["centernet"])
    args = ["--config", str(config_path(preset)), "--data.dataset=shapes", "--data.shapes_root=/nonexistent"]
    cli = CenterNetCLI(args=args, run=False)
    expected, _ = build_model_from_configs([preset], cli.model.model.num_classes)
    assert _parameters(cli.model.model) == _parameters(expected)


def _export_and_compare(model: nn.Module, image: torch.Tensor, path, opset: int) -> list[str]:
    """Export the raw maps, run them in ONNX Runtime, assert they match eager; returns the compared outputs."""
    import onnxruntime

    model.eval()
    with torch.no_grad():
        expected = model(image)
    names = list(expected)
    torch.onnx.export(
        model, (image,), str(path), input_names=["image"], output_names=names, opset_version=opset, dynamo=False
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(names, {"image": image.numpy()})
    for name, value in zip(names, outputs, strict=True):
        torch.testing.assert_close(torch.from_numpy(value), expected[name], rtol=1e-3, atol=1e-4)
    return names


# The DLA-34 exports take ~15 s each on two CPU cores: slow tests.
_EXPORTED = [p if not p.startswith("dla34") else pytest.param(p, marks=pytest.mark.slow) for p in PRESETS]


@pytest.mark.parametrize("preset", _EXPORTED)
def test_presets_export_to_onnx_with_parity(preset, tmp_path):
    """Non-DCN presets export at any recent opset; DCN ones as ONNX DeformConv, which needs opset 19."""
    torch.manual_seed(0)
    model, _ = build_model_from_configs([preset], 3)
    for module in model.modules():  # random statistics so that BatchNorm folding errors would show
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    opset = 19 if "dcn" in preset else 17
    compared = _export_and_compare(model, torch.rand(1, 3, 64, 96), tmp_path / f"{preset}.onnx", opset)
    assert compared == (["heatmap", "ltrb"] if model.task.head.type == "ltrb" else ["heatmap", "size", "offset"])


def test_deformable_model_below_opset_19_fails_naming_the_reason(tmp_path):
    model, _ = build_model_from_configs(["resnet18_dcn"], 3)
    with pytest.raises(Exception, match=r"deform_conv2d.*opset version 17.*version 19"):
        torch.onnx.export(
            model.eval(), (torch.rand(1, 3, 64, 64),), str(tmp_path / "m.onnx"), opset_version=17, dynamo=False
        )


def test_centernet_info_command(capsys):
    from centernet.cli.main import main

    main(["info", "--config", "mobilenetv3", "--image-size", "64", "--num-classes", "3"])
    out = capsys.readouterr().out
    model, _ = build_model_from_configs(["mobilenetv3"], 3)
    assert f"parameters:  {_parameters(model):,}" in out and "at 64x64 (3 classes" in out


def _pose_heads(in_channels: int, head_channels: int, joints: int) -> int:
    """The original ``multi_pose`` heads: hm (1), wh (2), reg (2), hps (2K), hm_hp (K), hp_offset (2), each a 3x3
    conv (bias) to ``head_channels``, ReLU, 1x1 conv (bias)."""
    return sum(
        in_channels * head_channels * 9 + head_channels + head_channels * out + out
        for out in (1, 2, 2, 2 * joints, joints, 2)
    )


def test_pose_presets_have_the_original_multi_pose_parameter_counts():
    dla, _ = build_model_from_configs(["dla34_pose"])
    assert (dla.num_classes, dla.task.num_joints) == (1, 17)
    body = _dla34_dcn_original() - _heads(64, 256, COCO_CLASSES)
    assert _parameters(dla) == body + _pose_heads(64, 256, 17) == 20_070_618
    resnet, _ = build_model_from_configs(["resnet18_pose"])
    assert _parameters(resnet) == _resnet18_dcn_original() - _heads(64, 64, COCO_CLASSES) + _pose_heads(64, 64, 17)
