"""Inference backends: the same call, ``images -> detections``, on eager PyTorch, TorchScript or ONNX Runtime.

Every backend takes an (N, 3, H, W) RGB tensor, uint8 in [0, 255] or float32 in [0, 1], with H and W multiples
of 32 (uint8 is converted where the network runs: ``x / 255`` in float32), and returns the
decoded top-K detections ``boxes`` (N, K, 4) xyxy in input pixels, ``scores`` (N, K) and ``labels`` (N, K) as
CPU tensors. Only the eager backend also exposes the raw maps (:meth:`EagerBackend.maps`), which flip
test-time augmentation needs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from centernet.inference.fusion import fold_batchnorm as fold_batchnorm_into_convs
from centernet.model import CenterNet

__all__ = ["Backend", "EagerBackend", "OnnxRuntimeBackend", "TorchScriptBackend", "as_float_images"]

DETECTION_OUTPUTS = ("boxes", "scores", "labels")


def as_float_images(images: Tensor) -> Tensor:
    """float32 images in [0, 1]: uint8 divided by 255, floats as they are; the layout is kept."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()


class Backend:
    """Base class: ``dynamic`` says whether inputs of another size than the export size are accepted;
    ``max_detections`` is the K of an exported graph (``None`` for the eager model, which decodes any K)."""

    name: str = "base"
    dynamic: bool = True
    image_size: int | None = None
    max_detections: int | None = None

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError


class EagerBackend(Backend):
    """The PyTorch model itself.

    Args:
        model: The network (put in eval mode).
        device: Where it runs.
        half: Run in float16 (CUDA only).
        channels_last: Run in channels-last memory format; ``None``: on the CPU, where its convolutions are faster.
        fold_batchnorm: Run a copy of the model with BatchNorm folded into the preceding convolutions (same
            outputs, 2-9% faster on a 2-core CPU); ``model`` itself is left as it is.
    """

    name = "eager"

    def __init__(
        self,
        model: CenterNet,
        device: str | torch.device = "cpu",
        half: bool = False,
        channels_last: bool | None = None,
        fold_batchnorm: bool = True,
    ) -> None:
        self.device = torch.device(device)
        if half and self.device.type != "cuda":
            raise ValueError(f"half precision needs a CUDA device, got device={str(self.device)!r}")
        self.model = model.eval().to(self.device)
        # A task's extra inputs join before the first BatchNorm (model/extra_inputs.py): folding would drop them.
        if fold_batchnorm and getattr(model, "extra_inputs", None) is None:
            self.model, _ = fold_batchnorm_into_convs(self.model, torch.rand(1, 3, 64, 64, device=self.device))
        self.half = half
        self.channels_last = self.device.type == "cpu" if channels_last is None else channels_last
        if half:
            self.model.half()
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _input(self, images: Tensor) -> Tensor:
        images = as_float_images(images.to(self.device)).to(torch.float16 if self.half else torch.float32)
        return images.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    @torch.inference_mode()
    def maps(self, images: Tensor) -> dict[str, Tensor]:
        """The raw output maps of ``CenterNet.forward`` for ``images``."""
        return self.model(self._input(images))

    @torch.inference_mode()
    def decode(self, maps: dict[str, Tensor], max_detections: int | None = None) -> dict[str, Tensor]:
        """Decode raw maps (see ``CenterNet.decode``; K = ``max_detections``, default the model's) into CPU float32
        detections."""
        detections = self.model.decode(maps, max_detections)
        if self.device.type == "cpu":
            return {key: value if value.dtype == torch.int64 else value.float() for key, value in detections.items()}
        # One device-to-host copy instead of one per output (each waits for the GPU): every output is packed as
        # float32 into one (N, K, total) tensor; integer outputs (labels < 2^24) are exact in float32.
        num_images, k = next(iter(detections.values())).shape[:2]
        flat = [value.float().reshape(num_images, k, -1) for value in detections.values()]
        packed = torch.cat(flat, dim=-1).cpu()  # (N, K, total)
        out, start = {}, 0
        for (key, value), part in zip(detections.items(), flat, strict=True):
            width = part.shape[-1]
            piece = packed[..., start : start + width].reshape(value.shape)
            out[key] = piece.long() if value.dtype == torch.int64 else piece
            start += width
        return out

    def __call__(self, images: Tensor, max_detections: int | None = None) -> dict[str, Tensor]:
        return self.decode(self.maps(images), max_detections)


class TorchScriptBackend(Backend):
    """A module written by ``centernet export --format torchscript`` (decoding inside).

    Args:
        path: The ``.torchscript`` / ``.pt`` file.
        device: Where it runs.
        image_size: The export size (from the file's metadata).
    """

    name = "torchscript"

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device = "cpu",
        image_size: int | None = None,
        output_names: Sequence[str] = DETECTION_OUTPUTS,
    ) -> None:
        self.device = torch.device(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in favour of torch.export
            self.module = torch.jit.load(str(path), map_location=self.device).eval()
        self.image_size = image_size
        self.output_names = tuple(output_names)

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        outputs = self.module(as_float_images(images.to(self.device)).contiguous())
        return {name: _on_cpu(value) for name, value in zip(self.output_names, outputs, strict=True)}


class OnnxRuntimeBackend(Backend):
    """An ONNX file written by ``centernet export --format onnx`` (decoding inside), run by ONNX Runtime.

    Args:
        path: The ``.onnx`` file.
        device: ``cpu`` or ``cuda[:i]`` (needs onnxruntime-gpu).
        dynamic: Whether the graph accepts other input sizes than ``image_size``.
        image_size: The export size.
        batch_size: The export batch size (the only one accepted when not ``dynamic``).
        threads: Intra-op threads; ``None`` uses all cores.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device = "cpu",
        dynamic: bool = True,
        image_size: int | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        ort.disable_telemetry_events()  # no usage data leaves the machine
        device = torch.device(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        # Idle ORT threads would otherwise spin after each run and take the cores from PyTorch's pre- and
        # post-processing (12 ms of a 146 ms image on 2 cores, benchmarks/compare.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(f"{path}: device {device} asked but this onnxruntime has no CUDA provider")
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = tuple(output.name for output in self.session.get_outputs())
        self.dynamic = dynamic
        self.image_size = image_size
        self.batch_size = batch_size

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        count = images.shape[0]
        if self.dynamic or self.batch_size in (None, count):
            return self._run(images)
        # A graph exported with a fixed batch size: run in chunks of that size, padding the last one.
        outputs = []
        for start in range(0, count, self.batch_size):
            chunk = images[start : start + self.batch_size]
            real = chunk.shape[0]
            if real < self.batch_size:
                chunk = torch.cat([chunk, chunk.new_zeros((self.batch_size - real, *chunk.shape[1:]))])
            outputs.append({key: value[:real] for key, value in self._run(chunk).items()})
        return {key: torch.cat([o[key] for o in outputs]) for key in outputs[0]}

    def _run(self, images: Tensor) -> dict[str, Tensor]:
        array = np.ascontiguousarray(as_float_images(images.detach().cpu()).numpy())
        values = self.session.run(None, {self.input_name: array})
        return {name: _on_cpu(torch.from_numpy(value)) for name, value in zip(self.output_names, values, strict=True)}


def _on_cpu(value: Tensor) -> Tensor:
    """A decoded output on the CPU: integers as int64, everything else as float32."""
    value = value.cpu()
    return value.long() if not value.is_floating_point() else value.float()
