"""Inference: load a trained model and predict on images, returning results in original-image pixels.

Two preprocessing modes, both a :class:`~centernet.boxes.Letterbox`:

- resize (default): as the evaluation transform of training does, the longer side to the input size keeping the
  aspect ratio, black padding at the bottom/right to a square;
- keep resolution (``keep_resolution=True``, how the CenterNet paper evaluates): each image at its own size,
  padded bottom/right to a multiple of 32.

Results are mapped back with the letterbox's exact per-axis scale, so the resize and the padding are undone
exactly. The network runs on any :mod:`centernet.inference.backends` backend: the eager model (from a checkpoint),
or an exported TorchScript / ONNX file with decoding inside. What the results are (boxes for detection) and how
they are selected, mapped back and built is the model's task (:mod:`centernet.tasks`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from centernet.boxes import STRIDE_MULTIPLE, Letterbox
from centernet.inference.backends import Backend, EagerBackend, OnnxRuntimeBackend, TorchScriptBackend
from centernet.inference.export import read_metadata
from centernet.inference.inputs import as_rgb, expand_inputs
from centernet.inference.onnx_cache import cached_onnx_export
from centernet.inference.raster import open_source
from centernet.inference.tiling import TileMerge, detect_tiled
from centernet.model import CenterNet
from centernet.model.checkpoint import load_model
from centernet.tasks import Task, build_task
from centernet.tasks.detection.results import Prediction

__all__ = ["Detector", "Prediction"]

_EXPORTED_SUFFIXES = {".onnx": "onnxruntime", ".pt": "torchscript", ".torchscript": "torchscript", ".ts": "torchscript"}


class Detector:
    """A trained CenterNet ready for inference.

    Args:
        model: The network, or a ready :class:`~centernet.inference.backends.Backend` (an exported file).
        class_names: Names indexed by contiguous label.
        category_ids: Dataset category id of each contiguous label.
        image_size: Side of the square network input in resize mode (a multiple of 32).
        device: Where the network runs.
        half: float16 inference (CUDA only; a clear error elsewhere).
        channels_last: Run the eager model in channels-last memory format; ``None``: on the CPU, where it is
            faster (see ``benchmarks/compare.py``).
        task: The task of an exported backend's outputs (a :class:`CenterNet` brings its own).
        max_detections: Results per image by default: the model's own K (as trained) unless given.
    """

    def __init__(
        self,
        model: CenterNet | Backend,
        class_names: Sequence[str],
        category_ids: Sequence[int],
        image_size: int,
        device: str | torch.device = "cpu",
        half: bool = False,
        channels_last: bool | None = None,
        task: Task | None = None,
        max_detections: int | None = None,
    ) -> None:
        if image_size % STRIDE_MULTIPLE:
            raise ValueError(f"image_size must be a multiple of {STRIDE_MULTIPLE}, got {image_size}")
        if len(class_names) != len(category_ids):
            raise ValueError(f"{len(class_names)} class names but {len(category_ids)} category ids")
        if isinstance(model, Backend):
            self.backend = model
            self.task = task or build_task("detection")
            self.max_detections = max_detections or model.max_detections or 100
        else:
            self.backend = EagerBackend(model, device, half, channels_last)
            self.task = model.task
            self.max_detections = max_detections or model.max_detections
        self.device = torch.device(device)
        self.class_names = list(class_names)
        self.category_ids = list(category_ids)
        self.image_size = image_size

    @property
    def model(self) -> CenterNet:
        """The eager network as it runs (BatchNorm folded into a copy of the model given; eager backends only)."""
        if not isinstance(self.backend, EagerBackend):
            raise AttributeError(f"a {self.backend.name} detector has no eager model")
        return self.backend.model

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        image_size: int | None = None,
        half: bool = False,
        channels_last: bool | None = None,
        backend: str = "eager",
        max_detections: int | None = None,
    ) -> Detector:
        """Load a checkpoint written by ``centernet fit``; ``image_size`` defaults to the training size.

        ``backend="eager"`` runs the PyTorch model (``half`` and ``channels_last`` apply to it);
        ``"onnxruntime"`` exports the checkpoint to ONNX once (cached, see :mod:`centernet.inference.onnx_cache`)
        and runs it on ONNX Runtime, the fastest CPU path. ``max_detections`` defaults to the checkpoint's.
        """
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        if backend == "onnxruntime":
            if half:
                raise ValueError("half precision applies to the eager backend only")
            exported = cached_onnx_export(path, image_size, max_detections)
            return cls.from_exported(exported, device, image_size, max_detections)
        if backend != "eager":
            raise ValueError(f"backend must be 'eager' or 'onnxruntime' for a checkpoint, got {backend!r}")
        loaded = load_model(path)
        size = image_size or loaded.image_size
        return cls(
            loaded.model,
            loaded.class_names,
            loaded.category_ids,
            size,
            device,
            half,
            channels_last,
            max_detections=max_detections,
        )

    @classmethod
    def from_exported(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        image_size: int | None = None,
        max_detections: int | None = None,
    ) -> Detector:
        """Load a file written by ``centernet export``: ``.onnx`` runs on ONNX Runtime, ``.torchscript``/``.pt``
        on TorchScript. ``image_size`` defaults to the export size (and must equal it for a fixed-size graph);
        ``max_detections`` can only lower the K the graph was exported with."""
        path = Path(path)
        backend_name = _EXPORTED_SUFFIXES.get(path.suffix.lower())
        if backend_name is None:
            raise ValueError(f"{path}: unknown exported format; expected one of {sorted(_EXPORTED_SUFFIXES)}")
        meta = read_metadata(path)
        size = image_size or meta["image_size"]
        if not meta["dynamic"] and size != meta["image_size"]:
            raise ValueError(
                f"{path} was exported for {meta['image_size']} px inputs only; re-export with --dynamic to use {size}"
            )
        exported_k = meta.get("max_detections", 100)
        if max_detections is not None and max_detections > exported_k:
            raise ValueError(
                f"{path} returns at most {exported_k} detections per image; export it with --max-det "
                f"{max_detections} for more"
            )
        if backend_name == "onnxruntime":
            backend: Backend = OnnxRuntimeBackend(path, device, meta["dynamic"], meta["image_size"], meta["batch_size"])
        else:
            outputs = meta.get("outputs")
            names = outputs if isinstance(outputs, list) else ("boxes", "scores", "labels")  # files before v0.2
            backend = TorchScriptBackend(path, device, meta["image_size"], names)
            backend.dynamic = meta["dynamic"]
        backend.max_detections = exported_k
        task = build_task(meta.get("task", "detection"), options=meta.get("task_options"), data=meta.get("task_data"))
        return cls(
            backend, meta["class_names"], meta["category_ids"], size, device, task=task, max_detections=max_detections
        )

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", **kwargs: Any) -> Detector:
        """A ``.ckpt`` checkpoint or an exported ``.onnx`` / ``.torchscript`` / ``.pt`` file, by suffix."""
        if Path(path).suffix.lower() == ".ckpt":
            return cls.from_checkpoint(path, device, **kwargs)
        return cls.from_exported(path, device, **kwargs)

    def predict(
        self,
        images: Any,
        score_threshold: float = 0.3,
        batch_size: int = 8,
        keep_resolution: bool = False,
        flip: bool = False,
        scales: Sequence[float] | None = None,
        nms_iou: float | None = None,
        max_detections: int | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        tile_merge: TileMerge = "core",
        progress: bool = False,
    ) -> list[Prediction]:
        """Detect objects in one or many images, batched (or, with ``tile``, each image sliced into batched tiles).

        Args:
            images: A path, a folder, a glob pattern, an (H, W, 3) RGB uint8 array (or an (N, H, W, 3) stack),
                a PIL image, a (3, H, W) / (N, 3, H, W) float tensor in [0, 1], or a list of these.
            score_threshold: Keep detections scoring above this.
            batch_size: Images per forward pass (images of one pass share their padded size).
            keep_resolution: Each image at its own size padded to a multiple of 32, instead of resized.
            flip: Horizontal-flip test-time augmentation (eager backend only).
            scales: Multi-scale test-time augmentation: input-size factors, e.g. ``(0.75, 1.0, 1.25)``; the
                detections of all scales are merged with class-aware NMS (IoU ``nms_iou``, 0.5 by default).
            nms_iou: Class-aware NMS after top-K at this IoU (for duplicate peaks); ``None``: no NMS (one scale).
            max_detections: At most this many detections per image (after merging scales or tiles); ``None``: the
                model's own K, as it was trained (``model.max_detections``). With ``tile``, also each tile's K.
            tile: Sliced inference (:mod:`centernet.inference.tiling`): the image at its own resolution, cut into
                tiles of at most this side (a multiple of 32), ``batch_size`` tiles per forward pass, each keeping
                the detections centred in its core, so that the tiles merge without NMS. TIFF files are read window
                by window when rasterio is installed; ``keep_resolution`` is then implied. ``None``: one pass per
                image.
            overlap: Least overlap of neighbouring tiles in pixels (rounded up to a multiple of 32); ``None``: an
                eighth of ``tile``.
            tile_merge: ``"core"`` (no NMS) or ``"nms"``: keep every tile's detections and merge them by
                class-aware NMS at ``nms_iou`` (0.5 by default), as box detectors' slicing does.
            progress: Show a progress bar counting the tiles of large images.

        Returns:
            One ``Prediction`` per image, in input order, boxes in that image's original pixels.
        """
        if isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        limit = self.max_detections if max_detections is None else max_detections
        if limit < 1:
            raise ValueError(f"max_detections must be >= 1, got {limit}")
        self._check_options(keep_resolution, flip, scales, limit)
        items = expand_inputs(images)
        if tile is not None:
            return self._predict_tiled(items, score_threshold, batch_size, flip, scales, nms_iou, limit, tile, overlap,
                                       tile_merge, progress)  # fmt: skip
        factors = [1.0] if not scales else [float(s) for s in scales]
        iou = nms_iou if nms_iou is not None else (0.5 if len(factors) > 1 else None)
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            chunk = [as_rgb(item) for item in items[start : start + batch_size]]
            per_scale = [self._detect(chunk, factor, keep_resolution, flip, limit) for factor in factors]
            for i, image in enumerate(chunk):
                merged = {key: torch.cat([dets[i][key] for dets in per_scale]) for key in per_scale[0][i]}
                selected = self.task.select(merged, score_threshold, limit, iou)
                results.append(self.task.result(selected, self.class_names, self.category_ids, image.shape[:2]))
        return results

    def _predict_tiled(
        self,
        items: list[Any],
        score_threshold: float,
        batch_size: int,
        flip: bool,
        scales: Sequence[float] | None,
        nms_iou: float | None,
        limit: int,
        tile: int,
        overlap: int | None,
        merge: TileMerge,
        progress: bool,
    ) -> list[Prediction]:
        if scales is not None and [float(s) for s in scales] != [1.0]:
            raise ValueError("sliced inference (tile) runs at the image's own resolution; it cannot take scales")
        if merge not in ("core", "nms"):
            raise ValueError(f"tile_merge must be 'core' or 'nms', got {merge!r}")
        iou = nms_iou if nms_iou is not None else (0.5 if merge == "nms" else None)
        results: list[Prediction] = []
        for item in items:
            source = open_source(item)
            try:
                merged = detect_tiled(
                    lambda batch: self._run_tiles(batch, flip, limit), self.task, source, tile, overlap, merge,
                    batch_size, progress,
                )  # fmt: skip
            finally:
                source.close()
            selected = self.task.select(merged, score_threshold, limit, iou)
            results.append(self.task.result(selected, self.class_names, self.category_ids, source.size))
        return results

    def _run_tiles(self, batch: torch.Tensor, flip: bool, limit: int) -> dict[str, torch.Tensor]:
        """A batch of tiles through the network; a graph exported for one input size gets them padded to it."""
        side = self.backend.image_size
        if not self.backend.dynamic and side is not None and tuple(batch.shape[-2:]) != (side, side):
            height, width = batch.shape[-2:]
            if height > side or width > side:
                raise ValueError(
                    f"this {self.backend.name} file was exported for {side} px inputs only; use --tile {side} or "
                    "smaller, or export with --dynamic"
                )
            batch = torch.nn.functional.pad(batch, (0, side - width, 0, side - height))
        return self._run(batch, flip, limit)

    def _check_options(self, keep_resolution: bool, flip: bool, scales: Sequence[float] | None, limit: int) -> None:
        if flip and not isinstance(self.backend, EagerBackend):
            raise ValueError(
                f"flip test-time augmentation needs the raw maps of the eager backend; the {self.backend.name} "
                "graph decodes inside. Use the checkpoint (.ckpt) for --flip."
            )
        if scales is not None and any(s <= 0 for s in scales):
            raise ValueError(f"scales must be positive, got {list(scales)}")
        if not self.backend.dynamic and (keep_resolution or (scales and list(scales) != [1.0])):
            raise ValueError(
                f"this {self.backend.name} file was exported for {self.image_size} px inputs only; keep-resolution "
                "and multi-scale need an export with --dynamic"
            )
        exported_k = self.backend.max_detections
        if not isinstance(self.backend, EagerBackend) and exported_k is not None and limit > exported_k:
            raise ValueError(
                f"this {self.backend.name} file returns at most {exported_k} detections per image; export it with "
                f"--max-det {limit} for more"
            )

    def _detect(
        self, images: list[np.ndarray], factor: float, keep_resolution: bool, flip: bool, limit: int
    ) -> list[dict[str, torch.Tensor]]:
        """All peaks (score > 0) of each image at one scale, in original pixels (CPU tensors)."""
        boxes = [self._letterbox(image.shape[:2], factor, keep_resolution) for image in images]
        canvases = [box.apply(image) for box, image in zip(boxes, images, strict=True)]
        # Images sharing a padded size run in one forward pass; the result of an image never depends on the
        # others in its batch.
        groups: dict[tuple[int, int, np.dtype], list[int]] = defaultdict(list)
        for index, canvas in enumerate(canvases):
            groups[(*canvas.shape[:2], canvas.dtype)].append(index)
        out: list[dict[str, torch.Tensor]] = [{} for _ in images]
        for indices in groups.values():
            batch = torch.from_numpy(np.stack([canvases[i] for i in indices]))  # (n, S_h, S_w, 3)
            # (n, 3, S_h, S_w) uint8 (or float32 in [0, 1]), a channels-last view: uint8 crosses to a GPU in a
            # quarter of the bytes and becomes float there.
            detections = self._run(batch.permute(0, 3, 1, 2), flip, limit)
            for row, i in enumerate(indices):
                one = {key: value[row] for key, value in detections.items()}
                keep = one["scores"] > 0  # drops the zero-score padding of images with fewer than K peaks
                out[i] = self.task.to_original({key: value[keep] for key, value in one.items()}, boxes[i])
        return out

    def _run(self, batch: torch.Tensor, flip: bool, limit: int) -> dict[str, torch.Tensor]:
        if isinstance(self.backend, EagerBackend):
            if not flip:
                return self.backend(batch, limit)
            maps = self.backend.maps(torch.cat([batch, batch.flip(-1)]))  # (2n, ...) images then their mirrors
            return self.backend.decode(self.task.merge_flipped(maps, batch.shape[0]), limit)
        return self.backend(batch)

    def _letterbox(self, image_size: tuple[int, int], factor: float, keep_resolution: bool) -> Letterbox:
        if keep_resolution:
            return Letterbox.keep_resolution(image_size, factor)
        side = max(STRIDE_MULTIPLE, round(self.image_size * factor / STRIDE_MULTIPLE) * STRIDE_MULTIPLE)
        return Letterbox.fit(image_size, side)
