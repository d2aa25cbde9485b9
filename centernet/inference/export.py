"""Export a trained CenterNet to ONNX or TorchScript with decoding inside the graph.

The exported graph takes a float RGB batch in [0, 1] (N, 3, H, W), H and W multiples of 32, normalises it,
runs the network and decodes it (3x3 max-pool peaks + top-K over classes x cells) with the model's own
:meth:`CenterNet.decode`, so any head or backbone that the eager model supports exports the same way. It outputs
the task's decoded results (:attr:`Task.output_names <centernet.tasks.base.Task.output_names>`): for detection
``boxes`` (N, K, 4) float32 xyxy in input pixels, ``scores`` (N, K) float32 and ``labels`` (N, K) int64, for pose
also ``keypoints`` (N, K, J, 3) float32 (x, y input pixels, score); entries with score 0 are the padding of images
with fewer than K peaks. Letterboxing and the mapping back to original
pixels stay outside the graph (see :class:`centernet.inference.detector.Detector`).

The class names, category ids, input size and whether the input size is dynamic travel inside the file (ONNX
``metadata_props``; a ``centernet.json`` extra file in TorchScript), so ``Detector.load`` needs nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["METADATA_KEY", "DecodingWrapper", "export_onnx", "export_torchscript", "read_metadata"]

METADATA_KEY = "centernet"
_TORCHSCRIPT_EXTRA = "centernet.json"


class DecodingWrapper(nn.Module):
    """``images -> (boxes, scores, labels)``: the network followed by its decoding, as one module.

    Args:
        model: A :class:`~centernet.model.CenterNet` (its task names the decoded outputs, in order).
        max_detections: K; defaults to the model's own.
    """

    def __init__(self, model: nn.Module, max_detections: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.max_detections = max_detections
        self.output_names = tuple(model.task.output_names)

    def forward(self, images: Tensor, *extras: Tensor) -> tuple[Tensor, ...]:
        """Detect on a batch.

        Args:
            images: (N, 3, H, W) float RGB in [0, 1]; H and W multiples of 32.
            extras: The task's extra inputs in ``Task.extra_inputs`` order (tracking: the previous images in
                [0, 1] and the prior heatmaps, (N, 3 | 1, H, W)); none for detection.

        Returns:
            The task's outputs in ``output_names`` order; for detection ``boxes`` (N, K, 4) float32 xyxy in input
            pixels, ``scores`` (N, K) float32 in [0, 1] (descending), ``labels`` (N, K) int64 contiguous classes.
        """
        names = tuple(self.model.task.extra_inputs)
        maps = self.model(images, dict(zip(names, extras, strict=True))) if names else self.model(images)
        detections = self.model.decode(maps, max_detections=self.max_detections)
        return tuple(
            value if value.dtype == torch.int64 else value.float()
            for value in (detections[name] for name in self.output_names)
        )


def _metadata(
    wrapper: DecodingWrapper,
    class_names: Sequence[str],
    category_ids: Sequence[int],
    image_size: int,
    dynamic: bool,
    batch_size: int,
) -> dict[str, Any]:
    return {
        "class_names": list(class_names),
        "category_ids": [int(i) for i in category_ids],
        "image_size": int(image_size),
        "dynamic": bool(dynamic),
        "batch_size": int(batch_size),
        "task": wrapper.model.task.name,
        # What rebuilds the task outside the graph (pose: its options and the joints): plain data.
        "task_options": _plain(getattr(wrapper.model.task, "options", None)),
        "task_data": _plain(getattr(wrapper.model.task, "skeleton", None)),
        "max_detections": int(wrapper.max_detections or wrapper.model.max_detections),
        "outputs": list(wrapper.output_names),
    }


def _plain(value: Any) -> Any:
    """A task's option dataclass or metadata as a JSON-ready dict (``to_dict`` when it has one); None stays."""
    if value is None:
        return None
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return dataclasses.asdict(value)


