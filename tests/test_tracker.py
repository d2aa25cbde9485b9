"""The tracking pipeline end to end: a tracking checkpoint from a short fit, ``Tracker`` (eager and ONNX Runtime,
same results; several videos batched == each alone), ``centernet track`` outputs, and validation in ``fit``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import quiet_trainer, tiny_module

from centernet.data.mot import parse_mot, read_mot_results, read_seqinfo
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
    name = frames_dir.parent.name  # the img1/ of a MOTChallenge sequence: its outputs carry the sequence's name
    results = read_mot_results(out / f"{name}.txt")
    assert sorted(results) == list(range(1, len(sequence) + 1))
    coco = json.loads((out / f"{name}.json").read_text())
    assert len(coco["images"]) == len(sequence) and coco["videos"] == [{"id": 1, "name": name}]
    assert {a["track_id"] for a in coco["annotations"]} == {int(i) for ids, _, _ in results.values() for i in ids}
    import cv2

    capture = cv2.VideoCapture(str(out / f"{name}.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(sequence)
    capture.release()


def _three_videos(frames: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Three videos of different lengths (5, 3 and 7 frames) and frame sizes (64 x 64, 48 x 80, 96 x 72) cut from
    one 64-px sequence: the second ends first, the first next, the third goes on alone."""
    import cv2

    return [
        frames[0:5],
        [cv2.resize(frame, (80, 48)) for frame in frames[2:5]],
        [cv2.resize(frame, (72, 96)) for frame in frames[3:10]],
    ]


def _assert_same_tracks(got: list, expected: list, where: str) -> None:
    """Per frame: the same ids, labels and boxes, scores within 1e-4 (rows compared in track-id order)."""
    assert len(got) == len(expected), where
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        order_a, order_b = np.argsort(a.track_ids), np.argsort(b.track_ids)
        assert a.track_ids[order_a].tolist() == b.track_ids[order_b].tolist(), f"{where}, frame {index}"
        assert a.labels[order_a].tolist() == b.labels[order_b].tolist(), f"{where}, frame {index}"
        assert np.allclose(a.boxes[order_a], b.boxes[order_b], atol=1e-4), f"{where}, frame {index}"
        assert np.allclose(a.scores[order_a], b.scores[order_b], atol=1e-4), f"{where}, frame {index}"


def _alone(tracker: Tracker, videos: list[list[np.ndarray]]) -> list[list]:
    """Each video tracked alone with ``track``."""
    alone = [list(tracker.track(video)) for video in videos]
    assert tracker.association_seconds == tracker.online.association_seconds > 0  # the last video's
    assert all(len(tracks) > 0 for video in alone for tracks in video[1:])  # something to associate
    return alone


def _batched_equals_alone(tracker: Tracker, videos: list[list[np.ndarray]], alone: list, batch_size: int) -> list[int]:
    """Track ``videos`` with ``track_many``; assert the tracks of every frame are those of the video ``alone``, and
    return the batch size of every forward pass."""
    sizes: list[int] = []
    runner = tracker.runner

    def counting(image, prev_image, prev_heatmap):
        sizes.append(image.shape[0])
        return runner(image, prev_image, prev_heatmap)

    tracker.runner = counting
    batched: list[list] = [[] for _ in videos]
    for video_index, frame_index, tracks in tracker.track_many(videos, batch_size=batch_size):
        assert frame_index == len(batched[video_index])  # each video's frames in order
        batched[video_index].append(tracks)
    tracker.runner = runner
    for index, (got, expected) in enumerate(zip(batched, alone, strict=True)):
        _assert_same_tracks(got, expected, f"video {index}, batch {batch_size}")
        assert min(tracks.track_ids.min() for tracks in got if len(tracks)) == 1  # ids start at 1 in every video
    states = tracker.video_states
    assert len(states) == len(videos) and all(state.association_seconds > 0 for state in states)
    assert tracker.association_seconds == pytest.approx(sum(state.association_seconds for state in states))
    return sizes


def test_track_many_equals_tracking_each_video_alone(tracking_checkpoint):
    path, val = tracking_checkpoint
    videos = _three_videos(_frames(val))
    tracker = Tracker.from_checkpoint(path, detection_threshold=0.02, new_track_threshold=0.02)
    alone = _alone(tracker, videos)
    # Batch 3: all three in lockstep; the 3-frame video ends after pass 3, the 5-frame one after pass 5, and the
    # 7-frame one goes on alone: its frames 3 to 6, tracked with the others gone, are still its results alone.
    assert _batched_equals_alone(tracker, videos, alone, 3) == [3, 3, 3, 2, 2, 1, 1]
    # Batch 2: the third video waits for the second to end, then takes its place.
    assert _batched_equals_alone(tracker, videos, alone, 2) == [2, 2, 2, 2, 2, 1, 1, 1, 1, 1]
    # track() after track_many: a fresh video again.
    _assert_same_tracks(list(tracker.track(videos[1])), alone[1], "track after track_many")
    with pytest.raises(ValueError, match="video 1, frame 1: frame of size"):
        list(tracker.track_many([videos[0], [videos[1][0], videos[0][1]]]))
    with pytest.raises(ValueError, match="batch_size"):
        next(tracker.track_many(videos, batch_size=0))


