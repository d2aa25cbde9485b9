"""The training pipeline from a config: a list of albumentations transforms by name, with their arguments.

In YAML (the ``data.augmentations`` key)::

    augmentations:
      - {name: RandomResizedCrop, size: [512, 512], scale: [0.3, 1.0]}
      - {name: HorizontalFlip, p: 0.5}
      - name: OneOf                      # containers take a list of transforms
        p: 0.3
        transforms:
          - {name: GaussianBlur}
          - {name: MotionBlur}

Each entry names a class of ``albumentations`` and gives its keyword arguments. The pipeline is built with
``strict=True``, so an unknown argument is an error, and an unknown name is an error that suggests the closest
names. After the listed transforms the pipeline always fits the image into the network input: longest side to
``image_size`` and black padding at the bottom/right (a no-op when a listed transform already produced
``image_size`` x ``image_size``). Boxes keep the ``min_visibility`` rule of the default pipeline.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from typing import Any

import albumentations as A

from centernet.data.transforms import DetectionTransform, _black_pad, _check_image_size, _compose_training

__all__ = ["build_augmentations", "build_transform_from_config"]

_CONTAINERS = ("Compose", "OneOf", "SomeOf", "OneOrOther", "Sequential", "SelectiveChannelTransform")


def build_transform_from_config(
    augmentations: Sequence[dict[str, Any]], image_size: int, min_visibility: float = 0.3
) -> DetectionTransform:
    """The training transform of a config's ``augmentations`` list (see the module docstring).

    Args:
        augmentations: One dict per transform: ``name`` (an albumentations class) and its keyword arguments.
        image_size: Side of the square output in pixels, a multiple of 32.
        min_visibility: A box keeping less than this fraction of its area after a crop is dropped, in [0, 1].

    Returns:
        A transform whose output image is always ``image_size`` x ``image_size``.
    """
    _check_image_size(image_size)
    steps = [
        *build_augmentations(augmentations),
        A.LongestMaxSize(max_size=image_size),
        _black_pad(image_size, "top_left"),
    ]
    return _compose_training(steps, min_visibility)


def build_augmentations(augmentations: Sequence[dict[str, Any]], where: str = "augmentations") -> list[Any]:
    """Instantiate albumentations transforms from ``{name: ..., **kwargs}`` dicts; errors name the entry."""
    if isinstance(augmentations, (str, bytes)) or not isinstance(augmentations, Sequence):
        raise ValueError(f"{where} must be a list of {{name: ..., ...}} entries, got {augmentations!r}")
    return [_build_one(spec, f"{where}[{i}]") for i, spec in enumerate(augmentations)]


def _build_one(spec: Any, where: str) -> Any:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{where}: expected a mapping with a 'name' (an albumentations transform), got {spec!r}")
    kwargs = {key: value for key, value in spec.items() if key != "name"}
    name = spec["name"]
    cls = getattr(A, name, None)
    if not isinstance(cls, type) or not issubclass(cls, (A.BasicTransform, A.BaseCompose)):
        close = difflib.get_close_matches(name, [n for n in dir(A) if not n.startswith("_")], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"{where}: {name!r} is not an albumentations transform{hint}")
    if issubclass(cls, A.BaseCompose) or name in _CONTAINERS:
        kwargs["transforms"] = build_augmentations(kwargs.get("transforms", []), f"{where}.transforms")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # strict=True below turns unknown arguments into errors
            transform = cls(**kwargs)
        if isinstance(transform, A.BasicTransform):
            # The arguments are validated when the Compose is built with strict=True; check each entry here so
            # the error names it.
            A.Compose([transform], strict=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} ({name}): {err}") from err
    return transform