def _example(
    model: nn.Module, image_size: int, batch_size: int, max_detections: int | None
) -> tuple[DecodingWrapper, Tensor]:
    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_detections is not None and max_detections < 1:
        raise ValueError(f"max_detections must be >= 1, got {max_detections}")
    wrapper = DecodingWrapper(model, max_detections).float().eval()
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    # Random content, not zeros: a constant image gives a plateau of equal heatmap values, and tracing then sees
    # an unrepresentative top-K.
    example = torch.rand(batch_size, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    return wrapper, example.to(device)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    class_names: Sequence[str],
    category_ids: Sequence[int],
    image_size: int,
    batch_size: int = 1,
    dynamic: bool = False,
    opset: int = 19,
    max_detections: int | None = None,
) -> Path:
    """Write an ONNX file whose graph includes decoding.

    Args:
        model: The trained network (left unchanged; exported in eval mode).
        path: Output file (``.onnx``).
        class_names: Names indexed by contiguous label (stored in the file).
        category_ids: Dataset category id of each contiguous label (stored in the file).
        image_size: Side of the square example input; the fixed input size unless ``dynamic``.
        batch_size: Batch size of the example input; the fixed batch size unless ``dynamic``.
        dynamic: Make the batch size, height and width dynamic (H and W must stay multiples of 32). K, the
            number of detections per image, is computed in the graph as ``min(max_detections, C * H/4 * W/4)``.
        opset: ONNX opset version; 19 (the default) is the first with the DeformConv operator of DCN models.
        max_detections: K upper bound of the graph; ``None``: the model's own (``model.max_detections``).

    Returns:
        The path written.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper, example = _example(model, image_size, batch_size, max_detections)
    # A task's extra inputs (tracking: previous images and prior heatmaps) become more graph inputs, named in the
    # plural like "images".
    extra_names = [f"{name}s" for name in model.task.extra_inputs]
    generator = torch.Generator().manual_seed(1)
    extras = tuple(
        torch.rand(batch_size, channels, image_size, image_size, generator=generator).to(example.device)
        for channels in model.task.extra_inputs.values()
    )
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {name: {0: "batch", 2: "height", 3: "width"} for name in ["images", *extra_names]}
        dynamic_axes.update({name: {0: "batch", 1: "detections"} for name in wrapper.output_names})
    was_training = model.training
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing warns about Python values derived from shapes (the multiple-of-32 check, K); both are checked
        # or documented above.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example, *extras),
            str(path),
            input_names=["images", *extra_names],
            output_names=list(wrapper.output_names),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,  # the TorchScript-based exporter: no onnxscript dependency, dynamic axes by name
        )
    model.train(was_training)
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(_metadata(wrapper, class_names, category_ids, image_size, dynamic, batch_size))
    onnx.save(proto, str(path))
    return path


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    class_names: Sequence[str],
    category_ids: Sequence[int],
    image_size: int,
    batch_size: int = 1,
    dynamic: bool = True,
    max_detections: int | None = None,
) -> Path:
    """Write a traced TorchScript module whose graph includes decoding (load it with ``torch.jit.load``).

    Tracing records the shape arithmetic, so the batch size and the input size stay free (multiples of 32);
    ``dynamic`` is recorded in the metadata only, as the traced graph accepts other sizes either way.

    Args:
        model: The trained network (left unchanged).
        path: Output file (``.torchscript`` or ``.pt``).
        class_names: Names indexed by contiguous label (stored in the file).
        category_ids: Dataset category id of each contiguous label (stored in the file).
        image_size: Side of the square example input.
        batch_size: Batch size of the example input.
        dynamic: Whether predict may feed other input sizes (recorded in the metadata).
        max_detections: K upper bound of the graph; ``None``: the model's own.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if model.task.extra_inputs:
        raise ValueError(
            f"TorchScript export takes the image alone; the {model.task.name} task's extra inputs "
            f"({', '.join(model.task.extra_inputs)}) need the ONNX export"
        )
    wrapper, example = _example(model, image_size, batch_size, max_detections)
    was_training = model.training
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, (example,), check_trace=False)
        metadata = _metadata(wrapper, class_names, category_ids, image_size, dynamic, batch_size)
        extra = {_TORCHSCRIPT_EXTRA: json.dumps(metadata)}
        torch.jit.save(traced, str(path), _extra_files=extra)  # warns that torch.export is the future
    model.train(was_training)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata that :func:`export_onnx` / :func:`export_torchscript` stored in ``path``.

    Raises:
        ValueError: naming the file when it holds no centernet metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such exported model")
    if path.suffix.lower() == ".onnx":
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        values = {p.key: p.value for p in proto.metadata_props}
        if METADATA_KEY not in values:
            raise ValueError(f"{path}: ONNX file without centernet metadata; export it with `centernet export`")
        return json.loads(values[METADATA_KEY])
    extra = {_TORCHSCRIPT_EXTRA: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    if not extra[_TORCHSCRIPT_EXTRA]:
        raise ValueError(f"{path}: TorchScript file without centernet metadata; export it with `centernet export`")
    return json.loads(extra[_TORCHSCRIPT_EXTRA])
