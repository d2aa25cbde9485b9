"""CenterNet against the torchvision detectors a user would pick instead, every row measured in this one run.

All models have random weights and 80 classes (SSDlite: 80 + background) and see 512x512 RGB images (SSDlite
resizes them to its fixed 320x320). Models compared in one table are timed in paired, interleaved repetitions
(A B C, C B A, ...; ``benchmarks/timing.py``) after ``--warmup`` rounds: times are medians over ``--repeats``
repetitions, and each ratio is the median of the per-repetition ratios with its interquartile range, so drift
of a shared machine cancels out of the ratios.

1. Inference end to end, batch 1 and 8: uint8 HxWx3 images in, boxes in original pixels out. CenterNet goes
   through ``Detector.predict`` (letterbox, network, peak decoding, mapping back); torchvision models through
   their own ``forward`` (normalise, resize, network, box decoding, NMS, mapping back).
   With random weights torchvision's heads score every anchor/location at their prior (~0.01), below their
   score thresholds, so their NMS runs on almost nothing: a trained model's NMS would cost more. CenterNet's
   decoding costs the same whatever the scores.
2. One training step (forward, loss, backward, AdamW step) in images/s at ``--train-batch`` with 8 objects per
   image (COCO's mean is 7.3). torchvision's ResNet FPN backbones use FrozenBatchNorm2d, their default;
   CenterNet trains its BatchNorms. CenterNet trains as ``centernet fit`` does on the device (channels-last
   memory where :func:`default_channels_last` says so, fused AdamW with weight-decay groups); the torchvision
   models as their documentation does (NCHW, ``torch.optim.AdamW`` with its defaults).
3. Rendering CenterNet's training targets for 16 images at 512x512 with 50 objects each, against the time of
   one CenterNet training step on that batch; and peak decoding against the network time.
4. Pose, end to end as in 1: CenterNet-R18 multi-pose (the paper's plain upsampling neck, pose heads, COCO's 17
   joints) through ``Detector.predict`` against torchvision's Keypoint R-CNN on a ResNet-18 FPN (its layout on
   ResNet-18: FPN over C2-C5 plus a max-pooled P6), both 1 person class + background. With random weights Keypoint
   R-CNN's box head scores its proposals near 0.5, above its 0.05 threshold, so its keypoint head runs on its full
   100 detections per image, as a trained model's does on a crowded image.
5. COCO box evaluation of 5,000 synthetic images with 100 detections each: pycocotools against the evaluator
   that validation during ``fit`` and ``centernet validate`` share (faster-coco-eval); the AP each reports is
   printed to show they agree.

Usage:

    python benchmarks/compare.py                                  # the whole table on the CPU
    python benchmarks/compare.py --device cuda --precision bf16   # on a GPU, bf16 autocast
    python benchmarks/compare.py --sections inference --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from timing import machine_header, paired_times, ratio_stats  # benchmarks/timing.py (on sys.path as the script's)
from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection import FCOS, KeypointRCNN, RetinaNet, ssdlite320_mobilenet_v3_large
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from centernet.cli.info import build_model_from_configs
from centernet.data.keypoints import COCO_JOINTS, COCO_SKELETON, keypoint_info
from centernet.inference import Detector
from centernet.inference.backends import EagerBackend, OnnxRuntimeBackend
from centernet.inference.export import export_onnx
from centernet.model import CenterNet
from centernet.tasks.detection.targets import render_targets
from centernet.training.module import default_channels_last
from centernet.training.optim import build_adamw, split_weight_decay

NUM_CLASSES = 80
SIZE = 512
SECTIONS = ("inference", "training", "targets", "pose", "evaluation")


# ---------------------------------------------------------------------------------------------------- timing
class Timer:
    """Paired timing of the compared calls (``benchmarks/timing.py``) under autocast, synchronising CUDA."""

    def __init__(self, device: torch.device, repeats: int, warmup: int, precision: str) -> None:
        self.device, self.repeats, self.warmup, self.precision = device, repeats, warmup, precision

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _wrapped(self, fn: Callable[[], object]) -> Callable[[], None]:
        def call() -> None:
            with self.autocast():
                fn()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)

        return call

    def paired_ms(
        self, fns: Mapping[str, Callable[[], object]], repeats: int | None = None, warmup: int | None = None
    ) -> dict[str, list[float]]:
        """Milliseconds per repetition of each call, interleaved; a call that fails its first (warm-up) run is
        reported and gets NaN times, so one model that fails leaves the other rows."""
        repeats = self.repeats if repeats is None else repeats
        warmup = max(1, self.warmup if warmup is None else warmup)
        working: dict[str, Callable[[], None]] = {}
        for name, fn in fns.items():
            call = self._wrapped(fn)
            try:
                call()  # the first warm-up round, alone: a failure drops only this call
            except Exception as error:  # noqa: BLE001 - reported in the table as nan
                print(f"  {name} failed: {type(error).__name__}: {error}", flush=True)
                continue
            working[name] = call
        times = paired_times(working, repeats, warmup - 1)
        return {name: [1000 * t for t in times[name]] if name in times else [math.nan] * repeats for name in fns}


def _median(times: list[float]) -> float:
    return statistics.median(times)


def _ratio(numerator: list[float], denominator: list[float]) -> str:
    """``median x (IQR q1-q3)`` of per-repetition ratios, or ``failed`` when either call failed."""
    if any(math.isnan(t) for t in (*numerator, *denominator)):
        return "failed"
    return str(ratio_stats(numerator, denominator))


# ---------------------------------------------------------------------------------------------------- models
def _resnet18_fpn() -> nn.Module:
    """ResNet-18 with an FPN over C3-C5 plus P6/P7 from P5: torchvision's FCOS/RetinaNet layout on ResNet-18."""
    return _resnet_fpn_extractor(resnet18(), 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))


