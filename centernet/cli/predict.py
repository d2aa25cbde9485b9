"""``centernet predict``: detect objects in an image, a folder, a glob pattern or a video.

Images: one annotated copy of each image in the output folder. Video: an annotated ``<name>.mp4`` with the same
frame rate. Always ``predictions.json`` (COCO results: ``bbox`` as x, y, w, h in original pixels, the dataset's
own ``category_id``, plus ``file_name`` (and ``frame`` for videos)); with ``--save-txt``, one YOLO txt per image
or frame in ``labels/`` (``label cx cy w h score``, relative coordinates, contiguous labels).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch, OpenCV and the model load when the command runs: `--help` answers at once
    import numpy as np

    from centernet.inference import Detector, Prediction

__all__ = [
    "add_inference_arguments",
    "build_parser",
    "load_detector",
    "positive_int",
    "predict_options",
    "run_predict",
]


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (a batch size, an input size, a number of detections)."""
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``predict`` and ``validate``: the model, its backend and the test-time settings."""
    parser.add_argument(
        "--checkpoint", "--model", dest="checkpoint", required=True,
        help="a `centernet fit` checkpoint (.ckpt) or a `centernet export` file (.onnx, .torchscript)",
    )  # fmt: skip
    parser.add_argument(
        "--backend", choices=("auto", "eager", "onnxruntime", "torchscript"), default="auto",
        help="auto: for a .ckpt, ONNX Runtime on the CPU (the fastest there; exported once and cached) unless "
        "--flip needs the eager model, eager elsewhere; onnxruntime for .onnx, torchscript for "
        ".torchscript/.pt",
    )  # fmt: skip
    parser.add_argument(
        "--image-size", type=positive_int, default=None, help="network input side (default: training size)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per forward pass")
    parser.add_argument(
        "--max-det", type=positive_int, default=None,
        help="detections kept per image (default: the model's max_detections, as it was trained)",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--half", action="store_true", help="float16 inference (CUDA only)")
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None,
        help="channels-last eager model (default: on the CPU, where it is faster)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-resolution", action="store_true", help="each image at its own size padded to a multiple of 32"
    )
    parser.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation (eager only)")
    parser.add_argument(
        "--scales", type=float, nargs="+", default=None, help="multi-scale test-time augmentation, e.g. 0.75 1 1.25"
    )
    parser.add_argument("--nms-iou", type=float, default=None, help="class-aware NMS after top-K at this IoU")


def load_detector(args: argparse.Namespace) -> Detector:
    """The detector the shared options describe; ``--backend`` must agree with the file's suffix.

    A checkpoint runs on the eager model or, exported on the fly (cached), on ONNX Runtime; exported files run on
    the runtime of their format.
    """
    from centernet.inference import Detector

    path = Path(args.checkpoint)
    suffix = path.suffix.lower()
    if suffix == ".ckpt" and args.backend in ("auto", "eager", "onnxruntime"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        if _checkpoint_backend(args) == "onnxruntime":
            try:
                return Detector.from_checkpoint(
                    path, args.device, args.image_size, backend="onnxruntime", max_detections=args.max_det
                )
            except Exception as error:  # noqa: BLE001 - whatever stops the export, the eager model still runs
                if args.backend == "onnxruntime":
                    raise
                print(f"centernet: no ONNX export of {path} ({error}); running the eager model", file=sys.stderr)
        return Detector.from_checkpoint(
            path, args.device, args.image_size, args.half, args.channels_last, max_detections=args.max_det
        )
    expected = {".ckpt": "eager", ".onnx": "onnxruntime"}.get(suffix, "torchscript")
    if args.backend not in ("auto", expected):
        raise SystemExit(
            f"centernet: --backend {args.backend} cannot run {path} ({suffix} files run on {expected}); "
            "export the checkpoint with `centernet export` first"
        )
    if args.half:
        raise SystemExit(f"centernet: --half applies to the eager backend only, not to {path}")
    return Detector.from_exported(path, args.device, args.image_size, args.max_det)


def _checkpoint_backend(args: argparse.Namespace) -> str:
    """The backend ``--backend auto|onnxruntime`` means for a checkpoint.

    ``auto`` is ONNX Runtime where it is the fastest (CPU, see ``benchmarks/compare.py``) and the options allow
    it: ``--flip`` needs the eager model's raw maps, ``--half`` and ``--channels-last`` are eager settings.
    """
    eager_only = {"--flip": args.flip, "--half": args.half, "--channels-last": args.channels_last is not None}
    if args.backend == "eager":
        return "eager"
    if args.backend == "onnxruntime":
        used = [option for option, value in eager_only.items() if value]
        if used:
            raise SystemExit(f"centernet: {', '.join(used)} cannot run on onnxruntime; use --backend eager")
        return "onnxruntime"
    if not args.device.startswith("cpu") or any(eager_only.values()):
        return "eager"
    return "onnxruntime" if importlib.util.find_spec("onnxruntime") else "eager"


def predict_options(args: argparse.Namespace) -> dict[str, object]:
    """Keyword arguments of ``Detector.predict`` from the shared options."""
    return {
        "batch_size": args.batch_size,
        "keep_resolution": args.keep_resolution,
        "flip": args.flip,
        "scales": args.scales,
        "nms_iou": args.nms_iou,
        "max_detections": args.max_det,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centernet predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_inference_arguments(parser)
    parser.add_argument("--source", required=True, help="an image, a folder, a glob pattern ('data/*.jpg') or a video")
    parser.add_argument("--output", default="runs/predict", help="folder for the annotated images/video and json")
    parser.add_argument(
        "--conf", "--score-threshold", dest="score_threshold", type=float, default=0.3,
        help="keep detections scoring above this",
    )  # fmt: skip
    parser.add_argument("--save-txt", action="store_true", help="also write YOLO txt files into <output>/labels")
    parser.add_argument("--no-draw", action="store_true", help="do not write annotated images or video")
    return parser


def run_predict(argv: Sequence[str] = ()) -> Path:
    """Run the command; returns the path of ``predictions.json``."""
    args = build_parser().parse_args(list(argv))
    detector = load_detector(args)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    if args.save_txt:
        (output / "labels").mkdir(exist_ok=True)
    from centernet.inference.inputs import is_video

    if is_video(args.source):
        results, count, unit = _predict_video(detector, args, output)
    else:
        results, count, unit = _predict_images(detector, args, output)
    json_path = output / "predictions.json"
    json_path.write_text(json.dumps(results))
    print(f"{count} {unit}, {len(results)} detections -> {output} ({json_path.name})")
    return json_path


def _predict_images(detector: Detector, args: argparse.Namespace, output: Path) -> tuple[list, int, str]:
    from rich.progress import Progress

    from centernet.inference.inputs import list_images, read_rgb

    paths = list_images(args.source)
    results: list[dict[str, object]] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("predicting", total=len(paths))
        for start in range(0, len(paths), args.batch_size):
            chunk = paths[start : start + args.batch_size]
            images = [read_rgb(path) for path in chunk]
            predictions = detector.predict(images, args.score_threshold, **predict_options(args))
            for offset, (path, image, prediction) in enumerate(zip(chunk, images, predictions, strict=True)):
                _write_outputs(args, output, path.stem, image, prediction)
                results += prediction.to_coco(start + offset, {"file_name": path.name})
            progress.advance(task, len(chunk))
    return results, len(paths), "images"


def _predict_video(detector: Detector, args: argparse.Namespace, output: Path) -> tuple[list, int, str]:
    import cv2
    from rich.progress import Progress

    from centernet.inference.inputs import read_video, video_info

    source = Path(args.source)
    info = video_info(source)
    writer = None
    if not args.no_draw:
        writer = cv2.VideoWriter(
            str(output / f"{source.stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, (info.width, info.height)
        )
        if not writer.isOpened():
            raise RuntimeError(f"cannot write {output / (source.stem + '.mp4')} (OpenCV has no mp4v encoder)")
    results: list[dict[str, object]] = []
    frame_index = 0
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("predicting frames", total=info.frames or None)
            for frames in _batches(read_video(source), args.batch_size):
                predictions = detector.predict(frames, args.score_threshold, **predict_options(args))
                for frame, prediction in zip(frames, predictions, strict=True):
                    if writer is not None:
                        writer.write(cv2.cvtColor(prediction.draw(frame), cv2.COLOR_RGB2BGR))
                    if args.save_txt:
                        lines = prediction.to_yolo(with_scores=True)
                        (output / "labels" / f"{source.stem}_{frame_index:06d}.txt").write_text(
                            "".join(line + "\n" for line in lines)
                        )
                    results += prediction.to_coco(frame_index, {"file_name": source.name, "frame": frame_index})
                    frame_index += 1
                progress.advance(task, len(frames))
    finally:
        if writer is not None:
            writer.release()
    if frame_index == 0:
        raise ValueError(f"{source}: the video has no readable frames")
    return results, frame_index, "frames"


def _write_outputs(args: argparse.Namespace, output: Path, stem: str, image: np.ndarray, prediction: Prediction):
    import cv2

    if not args.no_draw:
        cv2.imwrite(str(output / f"{stem}.png"), cv2.cvtColor(prediction.draw(image), cv2.COLOR_RGB2BGR))
    if args.save_txt:
        lines = prediction.to_yolo(with_scores=True)
        (output / "labels" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))


def _batches(frames: Iterator[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
