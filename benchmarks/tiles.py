"""Sliced inference: its cost against one whole-image pass, against SAHI-style slicing + NMS, and its peak memory.

Three measurements, each printed with the machine it ran on:

1. **Sliced vs whole** on images that fit in one pass (1024 and 2048 px scenes): ``Detector.predict(tile=512)`` at
   the default overlap (64 px) against ``predict(keep_resolution=True)``, paired and interleaved
   (``benchmarks/timing.py``), as the median ratio of the times with its interquartile range.
2. **Core merge vs SAHI** on the built-in scenes' validation split: our tiles (default overlap, each keeping its
   core, no NMS) against the slicing that SAHI's ``get_sliced_prediction`` does by default, done by our own tiler
   (overlap ratio 0.2 of the tile, every slice's detections kept, then class-aware NMS at IoU 0.5: "sahi-style"),
   and, when ``sahi`` is importable, SAHI's own ``get_sliced_prediction`` around the same network (its defaults: a
   whole-image pass too, GREEDYNMM merging; slices in batches of 8 like ours); times paired, and the AP50 of each
   over all detections (COCO, ``max_detections``).
3. **Peak memory** of ``predict(tile=512)`` on a ``--memory-side`` square GeoTIFF (20,000 px by default, written
   window by window, never held in memory), read by windows through rasterio, in a fresh process: its peak
   resident memory (``ru_maxrss``) before and after the prediction.

Usage (the checkpoint of ``centernet demo --task tiles`` gives meaningful AP; without one a fresh network of the
same architecture times the same work):

    CENTERNET_MAX_IMAGE_PIXELS=0 python benchmarks/tiles.py --checkpoint runs/tiles/.../best.ckpt
    python benchmarks/tiles.py --parts speed --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import machine_header, paired_times, ratio_stats  # benchmarks/timing.py (on sys.path)

from centernet.data.scenes import SCENE_CATEGORY_IDS, SCENE_CLASSES, ensure_scenes_dataset, generate_scene
from centernet.inference import Detector

# Detections below this score are dropped by every merge compared (AP needs the low-scoring tail).
_CONFIDENCE = 0.01


def _detector(checkpoint: str | None, backend: str) -> Detector:
    if checkpoint:
        return Detector.from_checkpoint(checkpoint, backend=backend)
    from centernet.cli.config import read_config
    from centernet.configs import config_path
    from centernet.model import CenterNet

    model = read_config([str(config_path("tiles"))])["model"]
    torch.manual_seed(0)
    network = CenterNet(len(SCENE_CLASSES), neck=model["neck"], max_detections=model["max_detections"])
    return Detector(network, SCENE_CLASSES, SCENE_CATEGORY_IDS, 256)


def speed(detector: Detector, repeats: int, tile: int, sides: list[int]) -> None:
    print(f"\n1. sliced (tile {tile}, default overlap, core merge) vs one whole-image pass (keep_resolution)")
    for side in sides:
        image = generate_scene(2048, 0, "val", 0).image[:side, :side].copy()
        calls = {
            "whole": lambda image=image: detector.predict(image, 0.3, keep_resolution=True),
            "sliced": lambda image=image: detector.predict(image, 0.3, tile=tile),
        }
        times = paired_times(calls, repeats, warmup=1)
        whole_ms = 1000 * float(np.median(times["whole"]))
        print(
            f"  {side} px: whole {whole_ms:.0f} ms, sliced/whole {ratio_stats(times['sliced'], times['whole'])}"
            f" ({repeats} paired repetitions)"
        )


def versus_sahi(detector: Detector, repeats: int, tile: int) -> None:
    from centernet.data.coco import parse_coco
    from centernet.data.imagefile import decode_rgb
    from centernet.data.records import Problems
    from centernet.data.validation import validate_source

    paths = ensure_scenes_dataset()
    source, _ = validate_source(parse_coco(paths.val_images, paths.val_annotations, Problems()), "error", Problems())
    records = sorted(source.records, key=lambda r: r.image_id)
    images = [decode_rgb(record.path) for record in records]
    sahi_overlap = round(0.2 * tile)  # SAHI's default overlap_height_ratio / overlap_width_ratio
    calls = {
        "core": lambda: detector.predict(images, _CONFIDENCE, tile=tile, batch_size=8),
        "sahi-style": lambda: detector.predict(
            images, _CONFIDENCE, tile=tile, overlap=sahi_overlap, tile_merge="nms", nms_iou=0.5, batch_size=8
        ),  # fmt: skip
    }
    sahi_model = _sahi_model(detector)
    if sahi_model is not None:
        calls["sahi"] = lambda: [_sahi_predict(sahi_model, image, tile) for image in images]
    print(f"\n2. core merge vs SAHI-style slicing + NMS on the scenes' val split ({len(images)} x 2048 px)")
    for name, call in calls.items():
        evaluator = detector.task.evaluator(detector.class_names, detector.category_ids, detector.max_detections)
        for record, prediction in zip(records, call(), strict=True):
            truth = {"boxes": record.boxes, "labels": record.labels, "iscrowd": record.iscrowd, "area": record.area}
            evaluator.update(record.image_id, (record.height, record.width), truth, prediction)
        metrics = evaluator.compute().metrics
        ap50 = metrics.get("map_50_all_dets", metrics["map_50"])
        print(f"  {name}: AP50 {ap50:.3f}, AP {metrics.get('map_all_dets', metrics['map']):.3f}")
    times = paired_times(calls, repeats, warmup=1)
    print(f"  time: core {np.median(times['core']):.1f} s per pass over the split ({repeats} paired repetitions)")
    for name in calls:
        if name != "core":
            print(f"  {name}/core: {ratio_stats(times[name], times['core'])}")


def _sahi_model(detector: Detector):  # noqa: ANN202 - a sahi DetectionModel, or None without sahi
    """SAHI's ``DetectionModel`` around the same detector (its whole-image pass: ``keep_resolution``), if SAHI is
    importable (``pip install sahi``, or ``PYTHONPATH`` to a folder holding it)."""
    try:
        from sahi.models.base import DetectionModel
        from sahi.prediction import ObjectPrediction
    except ImportError:
        print("  (sahi not importable: its own get_sliced_prediction is left out)")
        return None

    class CenterNetForSahi(DetectionModel):
        def load_model(self) -> None:
            self.set_model(detector)

        def set_model(self, model, **kwargs) -> None:  # noqa: ANN001, ANN003
            self.model = model
            self.category_mapping = {str(i): name for i, name in enumerate(model.class_names)}

        def perform_inference(self, image: np.ndarray) -> None:
            self._original_predictions = self.model.predict(image, self.confidence_threshold, keep_resolution=True)

        def perform_batch_inference(self, images: list[np.ndarray]) -> None:
            self._original_predictions = self.model.predict(
                images, self.confidence_threshold, keep_resolution=True, batch_size=len(images)
            )

        def _create_object_prediction_list_from_original_predictions(
            self,
            shift_amount_list=None,  # noqa: ANN001
            full_shape_list=None,
        ) -> None:  # noqa: ANN001
            shifts = shift_amount_list or [[0, 0]]
            shifts = [shifts] if not isinstance(shifts[0], list | tuple) else shifts
            shapes = full_shape_list if full_shape_list else [None] * len(self._original_predictions)
            shapes = (
                [shapes] if shapes and shapes[0] is not None and not isinstance(shapes[0], list | tuple) else shapes
            )
            out = []
            for prediction, shift, shape in zip(self._original_predictions, shifts, shapes, strict=False):
                out.append([
                    ObjectPrediction(bbox=[float(v) for v in box], category_id=int(label), score=float(score),
                                     category_name=detector.class_names[int(label)], shift_amount=list(shift),
                                     full_shape=list(shape) if shape is not None else None)
                    for box, score, label in zip(prediction.boxes, prediction.scores, prediction.labels, strict=True)
                ])  # fmt: skip
            self._object_prediction_list_per_image = out

    # SAHI merges by NMS/IoU instead of GREEDYNMM/IOS below a 0.1 threshold (it says so): AP needs the low scores.
    return CenterNetForSahi(confidence_threshold=_CONFIDENCE, device="cpu")


def _sahi_predict(model, image: np.ndarray, tile: int):  # noqa: ANN001, ANN202 - a Prediction from SAHI's merge
    """``sahi.predict.get_sliced_prediction`` with its defaults (overlap ratios 0.2, a whole-image pass too, GREEDYNMM
    merging at IOS 0.5), slices of ``tile`` px in batches of 8 like ours; its best ``max_detections`` kept."""
    from sahi.predict import get_sliced_prediction

    from centernet.tasks.detection.results import Prediction

    result = get_sliced_prediction(image, model, slice_height=tile, slice_width=tile, batch_size=8, verbose=0)
    found = result.object_prediction_list
    boxes = np.array([p.bbox.to_xyxy() for p in found], dtype=np.float32).reshape(-1, 4)
    labels = np.array([p.category.id for p in found], dtype=np.int64)
    scores = np.array([p.score.value for p in found], dtype=np.float32)
    # The best max_detections, as our predict keeps per image: COCO caps each class separately, so more would
    # score detections that ours are not allowed to return.
    order = np.argsort(-scores, kind="stable")[: model.model.max_detections]
    names = [model.model.class_names[i] for i in labels[order]]
    ids = [model.model.category_ids[i] for i in labels[order]]
    return Prediction(boxes[order], scores[order], labels[order], names, ids, image.shape[:2])


def memory(side: int, checkpoint: str | None, tile: int) -> None:
    import rasterio
    from rasterio.windows import Window

    print(f"\n3. peak memory of predict(tile={tile}) on a {side} x {side} RGB GeoTIFF read by windows")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.tif"
        scene = generate_scene(2048, 0, "val", 1).image  # tiled over the raster: real content, little disk
        transform = rasterio.transform.from_origin(500_000, 4_650_000, 0.3, 0.3)
        profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8", "tiled": True,
                   "blockxsize": 512, "blockysize": 512, "compress": "deflate", "crs": "EPSG:32633",
                   "transform": transform, "BIGTIFF": "YES"}  # fmt: skip
        start = time.perf_counter()
        with rasterio.open(path, "w", **profile) as dataset:
            for y in range(0, side, 2048):
                for x in range(0, side, 2048):
                    h, w = min(2048, side - y), min(2048, side - x)
                    dataset.write(scene[:h, :w].transpose(2, 0, 1), window=Window(x, y, w, h))
        print(f"  wrote {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - start:.0f} s")
        env = {**os.environ, "CENTERNET_MAX_IMAGE_PIXELS": "0"}  # the documented way to accept it
        command = [sys.executable, __file__, "--child", str(path), "--tile", str(tile)]
        if checkpoint:
            command += ["--checkpoint", checkpoint]
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
    print(
        f"  peak RSS {result['peak_mb']:.0f} MB (before predicting {result['before_mb']:.0f} MB: torch and the model), "
        f"{result['detections']} detections, {result['tiles']} tiles in {result['seconds']:.0f} s; "
        f"for scale, the image as one uint8 array is {side * side * 3 / 1e6:.0f} MB, as float32 "
        f"{side * side * 12 / 1e6:.0f} MB"
    )


def _child(path: str, checkpoint: str | None, tile: int) -> None:
    """Runs in a fresh process so that its peak memory is the prediction's own."""
    from centernet.tiles import TileGrid

    detector = _detector(checkpoint, "eager")
    detector.predict(np.zeros((256, 256, 3), np.uint8), tile=tile)  # allocator and kernels warmed up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    prediction = detector.predict(path, 0.3, tile=tile, max_detections=100_000, batch_size=8)[0]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tiles = len(TileGrid.plan(prediction.image_size, tile))
    print(json.dumps({"before_mb": before, "peak_mb": peak, "seconds": seconds, "tiles": tiles,
                      "detections": len(prediction.boxes)}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="a checkpoint of `centernet demo --task tiles`")
    parser.add_argument("--parts", nargs="+", default=["speed", "sahi", "memory"], choices=["speed", "sahi", "memory"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--backend", default="eager", choices=["eager", "onnxruntime"])
    parser.add_argument("--memory-side", type=int, default=20_000)
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 2048], help="image sides of part 1")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.checkpoint, args.tile)
        return
    print(machine_header())
    detector = _detector(args.checkpoint, args.backend)
    print(f"model: {args.checkpoint or 'fresh network of configs/tiles.yaml'}, backend {detector.backend.name}")
    if "speed" in args.parts:
        speed(detector, args.repeats, args.tile, args.sides)
    if "sahi" in args.parts:
        versus_sahi(detector, args.repeats, args.tile)
    if "memory" in args.parts:
        memory(args.memory_side, args.checkpoint, args.tile)


if __name__ == "__main__":
    main()