def test_onnx_track_many_equals_tracking_alone_with_dynamic_and_fixed_batch(tracking_checkpoint, tmp_path: Path):
    """A ``--dynamic`` export takes the whole batch in one run; a fixed-batch one (here 2, so that three videos need
    a padded second chunk) runs in chunks; both give each video's results alone, and the eager ones."""
    from centernet.inference.export import export_onnx
    from centernet.model.checkpoint import load_model

    path, val = tracking_checkpoint
    loaded = load_model(path)
    videos = _three_videos(_frames(val))
    thresholds = {"detection_threshold": 0.02, "new_track_threshold": 0.02}
    trackers = {}
    for name, options in {"dynamic": {"dynamic": True}, "fixed": {"batch_size": 2}}.items():
        onnx_path = export_onnx(loaded.model, tmp_path / f"{name}.onnx", loaded.class_names, loaded.category_ids, 64,
                                **options)  # fmt: skip
        trackers[name] = Tracker.from_onnx(onnx_path, **thresholds)
    assert trackers["dynamic"].runner.batch_size is None and trackers["fixed"].runner.batch_size == 2
    alone = _alone(trackers["dynamic"], videos)
    assert _batched_equals_alone(trackers["dynamic"], videos, alone, 3) == [3, 3, 3, 2, 2, 1, 1]
    assert _batched_equals_alone(trackers["fixed"], videos, alone, 3) == [3, 3, 3, 2, 2, 1, 1]
    eager = Tracker.from_checkpoint(path, **thresholds)
    for video, exported in zip(videos, alone, strict=True):  # exported == eager, as in the test above
        for a, b in zip(exported, eager.track(video), strict=True):
            assert sorted(a.track_ids.tolist()) == sorted(b.track_ids.tolist())
            assert np.allclose(a.boxes[np.argsort(a.track_ids)], b.boxes[np.argsort(b.track_ids)], atol=1e-3)


def test_track_command_on_two_sources_writes_what_two_separate_runs_write(tracking_checkpoint, tmp_path: Path):
    import cv2

    from centernet.cli.main import main

    path, val = tracking_checkpoint
    frames = _frames(val)
    sources = [tmp_path / "clip_a", tmp_path / "clip_b"]
    for folder, video in zip(sources, (frames[:5], [cv2.resize(f, (80, 48)) for f in frames[2:5]]), strict=True):
        folder.mkdir()
        for index, frame in enumerate(video):
            cv2.imwrite(str(folder / f"{index:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    common = ["--checkpoint", str(path), "--detection-threshold", "0.02", "--new-track-threshold", "0.02"]
    together = main(["track", "--source", *map(str, sources), "--out", str(tmp_path / "together"), "--batch-size", "2",
                     *common])  # fmt: skip
    for source in sources:
        main(["track", "--source", str(source), "--out", str(tmp_path / source.name), *common])
    for source, count in zip(sources, (5, 3), strict=True):
        alone = tmp_path / source.name
        for suffix in (".txt", ".json"):
            written = (together / f"{source.name}{suffix}").read_text()
            assert written == (alone / f"{source.name}{suffix}").read_text(), f"{source.name}{suffix}"
        assert len(read_mot_results(together / f"{source.name}.txt")) == count
        videos = [cv2.VideoCapture(str(folder / f"{source.name}.mp4")) for folder in (together, alone)]
        assert [int(v.get(cv2.CAP_PROP_FRAME_COUNT)) for v in videos] == [count, count]
        for _ in range(count):  # the same drawings
            (ok_a, a), (ok_b, b) = (v.read() for v in videos)
            assert ok_a and ok_b and np.array_equal(a, b)
        for video in videos:
            video.release()
    with pytest.raises(ValueError, match="would both write"):
        main(["track", "--source", str(sources[0]), str(sources[0]), "--out", str(tmp_path / "twice"), *common])


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


def test_track_cli_takes_motchallenge_sequence_folders(tracking_checkpoint, tmp_path: Path):
    """A sequence folder (seqinfo.ini) or its img1/ is tracked under the sequence's name at its frame rate, so two
    sequences' img1/ folders do not collide; the results equal those of the frames given as a plain folder."""
    import cv2

    from centernet.cli.main import main

    path, val = tracking_checkpoint
    (sequence,) = sorted(p for p in val.iterdir() if (p / "seqinfo.ini").is_file())
    common = ["--checkpoint", str(path), "--detection-threshold", "0.02", "--new-track-threshold", "0.02"]
    out = main(["track", "--source", str(sequence), "--out", str(tmp_path / "a"), *common])
    assert sorted(p.name for p in out.iterdir()) == [f"{sequence.name}{s}" for s in (".json", ".mp4", ".txt")]
    frames_of = main(["track", "--source", str(sequence / "img1"), "--out", str(tmp_path / "c"), "--no-video", *common])
    assert (frames_of / f"{sequence.name}.txt").read_text() == (out / f"{sequence.name}.txt").read_text()
    frame_rate = float(read_seqinfo(sequence).get("frameRate", 25))
    video = cv2.VideoCapture(str(out / f"{sequence.name}.mp4"))
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(frame_rate)
    video.release()
    plain = tmp_path / "frames"
    plain.mkdir()
    for frame in sorted((sequence / "img1").iterdir()):
        (plain / frame.name).write_bytes(frame.read_bytes())
    main(["track", "--source", str(plain), "--out", str(tmp_path / "b"), "--no-video", *common])
    assert (out / f"{sequence.name}.txt").read_text() == (tmp_path / "b" / "frames.txt").read_text()
