"""``centernet info``: the parameters and GFLOPs of the model a config describes, at a given input size.

    centernet info --config centernet/configs/dla34_dcn.yaml --image-size 512
    centernet info --config dla34_dcn              # a preset shipped in centernet/configs/, by name

The config is read exactly as ``centernet fit`` reads it (base.yaml first, unknown keys are errors). FLOPs are
counted on one forward pass of one image; one multiply-add is two FLOPs (see :mod:`centernet.model.summary`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import torch

from centernet.cli.config import read_config
from centernet.data.keypoints import COCO_JOINTS, COCO_SKELETON, keypoint_info
from centernet.model import CenterNet
from centernet.model.summary import count_flops, count_parameters

__all__ = ["build_model_from_configs", "run_info"]


def build_model_from_configs(
    configs: Sequence[str], num_classes: int | None = None, overrides: Sequence[str] = ()
) -> tuple[CenterNet, int]:
    """The ``CenterNet`` that base.yaml + ``configs`` (files or shipped names) describe, with ``num_classes``
    classes (default: COCO's 80, or its 1 person class for pose) and random weights, and the config's input size
    (``data.image_size``). A pose model counts COCO's 17 joints (the joints otherwise come from the data)."""
    config = read_config(configs, overrides)
    model = config["model"]
    pose = model["task"] == "pose"
    network = CenterNet(
        num_classes=num_classes or (1 if pose else 80),
        task=model["task"],
        backbone={**model["backbone"], "pretrained": False},
        neck=model["neck"],
        head=model["head"],
        loss=model["loss"],
        max_detections=model["max_detections"],
        task_options=model.get("task_options"),
        task_data=keypoint_info(COCO_JOINTS, COCO_SKELETON) if pose else None,
    )
    return network, int(config["data"]["image_size"])


def run_info(argv: Sequence[str] = ()) -> dict[str, Any]:
    """Parse ``argv``, build the model, print its summary and return it."""
    parser = argparse.ArgumentParser(prog="centernet info", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", default=[], help="config file or preset name (repeatable)")
    parser.add_argument("--image-size", type=_positive, default=None, help="input side (default: the config's)")
    parser.add_argument(
        "--num-classes", type=_positive, default=None, help="heatmap classes (default: COCO's 80; 1 for pose)"
    )
    args = parser.parse_args(list(argv))
    torch.manual_seed(0)
    model, config_size = build_model_from_configs(args.config, args.num_classes)
    size = args.image_size or config_size
    if size % 32:
        raise ValueError(f"--image-size must be a multiple of 32, got {size}")
    total, trainable = count_parameters(model)
    flops = count_flops(model, size)
    parts = {name: count_parameters(getattr(model, name))[0] for name in ("backbone", "neck", "head")}
    print(f"config:      {' + '.join(['base', *args.config])}")
    print(f"parameters:  {total:,} ({trainable:,} trainable)")
    print("             " + ", ".join(f"{name} {count:,}" for name, count in parts.items()))
    what = f"{model.num_classes} classes"
    if model.task.name == "pose":
        what += f", {model.task.num_joints} joints"
    print(f"GFLOPs:      {flops / 1e9:.2f} at {size}x{size} ({what}; 1 multiply-add = 2 FLOPs)")
    return {"parameters": total, "trainable": trainable, "gflops": flops / 1e9, "image_size": size}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value
