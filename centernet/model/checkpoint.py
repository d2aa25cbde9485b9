"""Reading a checkpoint of ``centernet fit`` without Lightning: safely, in any format version, into a model.

Checkpoints are data, and loading one must never run code: every file is read with
``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers, so a pickle that would call
a function fails with :class:`CheckpointError` naming the file. (Configs are code: a YAML ``class_path`` builds the
class it names, by design.)

Format versions (``checkpoint["centernet_format"]``):

- 1 (no version key; centernet 0.1.0): flat model options (``backbone: resnet18``, ``neck_channels``,
  ``alpha``, ``lr``, ...).
- 2: option groups (``backbone: {name, ...}``, ``neck``, ``head``, ``loss``, ``optimizer``), ``task``.

:func:`migrate_checkpoint` brings an older checkpoint to the current version in memory (the file is not
changed); a newer version than this code knows is an error that says to upgrade.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from centernet.errors import InputError
from centernet.model.centernet import CenterNet

__all__ = [
    "CHECKPOINT_FORMAT",
    "EMA_STATE_KEY",
    "FORMAT_1_OPTIONS",
    "FORMAT_KEY",
    "CheckpointError",
    "LoadedModel",
    "load_model",
    "migrate_checkpoint",
    "model_weights",
    "read_checkpoint",
]

FORMAT_KEY = "centernet_format"
CHECKPOINT_FORMAT = 2
EMA_STATE_KEY = "ema_state_dict"  # the weight average of the EMA callback, beside Lightning's "state_dict"
_MODULE_PREFIX = "model."

# Format 1's flat model options -> (group, option) of format 2; options not listed keep their name at the top.
FORMAT_1_OPTIONS = {
    "backbone": ("backbone", "name"),
    "pretrained": ("backbone", "pretrained"),
    "frozen_stages": ("backbone", "frozen_stages"),
    "freeze_bn": ("backbone", "freeze_bn"),
    "neck": ("neck", "name"),
    "neck_channels": ("neck", "channels"),
    "deformable": ("neck", "deformable"),
    "head": ("head", "type"),
    "head_channels": ("head", "channels"),
    "gaussian": ("loss", "gaussian"),
    "alpha": ("loss", "gaussian_extent"),
    "min_overlap": ("loss", "min_overlap"),
    "heatmap_weight": ("loss", "heatmap_weight"),
    "size_weight": ("loss", "size_weight"),
    "offset_weight": ("loss", "offset_weight"),
    "box_weight": ("loss", "box_weight"),
    "box_sampling": ("loss", "box_sampling"),
    "lr": ("optimizer", "lr"),
    "weight_decay": ("optimizer", "weight_decay"),
    "warmup_steps": ("optimizer", "warmup_steps"),
    "min_lr_ratio": ("optimizer", "min_lr_ratio"),
    "base_batch_size": ("optimizer", "base_batch_size"),
}


class CheckpointError(InputError, ValueError):
    """A file that is not a usable centernet checkpoint; the message names the file and what is wrong."""


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain containers only) and migrate it to the current format.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        CheckpointError: the file is not a checkpoint (truncated, random bytes, a pickle that would run code, a
            newer format); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickler_reason(str(error))
        if "GLOBAL" not in reason and "global" not in reason:
            raise CheckpointError(f"{path}: not a readable checkpoint (not a torch file: {reason})") from error
        raise CheckpointError(
            f"{path}: refused to load: the file would run code to load ({reason}). Checkpoints are loaded as data "
            "only (tensors and plain containers); a file that needs code is not a centernet checkpoint"
        ) from error
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, KeyError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a torch file: {error})") from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(checkpoint).__name__}")
    return migrate_checkpoint(checkpoint, str(path))


def _unpickler_reason(message: str) -> str:
    """The one informative line of torch's weights-only refusal (e.g. "unsupported GLOBAL posix.system")."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line or "unsupported" in line:
            return line.removeprefix("WeightsUnpickler error: ")
    return lines[-1] if lines else "unpickling failed"