def fcos_r18() -> nn.Module:
    return FCOS(_resnet18_fpn(), num_classes=NUM_CLASSES, min_size=SIZE, max_size=SIZE)


def retinanet_r18() -> nn.Module:
    return RetinaNet(_resnet18_fpn(), num_classes=NUM_CLASSES, min_size=SIZE, max_size=SIZE)


def ssdlite() -> nn.Module:
    return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=NUM_CLASSES + 1)


def centernet_r18() -> CenterNet:
    return CenterNet(NUM_CLASSES, backbone="resnet18")  # the paper's plain upsampling neck (256, 128, 64)


def keypoint_rcnn_r18() -> nn.Module:
    """Keypoint R-CNN (1 class + background, 17 joints) on ResNet-18 with torchvision's keypoint FPN layout."""
    backbone = _resnet_fpn_extractor(resnet18(), 5)  # C2-C5 + max-pooled P6, as keypointrcnn_resnet50_fpn
    return KeypointRCNN(backbone, num_classes=2, num_keypoints=len(COCO_JOINTS), min_size=SIZE, max_size=SIZE)


def centernet_r18_pose() -> CenterNet:
    joints = keypoint_info(COCO_JOINTS, COCO_SKELETON)
    return CenterNet(1, task="pose", backbone="resnet18", task_data=joints)  # the plain upsampling neck


def centernet_mobilenetv3() -> CenterNet:
    model, _ = build_model_from_configs(["mobilenetv3"], NUM_CLASSES)
    return model


# ------------------------------------------------------------------------------------------------- inference
def _centernet_detectors(
    name: str, model: CenterNet, device: torch.device, folder: Path
) -> Iterator[tuple[str, Detector]]:
    classes = model.num_classes
    names, ids = [str(i) for i in range(classes)], list(range(1, classes + 1))
    model = model.eval()
    eager = EagerBackend(copy.deepcopy(model), device, channels_last=False)
    yield f"{name} eager", Detector(eager, names, ids, SIZE)
    channels_last = EagerBackend(copy.deepcopy(model), device, channels_last=True)
    yield f"{name} eager channels_last", Detector(channels_last, names, ids, SIZE)
    if device.type == "cpu":
        path = export_onnx(model, folder / f"{name}.onnx", names, ids, SIZE, dynamic=True)
        yield f"{name} ONNX Runtime", Detector(OnnxRuntimeBackend(path), names, ids, SIZE)


