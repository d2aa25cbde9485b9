"""Inference-time folding of BatchNorm layers into the convolutions that feed them.

In eval mode a BatchNorm is a per-channel affine map, ``y = (x - mean) / sqrt(var + eps) * gamma + beta``, so
when its input is a convolution's output it can be merged into that convolution's weight and bias. The network
then skips one full pass over every normalised feature map (2-9% of CenterNet-ResNet18's latency on a 2-core
CPU at 512x512, ``benchmarks/latency.py``). ONNX Runtime and ``torch.jit.freeze`` do the same on their graphs;
this does it for the eager model.

Pairs are found by running the model once on an example and recording which BatchNorm received exactly the
output tensor of which convolution, so any architecture (ResNet, DLA, timm backbones, our necks) is covered
without naming its layers. Folding assumes that output feeds nothing else; the folded copy is checked against
the original on the same example, and the original is kept if they disagree.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.ops.misc import FrozenBatchNorm2d

from centernet.model.dcn import ModulatedDeformConv2d

__all__ = ["fold_batchnorm"]

_CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d, ModulatedDeformConv2d)


def fold_batchnorm(model: nn.Module, example: Tensor, atol: float = 1e-3) -> tuple[nn.Module, int]:
    """A copy of ``model`` (in eval mode) with every BatchNorm that directly follows a convolution folded into it.

    Args:
        model: The network; left unchanged.
        example: An input batch such as the model will see, (N, 3, H, W); used to find the pairs and to check.
        atol: Largest difference allowed between the outputs of the copy and of ``model``, relative to the
            largest output magnitude when that exceeds 1.

    Returns:
        ``(folded copy, number of BatchNorm layers folded)``, or ``(model, 0)`` when nothing can be folded or
        the check fails (with a warning, as the model then still works, only slower).
    """
    model = model.eval()
    with torch.inference_mode():
        pairs = _conv_bn_pairs(model, example)
        if not pairs:
            return model, 0
        reference = model(example)
    folded = copy.deepcopy(model)
    modules = dict(folded.named_modules())
    for conv_name, norm_name in pairs:
        _set_submodule(folded, conv_name, _fused(modules[conv_name], modules[norm_name]))
        _set_submodule(folded, norm_name, _after_norm(modules[norm_name]))
    with torch.inference_mode():
        difference = _largest_difference(folded(example), reference)
    if not difference <= atol * max(1.0, _largest_magnitude(reference)):
        warnings.warn(
            f"folding BatchNorm into convolutions changed the outputs by {difference:.2g}; running the model unfolded",
            stacklevel=2,
        )
        return model, 0
    return folded, len(pairs)


def _conv_bn_pairs(model: nn.Module, example: Tensor) -> list[tuple[str, str]]:
    """(convolution name, BatchNorm name) for every BatchNorm whose input is a convolution's output tensor."""
    produced_by: dict[int, tuple[str, Tensor]] = {}  # id(output) -> (conv name, output kept alive so ids stay unique)

    def record_output(name: str):
        return lambda module, inputs, output: produced_by.__setitem__(id(output), (name, output))

    def record_input(name: str):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            for value in inputs:
                source = produced_by.get(id(value))
                if source is not None and source[1] is value:
                    consumers.setdefault(source[0], []).append(name)

        return hook

    consumers: dict[str, list[str]] = {}  # conv name -> modules that took its output as an input
    handles = []
    for name, module in model.named_modules():
        if type(module) in _CONVOLUTIONS:
            handles.append(module.register_forward_hook(record_output(name)))
        if not list(module.children()) or _foldable_norm(module):
            handles.append(module.register_forward_pre_hook(record_input(name)))
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    pairs = [(conv, users[0]) for conv, users in consumers.items() if len(users) == 1 and _is_norm(model, users[0])]
    # A module called twice in one forward pass (shared weights) cannot be folded for one of its calls only.
    norms = [norm for _, norm in pairs]
    return [(conv, norm) for conv, norm in pairs if norms.count(norm) == 1]


def _is_norm(model: nn.Module, name: str) -> bool:
    return _foldable_norm(model.get_submodule(name))


def _foldable_norm(module: nn.Module) -> bool:
    """Plain BatchNorm2d, torchvision's FrozenBatchNorm2d, or a BatchNorm2d subclass with a following act/drop."""
    if type(module) in (nn.BatchNorm2d, FrozenBatchNorm2d):
        return True
    # timm's BatchNormAct2d: BatchNorm, then ``drop`` and ``act`` modules, which stay after folding.
    return isinstance(module, nn.BatchNorm2d) and isinstance(getattr(module, "act", None), nn.Module)


def _fused(conv: nn.Module, norm: nn.Module) -> nn.Module:
    if isinstance(norm, FrozenBatchNorm2d):  # the same affine map, stored as buffers
        plain = nn.BatchNorm2d(norm.weight.numel(), eps=norm.eps).eval()
        plain.weight.data.copy_(norm.weight)
        plain.bias.data.copy_(norm.bias)
        plain.running_mean.copy_(norm.running_mean)
        plain.running_var.copy_(norm.running_var)
        norm = plain
    if not norm.track_running_stats:
        raise ValueError("BatchNorm without running statistics cannot be folded")
    if isinstance(conv, ModulatedDeformConv2d):
        # Linear in its weight per output channel like a convolution (the mask scales the sampled inputs).
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # (C_out,)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
        fused = copy.deepcopy(conv)
        fused.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
        fused.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias, requires_grad=False)
        return fused
    return fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))


def _after_norm(norm: nn.Module) -> nn.Module:
    """What replaces a folded norm: nothing, or timm's dropout and activation that followed it."""
    act = getattr(norm, "act", None)
    if isinstance(norm, nn.BatchNorm2d) and isinstance(act, nn.Module):
        return nn.Sequential(getattr(norm, "drop", nn.Identity()), act)
    return nn.Identity()


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attribute = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attribute, module)


def _largest_difference(first: object, second: object) -> float:
    """Largest absolute difference between two outputs (tensors, or dicts / sequences of tensors)."""
    if isinstance(first, Tensor):
        return float((first.float() - second.float()).abs().max()) if first.numel() else 0.0
    if isinstance(first, dict):
        return max((_largest_difference(first[key], second[key]) for key in first), default=0.0)
    return max((_largest_difference(a, b) for a, b in zip(first, second, strict=True)), default=0.0)


def _largest_magnitude(output: object) -> float:
    if isinstance(output, Tensor):
        return float(output.float().abs().max()) if output.numel() else 0.0
    values = output.values() if isinstance(output, dict) else output
    return max((_largest_magnitude(value) for value in values), default=0.0)
