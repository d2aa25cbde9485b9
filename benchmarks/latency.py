"""Inference latency of CenterNet-ResNet18 at 512x512, split into stages, for every backend.

Stages per batch (median over repeats, milliseconds):

- preprocess: letterbox the 640x480 RGB uint8 images into a float batch (``Detector``'s own preprocessing);
- network: the network alone (for TorchScript / ONNX Runtime a graph exported without decoding);
- decode: max-pool peaks + top-K (for TorchScript / ONNX Runtime a graph of the decoding alone);
- postprocess: threshold, map boxes back to original pixels, build the ``Prediction`` objects;
- end-to-end: ``Detector.predict`` on the images (for TorchScript / ONNX Runtime the export with decoding inside,
  as ``centernet export`` writes it). The backends' end-to-end runs are paired (interleaved repetitions,
  ``benchmarks/timing.py``) and compared with the first row as the median of per-repetition ratios (IQR).

Usage:

    python benchmarks/latency.py                      # batch 1 and 8, 10 repeats
    python benchmarks/latency.py --batch 1 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from timing import machine_header, median_ms, paired_times, ratio_stats  # benchmarks/timing.py (on sys.path)
from torch import Tensor, nn

from centernet.inference import Detector
from centernet.inference.backends import EagerBackend, as_float_images
from centernet.inference.export import export_onnx, export_torchscript
from centernet.model import CenterNet

NUM_CLASSES = 80


class _NetworkOnly(nn.Module):
    def __init__(self, model: CenterNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        maps = self.model(images)
        return maps["heatmap"], maps["size"], maps["offset"]


class _DecodeOnly(nn.Module):
    def __init__(self, model: CenterNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, heatmap: Tensor, size: Tensor, offset: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        detections = self.model.decode({"heatmap": heatmap, "size": size, "offset": offset})
        return detections["boxes"], detections["scores"], detections["labels"]


def _export_parts(model: CenterNet, root: Path, size: int) -> dict[str, object]:
    """Network-only and decode-only graphs for TorchScript and ONNX Runtime."""
    example = torch.rand(1, 3, size, size)
    with torch.no_grad():
        maps = model(example)
    maps_example = (maps["heatmap"], maps["size"], maps["offset"])
    parts: dict[str, object] = {}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        parts["ts_net"] = torch.jit.freeze(torch.jit.trace(_NetworkOnly(model).eval(), (example,)))
        parts["ts_dec"] = torch.jit.trace(_DecodeOnly(model).eval(), maps_example)
        axes = {"images": {0: "n"}}
        torch.onnx.export(_NetworkOnly(model).eval(), (example,), str(root / "net.onnx"), input_names=["images"],
                          dynamic_axes=axes, dynamo=False, opset_version=17)  # fmt: skip
        names = ["heatmap", "size", "offset"]
        torch.onnx.export(_DecodeOnly(model).eval(), maps_example, str(root / "dec.onnx"), input_names=names,
                          dynamic_axes={n: {0: "n"} for n in names}, dynamo=False, opset_version=17)  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as OnnxRuntimeBackend
    parts["ort_net"] = ort.InferenceSession(str(root / "net.onnx"), options, providers=["CPUExecutionProvider"])
    parts["ort_dec"] = ort.InferenceSession(str(root / "dec.onnx"), options, providers=["CPUExecutionProvider"])
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = CenterNet(NUM_CLASSES, backbone="resnet18").eval()  # the paper's plain neck (256, 128, 64)
    names, ids = [str(i) for i in range(NUM_CLASSES)], list(range(1, NUM_CLASSES + 1))
    root = Path(tempfile.mkdtemp(prefix="centernet-latency-"))
    onnx_path = export_onnx(model, root / "m.onnx", names, ids, args.size, dynamic=True)
    ts_path = export_torchscript(model, root / "m.torchscript", names, ids, args.size)
    parts = _export_parts(model, root, args.size)
    cl_model = CenterNet(NUM_CLASSES, backbone="resnet18").eval()
    cl_model.load_state_dict(model.state_dict())
    detectors = {
        "eager NCHW unfolded": Detector(
            EagerBackend(model, fold_batchnorm=False, channels_last=False), names, ids, args.size
        ),
        "eager NCHW": Detector(model, names, ids, args.size, channels_last=False),
        "eager channels_last": Detector(cl_model, names, ids, args.size, channels_last=True),
        "TorchScript": Detector.load(ts_path),
        "ONNX Runtime": Detector.load(onnx_path),
    }
    print(machine_header("cpu"))
    print(f"CenterNet-ResNet18, {NUM_CLASSES} classes, {args.size}x{args.size} input from 640x480 images; "
          f"median of {args.repeats} runs, ms per batch")  # fmt: skip
    header = (
        f"{'backend':<20} {'batch':>5} {'preproc':>8} {'network':>8} {'decode':>8} {'postproc':>9} {'end-to-end':>11}"
    )
    print(header)
    rng = np.random.default_rng(0)
    for batch in args.batch:
        images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(batch)]
        end_to_end = paired_times(
            {
                name: lambda d=detector, i=images: d.predict(i, 0.3, batch_size=len(i))
                for name, detector in detectors.items()
            },
            args.repeats,
        )
        baseline = end_to_end["eager NCHW unfolded"]  # the first row
        for name, detector in detectors.items():
            timings = _stages(name, detector, parts, images, args.repeats)
            total = 1000 * statistics.median(end_to_end[name])
            ratio = ratio_stats(end_to_end[name], baseline)
            share = 100 * timings["decode"] / timings["network"]
            print(f"{name:<20} {batch:>5} {timings['preprocess']:>8.1f} {timings['network']:>8.1f} "
                  f"{timings['decode']:>8.2f} {timings['postprocess']:>9.2f} {total:>11.1f}"
                  f"  ({ratio} unfolded eager NCHW; decode {share:.1f}% of network)")  # fmt: skip


def _stages(name: str, detector: Detector, parts: dict, images: list[np.ndarray], repeats: int) -> dict[str, float]:
    prepared = [detector._letterbox(image.shape[:2], 1.0, False) for image in images]

    def preprocess() -> Tensor:
        canvases = [detector._letterbox(image.shape[:2], 1.0, False).apply(image) for image in images]  # uint8
        return as_float_images(torch.from_numpy(np.stack(canvases)).permute(0, 3, 1, 2)).contiguous()

    batch = preprocess()
    with torch.inference_mode():
        if name.startswith("eager"):
            backend = detector.backend
            network = lambda: backend.maps(batch)  # noqa: E731
            maps = network()
            decode = lambda: backend.model.decode(maps)  # noqa: E731
        elif name == "TorchScript":
            net, dec = parts["ts_net"], parts["ts_dec"]
            network = lambda: net(batch)  # noqa: E731
            maps = network()
            decode = lambda: dec(*maps)  # noqa: E731
        else:
            net, dec = parts["ort_net"], parts["ort_dec"]
            array = batch.numpy()
            network = lambda: net.run(None, {"images": array})  # noqa: E731
            heatmap, size, offset = network()
            decode = lambda: dec.run(None, {"heatmap": heatmap, "size": size, "offset": offset})  # noqa: E731
        detections = detector.backend(batch)

        def postprocess() -> None:
            task = detector.task
            for row, (letterbox, image) in enumerate(zip(prepared, images, strict=True)):
                one = {key: value[row] for key, value in detections.items()}
                keep = one["scores"] > 0
                det = task.to_original({key: value[keep] for key, value in one.items()}, letterbox)
                selected = task.select(det, 0.3, 100, None)
                task.result(selected, detector.class_names, detector.category_ids, image.shape[:2])

        return {
            "preprocess": median_ms(preprocess, repeats),
            "network": median_ms(network, repeats),
            "decode": median_ms(decode, repeats),
            "postprocess": median_ms(postprocess, repeats),
        }


if __name__ == "__main__":
    main()
