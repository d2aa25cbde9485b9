"""A CenterNet small enough to train for a few steps in seconds on two CPU cores, its data and its trainer."""

from __future__ import annotations

from typing import Any

import torch

# The options of a tiny CenterNet (ResNet-18 with a 32-channel lateral neck and head), as CenterNet and
# CenterNetModule take them.
TINY_MODEL: dict[str, Any] = {
    "backbone": {"name": "resnet18"},
    "neck": {"name": "lateral", "channels": (32, 32, 32)},
    "head": {"channels": 32},
}


def _merged(overrides: dict[str, Any]) -> dict[str, Any]:
    """TINY_MODEL with ``overrides``; a dict override of a group updates that group's options."""
    options = {key: dict(value) if isinstance(value, dict) else value for key, value in TINY_MODEL.items()}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(options.get(key), dict):
            options[key] = {**options[key], **value}
        else:
            options[key] = value
    return options


def tiny_network(num_classes: int = 3, **overrides: Any):
    """A :class:`~centernet.model.CenterNet` with the tiny options (group overrides merge, e.g. ``head={...}``)."""
    from centernet.model import CenterNet

    return CenterNet(num_classes, **_merged(overrides))


def tiny_shapes_data(shapes_root: str, batch_size: int, **overrides: Any):
    """A DataModule over the ``shapes_root`` fixture's dataset (16 / 8 images of 64 px), loading in-process."""
    from centernet.data.datamodule import CenterNetDataModule

    options = {
        "dataset": "shapes",
        "shapes_root": shapes_root,
        "shapes_train_images": 16,
        "shapes_val_images": 8,
        "shapes_image_size": 64,
        "image_size": 64,
        "batch_size": batch_size,
        "num_workers": 0,
    }
    return CenterNetDataModule(**{**options, **overrides})


def tiny_module(data: Any = None, num_classes: int | None = None, image_size: int = 64, **overrides: Any):
    """A :class:`~centernet.training.module.CenterNetModule` with the tiny options, for ``data``'s classes.

    ``optimizer={...}`` and the other group overrides merge with the defaults (warm-up of 2 steps).
    """
    from centernet.training.module import CenterNetModule

    options = _merged({"optimizer": {"warmup_steps": 2}, **overrides})
    if data is not None:
        return CenterNetModule(data.num_classes, data.class_names, data.category_ids, image_size, **options)
    return CenterNetModule(num_classes or 3, image_size=image_size, **options)


def quiet_trainer(max_steps: int = -1, callbacks: list | tuple = (), **kwargs: Any):
    """A CPU ``Trainer`` without loggers, checkpoints, progress bar or model summary."""
    import lightning as L

    settings = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": max_steps,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": list(callbacks),
    }
    return L.Trainer(**{**settings, **kwargs})


def synthetic_batch(
    images: int = 2, objects: int = 3, size: int = 64, num_classes: int = 3, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A batch of the model contract: random images, boxes inside them (relative cx, cy, w, h), all real."""
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.rand(images, objects, 2, generator=generator) * 0.4 + 0.1
    centres = sizes / 2 + torch.rand(images, objects, 2, generator=generator) * (1 - sizes)
    return {
        "image": torch.rand(images, 3, size, size, generator=generator),
        "bboxes": torch.cat([centres, sizes], dim=-1),
        "labels": torch.randint(0, num_classes, (images, objects), generator=generator),
        "mask": torch.ones(images, objects),
    }


def per_image(detections: dict[str, torch.Tensor], score_threshold: float = 0.0) -> list[dict[str, torch.Tensor]]:
    """Batched decoded detections (N, K, ...) -> one dict per image with the scores above ``score_threshold``."""
    keep = detections["scores"] > score_threshold  # (N, K)
    return [{key: value[n][keep[n]] for key, value in detections.items()} for n in range(keep.shape[0])]
