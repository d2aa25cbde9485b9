"""The tracking pipeline end to end: a tracking checkpoint from a short fit, ``Tracker`` (eager and ONNX Runtime,
same results), ``centernet track`` outputs, and validation in ``fit``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import quiet_trainer, tiny_module

from centernet.data.mot import parse_mot, read_mot_results
from centernet.data.moving_shapes import ensure_moving_shapes
from centernet.inference.tracker import Tracker, _EagerRunner, _OnnxRunner
from centernet.training.tracking_eval import TrackingEvaluation


@pytest.fixture(scope="module")
def tracking_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """A tracking-task checkpoint after two training steps (and a validation pass) on 64-px moving shapes; its
    extra-input weights are set to random values so that the previous frame visibly matters."""
    from centernet.data.tracking_datamodule import TrackingDataModule

    root = tmp_path_factory.mktemp("tracking")
    data = TrackingDataModule(
        "moving_shapes", image_size=64, batch_size=4, num_workers=0, shapes_root=str(root), shapes_train=1,
        shapes_val=1, shapes_frames=12,
    )  # fmt: skip
    module = tiny_module(num_classes=1, class_names=["shape"], category_ids=[1], task="tracking")
    evaluation = TrackingEvaluation()
    trainer = quiet_trainer(max_steps=2, limit_val_batches=1, num_sanity_val_steps=0, callbacks=[evaluation],
                            default_root_dir=str(root))  # fmt: skip
    trainer.fit(module, datamodule=data)
    assert set(evaluation.metrics) >= {"HOTA", "MOTA", "IDF1"}  # tracked the validation video at the fit's end
    written = json.loads((root / "metrics.json").read_text())
    assert {name: written[name] for name in evaluation.metrics} == evaluation.metrics
    assert written["tracking"] == {"videos": 1, "frames": 12, "global_step": 2}
    metrics = trainer.validate(module, datamodule=data, verbose=False)[0]
    assert "val/map" in metrics and "val/loss_tracking" in metrics  # per-frame detection AP and the losses
    with torch.no_grad():
        module.model.extra_inputs.conv.weight.normal_(std=0.05)
    path = root / "tracker.ckpt"
    trainer.save_checkpoint(path)
    return path, Path(data.val)


def _frames(sequences: Path) -> list[np.ndarray]:
    from centernet.inference.inputs import read_rgb

    (sequence,) = parse_mot(sequences).sequences
    return [read_rgb(frame.path) for frame in sequence.frames]


def test_tracker_streams_tracks_and_uses_the_previous_frame(tracking_checkpoint):
    path, val = tracking_checkpoint
    frames = _frames(val)
    tracker = Tracker.from_checkpoint(path, detection_threshold=0.02, new_track_threshold=0.02)
    tracks = list(tracker.track(frames))
    assert len(tracks) == len(frames)
    assert all(len(t) > 0 and (t.track_ids > 0).all() for t in tracks)
    assert len(set(tracks[0].track_ids.tolist())) == len(tracks[0])  # distinct ids within a frame
    runner = tracker.runner
    image = torch.rand(1, 3, 64, 64)
    with_prior = runner(image, torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64))
    without = runner(image, image, torch.zeros(1, 1, 64, 64))
    assert not torch.equal(with_prior["scores"], without["scores"])


def test_onnx_tracker_matches_the_eager_one(tracking_checkpoint, tmp_path: Path):
    from centernet.cli.main import main
    from centernet.model.checkpoint import load_model

    path, val = tracking_checkpoint
    loaded = load_model(path)
    onnx_path = main(["export", "--checkpoint", str(path), "--format", "onnx", "--output", str(tmp_path / "t.onnx")])
    eager, onnx = _EagerRunner(loaded.model, torch.device("cpu"), 100), _OnnxRunner(onnx_path)
    generator = torch.Generator().manual_seed(3)
    inputs = (torch.rand(1, 3, 64, 64, generator=generator), torch.rand(1, 3, 64, 64, generator=generator),
              torch.rand(1, 1, 64, 64, generator=generator))  # fmt: skip
    expected, got = eager(*inputs), onnx(*inputs)
    assert set(got) == {"boxes", "scores", "labels", "tracking"}
    assert torch.allclose(got["scores"], expected["scores"], atol=1e-5)
    # The same detections; an untrained heatmap has near-ties that may rank either way, so compare them as sets.
    keep = expected["scores"][0] > expected["scores"][0, 20] + 1e-5
    assert torch.equal(got["scores"][0] > expected["scores"][0, 20] + 1e-5, keep)

    def rows(decoded: dict) -> torch.Tensor:  # (n, 6) boxes and displacements, sorted by x1 then y1
        table = torch.cat([decoded["boxes"][0][keep], decoded["tracking"][0][keep]], dim=1)
        return table[torch.argsort(table[:, 0] * 1e4 + table[:, 1])]

    assert torch.allclose(rows(got), rows(expected), atol=1e-4)
    frames = _frames(val)
    thresholds = {"detection_threshold": 0.02, "new_track_threshold": 0.02}
    eager_tracks = list(Tracker.from_checkpoint(path, **thresholds).track(frames))
    onnx_tracks = list(Tracker.from_onnx(onnx_path, **thresholds).track(frames))
    for a, b in zip(eager_tracks, onnx_tracks, strict=True):
        assert sorted(a.track_ids.tolist()) == sorted(b.track_ids.tolist())
        order_a, order_b = np.argsort(a.track_ids), np.argsort(b.track_ids)
        assert np.allclose(a.boxes[order_a], b.boxes[order_b], atol=1e-3)


def test_track_command_writes_mot_coco_video_and_a_video(tracking_checkpoint, tmp_path: Path):
    from centernet.cli.main import main

    path, val = tracking_checkpoint
    (sequence,) = parse_mot(val).sequences
    frames_dir = sequence.frames[0].path.parent
    out = main(["track", "--source", str(frames_dir), "--checkpoint", str(path), "--out", str(tmp_path),
                "--detection-threshold", "0.02", "--new-track-threshold", "0.02"])  # fmt: skip
    results = read_mot_results(out / "img1.txt")
    assert sorted(results) == list(range(1, len(sequence) + 1))
    coco = json.loads((out / "img1.json").read_text())
    assert len(coco["images"]) == len(sequence) and coco["videos"] == [{"id": 1, "name": "img1"}]
    assert {a["track_id"] for a in coco["annotations"]} == {int(i) for ids, _, _ in results.values() for i in ids}
    import cv2

    capture = cv2.VideoCapture(str(out / "img1.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(sequence)
    capture.release()


def test_ensure_moving_shapes_is_cached(tmp_path: Path):
    first = ensure_moving_shapes(tmp_path, num_train=1, num_val=1, num_frames=3, image_size=32)
    stamp = (first.train / "shapes-train-00" / "gt" / "gt.txt").stat().st_mtime_ns
    again = ensure_moving_shapes(tmp_path, num_train=1, num_val=1, num_frames=3, image_size=32)
    assert again == first and (again.train / "shapes-train-00" / "gt" / "gt.txt").stat().st_mtime_ns == stamp


def test_validate_task_track_writes_metrics(tracking_checkpoint, tmp_path: Path):
    from centernet.cli.main import main

    path, val = tracking_checkpoint
    payload = main(["validate", "--task", "track", "--checkpoint", str(path), "--mot", str(val), "--output",
                    str(tmp_path)])  # fmt: skip
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["MOTA"] == payload["MOTA"] and 0 <= written["HOTA"] <= 1 and "IDF1" in written
