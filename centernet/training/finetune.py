"""Start a model from another run's checkpoint: strict, except for the class-count-dependent heatmap layer.

The original CenterNet loaded checkpoints with ``strict=False`` and dropped mismatched tensors silently, so a
typo in an architecture option trained from scratch without a word. Here every key must match in name and
shape; the one allowed difference is the number of classes, which only changes the heatmap head's last
convolution: that layer keeps its fresh initialisation (the prior bias, see ``CenterNetHead``) and the
caller is told so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from centernet.training.ema import EMA_STATE_KEY

__all__ = ["load_finetune_weights", "read_model_weights"]

_MODULE_PREFIX = "model."


def read_model_weights(path: str | Path) -> dict[str, Tensor]:
    """The ``CenterNet`` weights stored in ``path``, with ``CenterNet.state_dict()`` key names.

    Accepts a checkpoint of ``centernet fit`` (the EMA weights when it has them, they are the validated ones,
    else its ``state_dict``) or a file written with ``torch.save(model.state_dict(), path)``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file holds no recognisable weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint to fine-tune from not found")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path}: expected a checkpoint dict, got {type(checkpoint).__name__}")
    if EMA_STATE_KEY in checkpoint:
        state = checkpoint[EMA_STATE_KEY]
    elif "state_dict" in checkpoint:
        state = checkpoint["state_dict"]
    else:
        state = checkpoint
    if not state or not all(isinstance(value, Tensor) for value in state.values()):
        raise ValueError(f"{path}: no model weights found (expected a Lightning checkpoint or a state_dict)")
    if all(key.startswith(_MODULE_PREFIX) for key in state):
        state = {key[len(_MODULE_PREFIX) :]: value for key, value in state.items()}
    return dict(state)


def load_finetune_weights(model: nn.Module, path: str | Path, class_layer: str) -> list[str]:
    """Copy the weights of ``path`` into ``model``; re-initialise the class layer if the class count differs.

    Args:
        model: The model to initialise (its current values are kept for re-initialised keys).
        path: Checkpoint, see :func:`read_model_weights`.
        class_layer: Module name of the layer whose output channels are the classes (``head.heatmap.2``).

    Returns:
        The keys that were not loaded because their number of classes differs (empty when all were loaded).

    Raises:
        ValueError: naming the keys, on a missing or unexpected key or on any other shape mismatch.
    """
    source = read_model_weights(path)
    target = model.state_dict()
    missing = sorted(set(target) - set(source))
    unexpected = sorted(set(source) - set(target))
    class_keys = {f"{class_layer}.weight", f"{class_layer}.bias"}
    reinitialised, mismatched = [], []
    for key in sorted(set(source) & set(target)):
        old, new = source[key].shape, target[key].shape
        if old == new:
            continue
        if key in class_keys and old[1:] == new[1:]:
            reinitialised.append(key)
        else:
            mismatched.append(f"{key}: checkpoint {tuple(old)} vs model {tuple(new)}")
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mismatched:
        problems.append(f"shape mismatches {mismatched}")
    if problems:
        raise ValueError(
            f"{path}: the checkpoint does not fit the model ({'; '.join(problems)}); only the number of classes "
            "may differ: check the backbone, neck and head options"
        )
    model.load_state_dict({key: value for key, value in source.items() if key not in reinitialised}, strict=False)
    return reinitialised