def migrate_checkpoint(checkpoint: dict[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """Bring a checkpoint dict to :data:`CHECKPOINT_FORMAT` in place (and return it).

    A dict without Lightning's ``hyper_parameters`` (e.g. a bare ``state_dict``) is returned unchanged.

    Raises:
        CheckpointError: for a format newer than this code knows.
    """
    version = checkpoint.get(FORMAT_KEY, 1)
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{source}: checkpoint format {version!r} is newer than this centernet reads ({CHECKPOINT_FORMAT}); "
            "upgrade centernet"
        )
    hparams = checkpoint.get("hyper_parameters")
    if version == 1 and isinstance(hparams, dict):
        checkpoint["hyper_parameters"] = _hparams_v1_to_v2(hparams)
    if isinstance(hparams, dict) or version > 1:
        checkpoint[FORMAT_KEY] = CHECKPOINT_FORMAT
    return checkpoint


def _hparams_v1_to_v2(hparams: Mapping[str, Any]) -> dict[str, Any]:
    migrated: dict[str, Any] = {"task": "detection"}
    for key, value in hparams.items():
        if key in FORMAT_1_OPTIONS:
            group, option = FORMAT_1_OPTIONS[key]
            migrated.setdefault(group, {})[option] = value
        else:
            migrated[key] = value
    return migrated


def model_weights(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> dict[str, Tensor]:
    """The network's weights (``CenterNet.state_dict()`` names): the EMA average when the checkpoint has one
    (the weights that were validated in training), else Lightning's ``state_dict``, else a bare state dict."""
    if EMA_STATE_KEY in checkpoint:
        state = checkpoint[EMA_STATE_KEY]
    elif "state_dict" in checkpoint:
        state = checkpoint["state_dict"]
    else:
        state = checkpoint
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: no model weights found (expected a centernet checkpoint or a state_dict)")
    if all(key.startswith(_MODULE_PREFIX) for key in state):
        state = {key[len(_MODULE_PREFIX) :]: value for key, value in state.items()}
    return dict(state)


@dataclass
class LoadedModel:
    """A network read from a checkpoint, with what inference needs to know about it.

    Attributes:
        model: The network in eval mode, on the CPU.
        class_names: Names indexed by contiguous label.
        category_ids: The dataset's category id of each contiguous label.
        image_size: The side of the square training input.
        hyper_parameters: Every option the checkpoint was trained with (format 2).
    """

    model: CenterNet
    class_names: list[str]
    category_ids: list[int]
    image_size: int
    hyper_parameters: dict[str, Any]


def model_options(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`CenterNet` keyword arguments of a checkpoint's (format 2) hyper-parameters.

    ``pretrained`` is switched off: the weights come from the checkpoint, and building the model must not try to
    download ImageNet weights.
    """
    backbone = dict(hparams.get("backbone") or {})
    backbone["pretrained"] = False
    return {
        "num_classes": int(hparams["num_classes"]),
        "task": hparams.get("task", "detection"),
        "backbone": backbone,
        "neck": hparams.get("neck"),
        "head": hparams.get("head"),
        "loss": hparams.get("loss"),
        "max_detections": int(hparams.get("max_detections", 100)),
        "task_options": hparams.get("task_options"),
        "task_data": hparams.get("task_data"),
    }


def load_model(path: str | os.PathLike) -> LoadedModel:
    """The network of a ``centernet fit`` checkpoint (its EMA weights when it has them), without Lightning.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        CheckpointError: the file is not a usable checkpoint, or its weights do not fit its own options.
    """
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or "num_classes" not in hparams:
        raise CheckpointError(f"{path}: no model options (hyper_parameters); is it a `centernet fit` checkpoint?")
    try:
        model = CenterNet(**model_options(hparams))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its model options cannot build a network ({error})") from error
    weights = model_weights(checkpoint, str(path))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    num_classes = int(hparams["num_classes"])
    names = hparams.get("class_names") or [str(i) for i in range(num_classes)]
    ids = hparams.get("category_ids") or list(range(num_classes))
    return LoadedModel(model.eval(), list(names), [int(i) for i in ids], int(hparams.get("image_size", 512)), hparams)
