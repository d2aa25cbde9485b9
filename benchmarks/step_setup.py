"""The training step the speed benchmarks time: CenterNet-R18, 80 classes, a synthetic batch, as ``fit`` trains.

Shared by ``train_levers.py``, ``profile_step.py`` and ``lightning_step.py`` so that each measures the same
step; ``compare.py`` builds the same model and batch for its table.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from centernet.model import CenterNet
from centernet.training.module import default_channels_last
from centernet.training.optim import build_adamw, split_weight_decay

NUM_CLASSES = 80


def synthetic_batch(batch: int, size: int, objects: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random (batch, 3, size, size) images in [0, 1] with ``objects`` boxes each (relative cxcywh inside the
    image, 2-32% of its side; COCO has 7.3 objects per image), labels in [0, 80) and an all-ones mask."""
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.rand(batch, objects, 2, generator=generator) * 0.3 + 0.02
    centres = sizes / 2 + torch.rand(batch, objects, 2, generator=generator) * (1 - sizes)
    return {
        "image": torch.rand(batch, 3, size, size, generator=generator),
        "bboxes": torch.cat([centres, sizes], dim=-1),  # (batch, objects, 4)
        "labels": torch.randint(0, NUM_CLASSES, (batch, objects), generator=generator),
        "mask": torch.ones(batch, objects),
        "image_id": torch.arange(batch),
    }


def centernet_r18(seed: int = 0) -> CenterNet:
    """CenterNet on ResNet-18 with the paper's plain upsampling neck (256, 128, 64), random weights."""
    torch.manual_seed(seed)
    return CenterNet(NUM_CLASSES, backbone="resnet18")


def fit_defaults(
    model: CenterNet,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    channels_last: bool | None = None,
    optimizer: str = "default",
) -> tuple[CenterNet, dict[str, torch.Tensor], torch.optim.Optimizer]:
    """The model, batch and AdamW on ``device`` as ``centernet fit`` sets them up, or with one lever changed.

    Args:
        channels_last: ``None``: :func:`default_channels_last`, as ``fit``; else forced.
        optimizer: ``"default"`` (:func:`build_adamw`, as ``fit``), or ``"fused"``, ``"foreach"``, ``"loop"``.
    """
    model = model.to(device).train()
    batch = {key: value.to(device) for key, value in batch.items()}
    if default_channels_last(device) if channels_last is None else channels_last:
        model = model.to(memory_format=torch.channels_last)
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    groups = split_weight_decay(model, 1e-4)
    if optimizer == "default":
        return model, batch, build_adamw(groups, 1e-4, device)
    flags = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[optimizer]
    return model, batch, torch.optim.AdamW(groups, lr=1e-4, **flags)


def step_fn(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer
) -> Callable[[], float]:
    """One training step (forward, targets + loss, backward, AdamW) returning the loss."""
    criterion = model.compute_loss if isinstance(model, CenterNet) else model._orig_mod.compute_loss

    def step() -> float:
        loss = criterion(model(batch["image"]), batch)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step
