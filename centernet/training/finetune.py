"""Start a model from another run's checkpoint: strict, except for the class-count-dependent heatmap layer.

The original CenterNet loaded checkpoints with ``strict=False`` and dropped mismatched tensors silently, so a
typo in an architecture option trained from scratch without a word. Here every key must match in name and
shape; the one allowed difference is the number of classes, which only changes the task head's class layer:
that layer keeps its fresh initialisation (the prior bias, see ``CenterNetHead``) and the caller is told so.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from centernet.model.checkpoint import model_weights, read_checkpoint

__all__ = ["load_finetune_weights"]


def load_finetune_weights(model: nn.Module, path: str | Path, class_layer: str) -> list[str]:
    """Copy the weights of ``path`` into ``model``; re-initialise the class layer if the class count differs.

    Args:
        model: The model to initialise (its current values are kept for re-initialised keys).
        path: A ``centernet fit`` checkpoint (its EMA weights when it has them) or a file written with
            ``torch.save(model.state_dict(), path)``; read as data only (see :mod:`centernet.model.checkpoint`).
        class_layer: Module name of the layer whose output channels are the classes (``head.heatmap.2``).

    Returns:
        The keys that were not loaded because their number of classes differs, or because the checkpoint lacks
        them and the model's task declares them fresh (``Task.fresh_layers``: tracking from a detection
        checkpoint); empty when all were loaded.

    Raises:
        ValueError: naming the keys, on a missing or unexpected key or on any other shape mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint to fine-tune from not found")
    source = model_weights(read_checkpoint(path), str(path))
    target = model.state_dict()
    fresh = tuple(getattr(getattr(model, "task", None), "fresh_layers", ()))
    absent = sorted(set(target) - set(source))
    kept_fresh = [key for key in absent if any(key == p or key.startswith(f"{p}.") for p in fresh)]
    missing = [key for key in absent if key not in kept_fresh]
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
    return reinitialised + kept_fresh
