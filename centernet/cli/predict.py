"""``centernet predict``: detect objects in an image, a folder, a glob pattern or a video.

Images: one annotated copy of each image in the output folder, at its path relative to the source folder. Video:
an annotated ``<name>.mp4`` with the same frame rate. Always ``predictions.json`` (COCO results: ``bbox`` as x, y,
w, h in original pixels, the dataset's own ``category_id``, plus ``file_name``, the relative path (and ``frame``
for videos)); with ``--save-txt``, one YOLO txt per image or frame in ``labels/`` (``label cx cy w h score``,
relative coordinates, contiguous labels). No source file is ever overwritten (see
:mod:`centernet.cli.predict_outputs`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from centernet.cli.predict_outputs import ImageOutputs, plan_image_outputs, refuse_overwriting, write_text_checked

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
    parser.add_argument(
        "--tile", type=positive_int, default=None, metavar="SIZE",
        help="sliced inference for large images: each image at its own resolution in tiles of at most SIZE px "
        "(a multiple of 32), merged without NMS; --max-det then also bounds each tile",
    )  # fmt: skip
    parser.add_argument(
        "--overlap", type=int, default=None, metavar="PX",
        help="least overlap of neighbouring tiles in px, rounded up to a multiple of 32 (default: SIZE / 8)",
    )  # fmt: skip
    parser.add_argument(
        "--tile-merge", choices=("core", "nms"), default="core",
        help="core: each tile keeps the detections centred in its core (no NMS); nms: keep all, then class-aware "
        "NMS at --nms-iou (0.5), as box detectors' slicing does",
    )  # fmt: skip


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
        "tile": args.tile,
        "overlap": args.overlap,
        "tile_merge": args.tile_merge,
        "progress": args.tile is not None,
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
    parser.add_argument(
        "--geojson", action="store_true",
        help="also write <output>/geojson/<image>.geojson for each GeoTIFF: boxes as polygons in the raster's CRS "
        "with class and score (needs the geo extra: pip install \"centernet[geo]\")",
    )  # fmt: skip
    parser.add_argument(
        "--skip-unreadable", action="store_true",
        help="continue past images that cannot be read (counted and named at the end) instead of stopping",
    )  # fmt: skip
    return parser


def run_predict(argv: Sequence[str] = ()) -> Path:
    """Run the command; returns the path of ``predictions.json``."""
    args = build_parser().parse_args(list(argv))
    from centernet.inference.inputs import is_video, list_images

    output = Path(args.output)
    if is_video(args.source):
        if args.geojson:
            raise SystemExit("centernet: --geojson needs georeferenced images (GeoTIFF), not a video")
        video = Path(args.source)
        refuse_overwriting([video], [output / f"{video.stem}.mp4"])  # before the writer truncates it
        detector = load_detector(args)
        output.mkdir(parents=True, exist_ok=True)
        results, count, unit = _predict_video(detector, args, output)
    else:
        plans = plan_image_outputs(list_images(args.source), args.source, output)
        if args.geojson:
            _require_rasterio()
        detector = load_detector(args)
        output.mkdir(parents=True, exist_ok=True)
        if args.tile is not None or args.geojson:
            results, count, unit = _predict_one_by_one(detector, args, plans, output)
        else:
            results, count, unit = _predict_images(detector, args, plans)
    json_path = output / "predictions.json"
    write_text_checked(json_path, json.dumps(results))
    print(f"{count} {unit}, {len(results)} detections -> {output} ({json_path.name})")
    return json_path


def _predict_images(detector: Detector, args: argparse.Namespace, plans: list[ImageOutputs]) -> tuple[list, int, str]:
    from rich.progress import Progress

    from centernet.inference.inputs import read_rgb

    results: list[dict[str, object]] = []
    skipped: list[str] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("predicting", total=len(plans))
        for start in range(0, len(plans), args.batch_size):
            chunk, images = [], []
            for plan in plans[start : start + args.batch_size]:
                try:
                    images.append(read_rgb(plan.source))
                except (ValueError, OSError) as error:
                    if not args.skip_unreadable:
                        raise ValueError(f"{error} (--skip-unreadable continues past unreadable images)") from error
                    skipped.append(str(error))
                    continue
                chunk.append(plan)
            predictions = detector.predict(images, args.score_threshold, **predict_options(args)) if images else []
            for offset, (plan, image, prediction) in enumerate(zip(chunk, images, predictions, strict=True)):
                _write_outputs(args, plan, image, prediction)
                results += prediction.to_coco(start + offset, {"file_name": plan.relative})
            progress.advance(task, len(plans[start : start + args.batch_size]))
    if skipped:
        shown = "; ".join(skipped[:5]) + (f"; ... {len(skipped) - 5} more" if len(skipped) > 5 else "")
        print(f"centernet predict: skipped {len(skipped)} unreadable image(s): {shown}", file=sys.stderr)
    return results, len(plans) - len(skipped), "images"


def _require_rasterio() -> None:
    from centernet.inference.raster import GEO_EXTRA_HINT, has_rasterio

    if not has_rasterio():
        raise SystemExit(
            f"centernet: --geojson reads the georeference of GeoTIFFs with rasterio; install it: {GEO_EXTRA_HINT}"
        )


def _predict_one_by_one(
    detector: Detector, args: argparse.Namespace, plans: list[ImageOutputs], output: Path
) -> tuple[list, int, str]:
    """Large images (``--tile``) and GeoTIFFs (``--geojson``): one image at a time, given to the detector by path
    so that TIFFs are read window by window; the image is decoded whole only to draw it (skip with --no-draw)."""
    from centernet.inference.inputs import read_rgb

    results: list[dict[str, object]] = []
    skipped: list[str] = []
    for index, plan in enumerate(plans):
        try:
            georeference = _georeference(plan.source) if args.geojson else None
            prediction = detector.predict(plan.source, args.score_threshold, **predict_options(args))[0]
            image = None if args.no_draw else read_rgb(plan.source)
        except (ValueError, OSError) as error:
            if not args.skip_unreadable:
                raise ValueError(f"{error} (--skip-unreadable continues past unreadable images)") from error
            skipped.append(str(error))
            continue
        if image is not None:
            _write_outputs(args, plan, image, prediction)
        elif args.save_txt:
            write_text_checked(plan.labels, "".join(line + "\n" for line in prediction.to_yolo(with_scores=True)))
        if georeference is not None:
            from centernet.inference.geo import write_geojson

            target = output / "geojson" / Path(plan.relative).with_suffix(".geojson")
            write_geojson(target, prediction, georeference[0], georeference[1], plan.relative)
        results += prediction.to_coco(index, {"file_name": plan.relative})
    if skipped:
        print(
            f"centernet predict: skipped {len(skipped)} unreadable image(s): {'; '.join(skipped[:5])}", file=sys.stderr
        )
    return results, len(plans) - len(skipped), "images"


def _georeference(path: Path) -> tuple[tuple[float, ...], str | None]:
    """The affine transform and CRS of a raster; an error naming the file when it has none."""
    from centernet.data.imagefile import ImageFileError
    from centernet.inference.raster import RasterioSource

    source = RasterioSource(path)
    try:
        if source.transform is None:
            raise ImageFileError(
                f"{path}: no georeference (neither a CRS nor a geotransform); --geojson needs a GeoTIFF"
            )
        return source.transform, source.crs
    finally:
        source.close()


def _predict_video(detector: Detector, args: argparse.Namespace, output: Path) -> tuple[list, int, str]:
    import cv2
    from rich.progress import Progress

    from centernet.inference.inputs import read_video, video_info

    source = Path(args.source)
    info = video_info(source)
    writer, written = None, output / f"{source.stem}.mp4"
    if not args.no_draw:
        writer = cv2.VideoWriter(str(written), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, (info.width, info.height))
        if not writer.isOpened():
            raise OSError(f"{written}: cannot write the annotated video (no mp4v encoder, or no permission)")
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
                        labels = output / "labels" / f"{source.stem}_{frame_index:06d}.txt"
                        write_text_checked(labels, "".join(line + "\n" for line in lines))
                    results += prediction.to_coco(frame_index, {"file_name": source.name, "frame": frame_index})
                    frame_index += 1
                progress.advance(task, len(frames))
    finally:
        if writer is not None:
            writer.release()
    if frame_index == 0:
        raise ValueError(f"{source}: the video has no readable frames")
    if writer is not None and (not written.is_file() or written.stat().st_size == 0):
        raise OSError(f"{written}: the annotated video was not written (disk full?)")
    if info.frames and frame_index < info.frames:
        print(
            f"centernet predict: warning: {source}: the file announces {info.frames} frames but only {frame_index} "
            "could be read (a truncated or damaged video); predictions cover the frames read",
            file=sys.stderr,
        )
    return results, frame_index, "frames"


def _write_outputs(args: argparse.Namespace, plan: ImageOutputs, image: np.ndarray, prediction: Prediction) -> None:
    import cv2

    if not args.no_draw:
        plan.drawing.parent.mkdir(parents=True, exist_ok=True)
        drawing = cv2.cvtColor(prediction.draw(image), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(plan.drawing), drawing):
            raise OSError(f"{plan.drawing}: could not write the annotated image (disk full, or no permission?)")
    if args.save_txt:
        lines = prediction.to_yolo(with_scores=True)
        write_text_checked(plan.labels, "".join(line + "\n" for line in lines))


def _batches(frames: Iterator[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