def _torchvision_runner(model: nn.Module, device: torch.device) -> Callable[[list[np.ndarray]], list[dict]]:
    model = model.eval().to(device)

    @torch.inference_mode()
    def run(images: list[np.ndarray]) -> list[dict]:
        tensors = [torch.from_numpy(image).to(device).permute(2, 0, 1).float().div_(255) for image in images]
        return [{key: value.float().cpu().numpy() for key, value in out.items()} for out in model(tensors)]

    return run


def inference_section(timer: Timer, batches: list[int], folder: Path) -> tuple[list[str], dict]:
    device = timer.device
    runners: dict[str, Callable[[list[np.ndarray]], object]] = {}
    torch.manual_seed(0)
    for label, model in (("CenterNet-R18", centernet_r18()), ("CenterNet-MobileNetV3", centernet_mobilenetv3())):
        for name, detector in _centernet_detectors(label, model, device, folder):
            runners[name] = lambda images, d=detector: d.predict(images, 0.3, batch_size=len(images))
    runners["FCOS-R18-FPN"] = _torchvision_runner(fcos_r18(), device)
    fcos_channels_last = fcos_r18().to(memory_format=torch.channels_last)
    runners["FCOS-R18-FPN channels_last"] = _torchvision_runner(fcos_channels_last, device)
    runners["RetinaNet-R18-FPN"] = _torchvision_runner(retinanet_r18(), device)
    runners["SSDlite320-MobileNetV3"] = _torchvision_runner(ssdlite(), device)

    rng = np.random.default_rng(0)
    results: dict[tuple[str, int], list[float]] = {}
    for batch in batches:
        images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(batch)]
        times = timer.paired_ms({name: lambda r=run, i=images: r(i) for name, run in runners.items()})
        for name in runners:
            results[name, batch] = times[name]
            print(f"  inference {name:<34} batch {batch}: {_median(times[name]):8.1f} ms", flush=True)
    lines = ["| inference, end to end | " + " | ".join(f"batch {b} (ms)" for b in batches)
             + " | " + " | ".join(f"vs FCOS, batch {b} (IQR)" for b in batches) + " |"]  # fmt: skip
    lines.append("| --- |" + " ---: |" * (2 * len(batches)))
    for name in runners:
        medians = " | ".join(f"{_median(results[name, b]):.1f}" for b in batches)
        ratios = " | ".join(_ratio(results[name, b], results["FCOS-R18-FPN", b]) for b in batches)
        lines.append(f"| {name} | {medians} | {ratios} |")
    return lines, results


def pose_section(timer: Timer, batches: list[int], folder: Path) -> tuple[list[str], dict]:
    """CenterNet-R18 pose against Keypoint R-CNN-R18-FPN, end to end (images in, joints in original pixels out)."""
    device = timer.device
    torch.manual_seed(0)
    runners: dict[str, Callable[[list[np.ndarray]], object]] = {}
    for name, detector in _centernet_detectors("CenterNet-R18 pose", centernet_r18_pose(), device, folder):
        runners[name] = lambda images, d=detector: d.predict(images, 0.3, batch_size=len(images))
    runners["KeypointRCNN-R18-FPN"] = _torchvision_runner(keypoint_rcnn_r18(), device)
    rng = np.random.default_rng(0)
    results: dict[tuple[str, int], list[float]] = {}
    for batch in batches:
        images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(batch)]
        times = timer.paired_ms({name: lambda r=run, i=images: r(i) for name, run in runners.items()})
        for name in runners:
            results[name, batch] = times[name]
            print(f"  pose {name:<34} batch {batch}: {_median(times[name]):8.1f} ms", flush=True)
    lines = ["| pose, end to end | " + " | ".join(f"batch {b} (ms)" for b in batches)
             + " | " + " | ".join(f"vs Keypoint R-CNN, batch {b} (IQR)" for b in batches) + " |"]  # fmt: skip
    lines.append("| --- |" + " ---: |" * (2 * len(batches)))
    for name in runners:
        medians = " | ".join(f"{_median(results[name, b]):.1f}" for b in batches)
        ratios = " | ".join(_ratio(results[name, b], results["KeypointRCNN-R18-FPN", b]) for b in batches)
        lines.append(f"| {name} | {medians} | {ratios} |")
    return lines, results


