"""``centernet info``: the parameters and GFLOPs of the model a config describes, at a given input size.

    centernet info --config centernet/configs/dla34_dcn.yaml --image-size 512
    centernet info --config dla34_dcn              # a preset shipped in centernet/configs/, by name

FLOPs are counted by ``torch.utils.flop_counter`` on one forward pass of one image; one multiply-add is two
FLOPs. Deformable convolutions, which the counter does not know, are counted as the equivalent convolution
plus the bilinear sampling and modulation of each sampled value (see :func:`_deform_conv2d_flops`).
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

from centernet.model import CenterNet
from centernet.training.cli import config_path
from centernet.training.module import CenterNetModule

__all__ = ["build_model_from_configs", "count_flops", "count_parameters", "run_info"]


@register_flop_formula(torch.ops.torchvision.deform_conv2d)
def _deform_conv2d_flops(input_shape, weight_shape, offset_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of ``torchvision::deform_conv2d``: the convolution's 2 * MACs, plus 9 per sampled input value.

    Each of the ``C_in * k^2`` values sampled per output position costs a 4-tap bilinear interpolation (8 FLOPs)
    and a multiplication by the modulation mask (1 FLOP).
    """
    batch, out_channels, out_h, out_w = out_shape
    _, in_per_group, kernel_h, kernel_w = weight_shape
    sampled = batch * input_shape[1] * kernel_h * kernel_w * out_h * out_w
    return 2 * batch * out_channels * in_per_group * kernel_h * kernel_w * out_h * out_w + 9 * sampled


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters) of ``model``."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def count_flops(model: nn.Module, image_size: int | tuple[int, int]) -> int:
    """FLOPs of one forward pass of ``model`` on one (3, H, W) image (2 FLOPs per multiply-add)."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, height, width))
    model.train(was_training)
    return counter.get_total_flops()


def _read_model_section(paths: Sequence[str]) -> tuple[dict[str, Any], int]:
    """Merge the ``model`` sections of base.yaml and ``paths`` (in order); also return data.image_size."""
    model: dict[str, Any] = {}
    image_size = 512
    for entry in [str(config_path("base")), *paths]:
        path = Path(entry)
        if not path.exists() and config_path(entry).exists():
            path = config_path(entry)
        if not path.exists():
            raise FileNotFoundError(f"{entry}: no such config file (nor a preset in {config_path(entry).parent})")
        config = yaml.safe_load(path.read_text()) or {}
        if not isinstance(config, dict):
            raise ValueError(f"{path}: a config must be a mapping of sections, got {type(config).__name__}")
        model.update(config.get("model") or {})
        image_size = (config.get("data") or {}).get("image_size", image_size)
    known = set(inspect.signature(CenterNetModule.__init__).parameters) - {"self"}
    unknown = sorted(set(model) - known)
    if unknown:
        raise ValueError(f"unknown model keys {unknown} in {list(paths)}; valid keys: {sorted(known)}")
    return model, image_size


def build_model_from_configs(paths: Sequence[str], num_classes: int = 80) -> tuple[CenterNet, int]:
    """The ``CenterNet`` described by base.yaml + ``paths``, and the config's input size (data.image_size)."""
    model_config, image_size = _read_model_section(paths)
    # The model section also holds training settings (lr, EMA, ...); the architecture is what CenterNet takes.
    architecture = set(inspect.signature(CenterNet.__init__).parameters) - {"self", "num_classes"}
    kwargs = {k: v for k, v in model_config.items() if k in architecture}
    return CenterNet(num_classes=num_classes, **kwargs), image_size


def run_info(argv: Sequence[str] = ()) -> dict[str, float]:
    """Parse ``argv``, build the model, print its summary and return it."""
    parser = argparse.ArgumentParser(prog="centernet info", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", default=[], help="config file or preset name (repeatable)")
    parser.add_argument("--image-size", type=int, default=None, help="input side (default: the config's)")
    parser.add_argument("--num-classes", type=int, default=80, help="heatmap classes (default: 80, as COCO)")
    args = parser.parse_args(list(argv))
    torch.manual_seed(0)
    model, config_size = build_model_from_configs(args.config, args.num_classes)
    size = args.image_size or config_size
    total, trainable = count_parameters(model)
    flops = count_flops(model, size)
    parts = {name: count_parameters(getattr(model, name))[0] for name in ("backbone", "neck", "head")}
    print(f"config:      {' + '.join(['base', *args.config])}")
    print(f"parameters:  {total:,} ({trainable:,} trainable)")
    print("             " + ", ".join(f"{name} {count:,}" for name, count in parts.items()))
    print(f"GFLOPs:      {flops / 1e9:.2f} at {size}x{size} ({args.num_classes} classes; 1 multiply-add = 2 FLOPs)")
    return {"parameters": total, "trainable": trainable, "gflops": flops / 1e9, "image_size": size}
