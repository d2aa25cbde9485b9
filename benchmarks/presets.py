"""Every preset in centernet/configs/: parameters, GFLOPs and CPU inference latency, eager and ONNX Runtime.

The network only (image -> raw output maps, 80 classes), batch 1, in eval mode; latency is the median over
``--repeats`` runs after ``--warmup`` runs, eager and ONNX Runtime paired (interleaved repetitions,
``benchmarks/timing.py``) and compared as the median of per-repetition ratios (interquartile range). DCN
presets are exported with ONNX opset 19 (``DeformConv``), the others with opset 17. Usage:

    python benchmarks/presets.py                          # all presets at 512x512
    python benchmarks/presets.py --size 384 --repeats 5 --presets resnet18 mobilenetv3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import onnxruntime
import torch
from timing import machine_header, paired_times, ratio_stats  # benchmarks/timing.py (on sys.path)

from centernet.cli.info import build_model_from_configs, count_flops, count_parameters

PRESETS = ("resnet18", "resnet18_dcn", "dla34", "dla34_dcn", "mobilenetv3")


def _onnx_session(model: torch.nn.Module, image: torch.Tensor, opset: int, folder: str) -> onnxruntime.InferenceSession:
    path = str(Path(folder) / "model.onnx")
    with torch.no_grad():
        names = list(model(image))
    torch.onnx.export(
        model, (image,), path, input_names=["image"], output_names=names, opset_version=opset, dynamo=False
    )
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # As OnnxRuntimeBackend: threads that spin after a run would steal the cores from the eager call that the
    # paired timing runs next (eager measured 2.8 s instead of milliseconds at 128 px on 2 cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    print(machine_header("cpu"))
    print(f"{args.size}x{args.size}, batch 1, 80 classes, median of {args.repeats} runs\n")
    header = (
        "| preset | parameters | GFLOPs | eager (ms) | ONNX Runtime (ms) | ONNX Runtime / eager (IQR) |\n"
        "| --- | ---: | ---: | ---: | ---: | --- |"
    )
    rows = []
    for preset in args.presets:
        torch.manual_seed(0)
        model, _ = build_model_from_configs([preset], 80)
        model.eval()
        image = torch.rand(1, 3, args.size, args.size)
        params, _ = count_parameters(model)
        gflops = count_flops(model, args.size) / 1e9
        with tempfile.TemporaryDirectory() as folder:
            session = _onnx_session(model, image, 19 if "dcn" in preset else 17, folder)
        feeds = {"image": image.numpy()}
        with torch.no_grad():
            times = paired_times(
                {"eager": lambda: model(image), "ort": lambda: session.run(None, feeds)},  # noqa: B023
                args.repeats,
                args.warmup,
            )
        eager, ort = (1000 * statistics.median(times[name]) for name in ("eager", "ort"))
        ratio = ratio_stats(times["ort"], times["eager"])
        rows.append(f"| {preset} | {params / 1e6:.2f} M | {gflops:.1f} | {eager:.0f} | {ort:.0f} | {ratio} |")
        print(rows[-1], flush=True)
    print("\n" + header + "\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