def decode_share(timer: Timer, batches: list[int]) -> list[str]:
    """Peak decoding against the network time of the eager CenterNet-R18 (channels_last, BatchNorm folded)."""
    torch.manual_seed(0)
    backend = EagerBackend(centernet_r18(), timer.device, channels_last=True)
    lines = ["| CenterNet-R18 eager | network (ms) | decode (ms) | decode / network (IQR) |",
             "| --- | ---: | ---: | ---: |"]  # fmt: skip
    for batch in batches:
        images = torch.rand(batch, 3, SIZE, SIZE)
        maps = backend.maps(images)
        times = timer.paired_ms(
            {"network": lambda i=images: backend.maps(i), "decode": lambda m=maps: backend.decode(m)}
        )
        network, decode = _median(times["network"]), _median(times["decode"])
        share = ratio_stats([100 * t for t in times["decode"]], times["network"])
        print(f"  decode batch {batch}: {decode:.2f} ms, network {network:.1f} ms", flush=True)
        lines.append(f"| batch {batch} | {network:.1f} | {decode:.2f} | {share.median:.1f}% "
                     f"({share.q1:.1f}-{share.q3:.1f}) |")  # fmt: skip
    return lines


# -------------------------------------------------------------------------------------------------- training
def _synthetic_boxes(batch: int, objects: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, objects, 4) cx, cy, w, h relative boxes inside the image and (batch, objects) labels."""
    sizes = torch.rand(batch, objects, 2, generator=generator) * 0.3 + 0.02
    centres = sizes / 2 + torch.rand(batch, objects, 2, generator=generator) * (1 - sizes)
    labels = torch.randint(0, NUM_CLASSES, (batch, objects), generator=generator)
    return torch.cat([centres, sizes], dim=-1), labels


def _centernet_step(model: CenterNet, batch: dict, optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    def step() -> None:
        loss = model.compute_loss(model(batch["image"]), batch)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _as_fit_trains(
    model: CenterNet, batch: dict, device: torch.device
) -> tuple[CenterNet, dict, torch.optim.Optimizer]:
    """The model, the batch and the optimiser as ``centernet fit`` sets them up on ``device`` (its defaults)."""
    if default_channels_last(device):
        model = model.to(memory_format=torch.channels_last)
        batch = {**batch, "image": batch["image"].contiguous(memory_format=torch.channels_last)}
    optimizer = build_adamw(split_weight_decay(model, 1e-4), 1e-4, device)
    return model, batch, optimizer


def _centernet_batch(batch: int, objects: int, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    bboxes, labels = _synthetic_boxes(batch, objects, generator)
    return {
        "image": torch.rand(batch, 3, SIZE, SIZE, generator=generator).to(device),
        "bboxes": bboxes.to(device),
        "labels": labels.to(device),
        "mask": torch.ones(batch, objects, device=device),
    }


def training_section(timer: Timer, batch: int) -> tuple[list[str], dict[str, list[float]]]:
    """Images/s of one training step per model, the models' steps interleaved; ratios against FCOS."""
    device = timer.device
    data = _centernet_batch(batch, 8, device)
    xyxy = torch.cat([data["bboxes"][..., :2] - data["bboxes"][..., 2:] / 2,
                      data["bboxes"][..., :2] + data["bboxes"][..., 2:] / 2], dim=-1) * SIZE  # fmt: skip
    images = list(data["image"])
    targets = [{"boxes": xyxy[i], "labels": data["labels"][i]} for i in range(batch)]
    steps: dict[str, Callable[[], None]] = {}
    torch.manual_seed(0)
    for name, build in (("CenterNet-R18", centernet_r18), ("FCOS-R18-FPN", fcos_r18),
                        ("RetinaNet-R18-FPN", retinanet_r18)):  # fmt: skip
        model = build().to(device).train()
        if isinstance(model, CenterNet):
            steps[name] = _centernet_step(*_as_fit_trains(model, data, device))
            continue
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(model: nn.Module = model, optimizer: torch.optim.Optimizer = optimizer) -> None:
            loss = sum(model(images, targets).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        steps[name] = step
    times = timer.paired_ms(steps)
    for name, milliseconds in times.items():
        print(f"  training {name:<20} batch {batch}: {_median(milliseconds):8.0f} ms, "
              f"{1000 * batch / _median(milliseconds):.2f} images/s", flush=True)  # fmt: skip
    lines = [
        f"| training step, batch {batch} | ms | images/s | images/s vs FCOS (IQR) |",
        "| --- | ---: | ---: | ---: |",
    ]
    # images/s ratio of one repetition = FCOS's time / the model's time
    lines += [f"| {n} | {_median(t):.0f} | {1000 * batch / _median(t):.2f} | {_ratio(times['FCOS-R18-FPN'], t)} |"
              for n, t in times.items()]  # fmt: skip
    return lines, times


def targets_section(timer: Timer) -> list[str]:
    """Target rendering for 16 images with 50 objects each, against a CenterNet-R18 step on the same batch."""
    device = timer.device
    data = _centernet_batch(16, 50, device)
    out = SIZE // 4

    def render() -> None:
        render_targets(data["bboxes"], data["labels"], data["mask"], NUM_CLASSES, (out, out))

    torch.manual_seed(0)
    step = _centernet_step(*_as_fit_trains(centernet_r18().to(device).train(), data, device))
    times = timer.paired_ms({"render": render, "step": step}, repeats=max(1, timer.repeats // 2))
    rendering, step_ms = _median(times["render"]), _median(times["step"])
    share = ratio_stats([100 * t for t in times["render"]], times["step"])
    print(f"  targets: {rendering:.2f} ms, step {step_ms:.0f} ms", flush=True)
    return [
        f"| target rendering, 16 images x 50 objects at {SIZE} | rendering (ms) | training step (ms) | share (IQR) |",
        "| --- | ---: | ---: | ---: |",
        f"| CenterNet-R18, batch 16 | {rendering:.2f} | {step_ms:.0f} | {share.median:.2f}% "
        f"({share.q1:.2f}-{share.q3:.2f}) |",
    ]


# ------------------------------------------------------------------------------------------------ evaluation
def synthetic_coco(images: int, detections: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO ground truth (about 7 boxes per 640x480 image) and ``detections`` scored results per image.

    Half of the results are jittered copies of true boxes, the rest random, so AP is neither 0 nor 1.
    """
    rng = np.random.default_rng(seed)
    categories = [{"id": i, "name": str(i)} for i in range(1, NUM_CLASSES + 1)]
    image_entries, annotations, results = [], [], []
    for image_id in range(1, images + 1):
        image_entries.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480})
        count = int(rng.integers(1, 14))
        wh = rng.uniform(8, 200, (count, 2))
        xy = rng.uniform(0, 1, (count, 2)) * (np.array([640, 480]) - wh)
        labels = rng.integers(1, NUM_CLASSES + 1, count)
        for box_xy, box_wh, label in zip(xy, wh, labels, strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                                "bbox": [*box_xy.tolist(), *box_wh.tolist()], "area": float(box_wh.prod()),
                                "iscrowd": 0})  # fmt: skip
        true = rng.integers(0, count, detections // 2)
        jitter = rng.normal(0, 0.1, (len(true), 4)) * np.concatenate([wh[true], wh[true]], axis=1)
        misses = detections - len(true)
        random_boxes = np.concatenate([rng.uniform(0, 560, (misses, 2)), rng.uniform(8, 200, (misses, 2))], axis=1)
        boxes = np.concatenate([np.concatenate([xy[true], wh[true]], axis=1) + jitter, random_boxes])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
        classes = np.concatenate([labels[true], rng.integers(1, NUM_CLASSES + 1, detections - len(true))])
        scores = rng.uniform(0, 1, detections)
        for box, label, score in zip(boxes.tolist(), classes.tolist(), scores.tolist(), strict=True):
            results.append({"image_id": image_id, "category_id": label, "bbox": box, "score": score})
    return {"images": image_entries, "annotations": annotations, "categories": categories}, results


# Each evaluator takes the ground truth and the results and returns the timed call, which returns the AP; any
# conversion to the evaluator's own input format happens before, untimed (as in `fit`, where it is spread over
# the validation steps).
def _pycocotools(ground_truth: dict, results: list[dict]) -> Callable[[], float]:
    return lambda: _pycocotools_ap(ground_truth, results)


def _pycocotools_ap(ground_truth: dict, results: list[dict]) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(None):
        gt = COCO()
        gt.dataset = copy.deepcopy(ground_truth)
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


def _validate_evaluator(ground_truth: dict, results: list[dict]) -> Callable[[], float]:
    from centernet.evaluation import evaluate_coco

    return lambda: evaluate_coco(ground_truth, results).metrics["map"]


def evaluation_section(images: int, detections: int) -> list[str]:
    ground_truth, results = synthetic_coco(images, detections)
    print(f"  evaluation: {images} images, {len(ground_truth['annotations'])} boxes, {len(results)} detections")
    lines = [f"| COCO evaluation, {images} images x {detections} detections | seconds | AP | vs pycocotools |",
             "| --- | ---: | ---: | ---: |"]  # fmt: skip
    baseline = None
    for name, prepare in (("pycocotools", _pycocotools),
                          ("faster-coco-eval (`fit` and `validate`)", _validate_evaluator)):  # fmt: skip
        evaluate = prepare(ground_truth, results)
        start = time.perf_counter()
        ap = evaluate()
        seconds = time.perf_counter() - start
        baseline = baseline or seconds
        print(f"  evaluation {name}: {seconds:.1f} s, AP {ap:.4f}", flush=True)
        lines.append(f"| {name} | {seconds:.1f} | {ap:.4f} | {seconds / baseline:.2f}x |")
    return lines


# ------------------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast, all models")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="inference batch sizes")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--eval-images", type=int, default=5000)
    parser.add_argument("--eval-detections", type=int, default=100)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(os.cpu_count() or 1)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    warnings.filterwarnings("ignore", category=UserWarning)
    timer = Timer(device, args.repeats, args.warmup, args.precision)
    tables: list[list[str]] = []
    ratios: list[str] = []
    with tempfile.TemporaryDirectory(prefix="centernet-compare-") as folder:
        if "inference" in args.sections:
            lines, inference = inference_section(timer, args.batch, Path(folder))
            tables += [lines, decode_share(timer, args.batch)]
            for b in args.batch:
                rows = {n: t for (n, bb), t in inference.items() if bb == b and n.startswith("CenterNet-R18")}
                best = min(rows, key=lambda n: _median(rows[n]))
                ratios.append(f"CenterNet-R18 end to end, batch {b} ({best}): "
                              f"{_ratio(rows[best], inference['FCOS-R18-FPN', b])} FCOS-R18-FPN's latency "
                              "(target <= 0.5x)")  # fmt: skip
        if "pose" in args.sections:
            lines, pose = pose_section(timer, args.batch, Path(folder))
            tables.append(lines)
            for b in args.batch:
                rows = {n: t for (n, bb), t in pose.items() if bb == b and n.startswith("CenterNet")}
                best = min(rows, key=lambda n: _median(rows[n]))
                ratios.append(f"CenterNet-R18 pose end to end, batch {b} ({best}): "
                              f"{_ratio(rows[best], pose['KeypointRCNN-R18-FPN', b])} Keypoint R-CNN-R18-FPN's "
                              "latency (target <= 0.3x)")  # fmt: skip
    if "training" in args.sections:
        lines, training = training_section(timer, args.train_batch)
        tables.append(lines)
        ratios.append(f"CenterNet-R18 training, batch {args.train_batch}: "
                      f"{_ratio(training['FCOS-R18-FPN'], training['CenterNet-R18'])} FCOS-R18-FPN's images/s "
                      "(target >= 2.5x)")  # fmt: skip
    if "targets" in args.sections:
        tables.append(targets_section(timer))
    if "evaluation" in args.sections:
        tables.append(evaluation_section(args.eval_images, args.eval_detections))
    print(
        f"\n{machine_header(device)}\n{args.precision}; paired: medians of {args.repeats} interleaved repetitions "
        f"after {args.warmup} warm-up rounds, ratios as median (interquartile range) of per-repetition ratios\n"
    )
    for table in tables:
        print("\n".join(table) + "\n")
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
