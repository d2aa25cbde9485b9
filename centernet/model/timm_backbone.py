"""Any timm model as a backbone: ``timm.create_model(name, features_only=True)`` at strides 4, 8, 16, 32."""

from __future__ import annotations

from typing import Any

import timm
from torch import Tensor, nn

from centernet.errors import PretrainedWeightsError

__all__ = ["TimmBackbone", "create_timm_model"]

_STRIDES = (4, 8, 16, 32)


def create_timm_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with an actionable error when pretrained weights cannot be obtained.

    Args:
        name: timm model name, optionally with a pretrained tag (``"mobilenetv3_large_100.ra_in1k"``).
        pretrained: load timm's pretrained weights (downloaded from the Hugging Face Hub, or read from its cache).
        kwargs: passed to ``timm.create_model`` (e.g. ``features_only=True``).

    Raises:
        ValueError: for a name timm does not know.
        PretrainedWeightsError: when ``pretrained`` weights are neither downloadable nor cached.
    """
    if not timm.is_model(name.split(".")[0]):
        raise ValueError(f"unknown timm model {name!r}; list them with timm.list_models('pattern*')")
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as error:
        if not pretrained:
            raise
        from huggingface_hub.constants import HF_HUB_CACHE

        raise PretrainedWeightsError(
            f"Could not load the pretrained timm weights of {name!r} ({type(error).__name__}: {error}). timm reads "
            f"them from the Hugging Face Hub cache ({HF_HUB_CACHE}, set by HF_HOME / HF_HUB_CACHE): on a machine "
            f"with internet access run `python -c \"import timm; timm.create_model('{name}', pretrained=True)\"` and "
            "copy that cache folder here, or set `pretrained: false` to train from scratch (works offline)."
        ) from error


class TimmBackbone(nn.Module):
    """A timm feature extractor returning the maps at strides 4, 8, 16 and 32.

    Channels and strides are read from the model's ``feature_info``; of the maps at each of the four strides
    the deepest is used (e.g. MobileNetV3's stride-2 map is dropped).

    Args:
        name: timm model name (``timm.list_models()``), e.g. ``"mobilenetv3_large_100"`` or ``"resnet18d"``.
        pretrained: initialise from timm's pretrained weights (Hugging Face Hub, or its cache when offline).

    Attributes:
        channels: channels of each returned map, e.g. (24, 40, 112, 960) for mobilenetv3_large_100.
        strides: (4, 8, 16, 32).
        out_channels: channels of the last map.
        stride: 32.

    Raises:
        ValueError: if the model has no feature map at one of the strides 4, 8, 16, 32 (e.g. a ViT).
    """

    stride: int = 32
    strides: tuple[int, ...] = _STRIDES

    def __init__(self, name: str, pretrained: bool = False) -> None:
        super().__init__()
        probe = create_timm_model(name, pretrained=False, features_only=True)
        reductions = list(probe.feature_info.reduction())
        missing = [s for s in _STRIDES if s not in reductions]
        if missing:
            raise ValueError(
                f"timm model {name!r} has feature maps at strides {reductions}, but CenterNet needs maps at "
                f"strides {list(_STRIDES)} (missing {missing}); choose a convolutional model with a stride-32 pyramid"
            )
        # The last (deepest) map at each stride.
        out_indices = tuple(max(i for i, r in enumerate(reductions) if r == s) for s in _STRIDES)
        self.body = create_timm_model(name, pretrained=pretrained, features_only=True, out_indices=out_indices)
        self.channels = tuple(self.body.feature_info.channels())
        self.out_channels = self.channels[-1]
        self.name = name

    def stages(self) -> list[nn.Module]:
        """The feature extractor's top-level children from the input on (timm's module order)."""
        return list(self.body.children())

    def forward(self, image: Tensor) -> list[Tensor]:
        """Compute the feature pyramid.

        Args:
            image: (N, 3, H, W) normalised image, H and W multiples of 32.

        Returns:
            Four maps (N, channels[i], H / s, W / s) for s = 4, 8, 16, 32.
        """
        return list(self.body(image))
