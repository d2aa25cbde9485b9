"""Video formats (MOTChallenge, COCO-video) and their validation policy, training pairs, the prior heatmap and the
moving-shapes videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from centernet.data.coco_video import parse_coco_video, write_coco_video
from centernet.data.mot import parse_mot, read_mot_results, write_mot_results, write_mot_sequence
from centernet.data.moving_shapes import ensure_moving_shapes, generate_moving_shapes
from centernet.data.prior_heatmap import PriorNoise, noisy_prior_boxes, render_prior_heatmap
from centernet.data.records import DatasetError
from centernet.data.tracking_pairs import VideoPairs, collate_tracking


def _frames(count: int, size: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(count)]


# (frame, id, x1, y1, x2, y2, class, visibility): object 1 moves right, object 2 appears in frame 2
_ROWS = [
    (1, 1, 10.0, 12.0, 20.0, 30.0, 1, 1.0),
    (2, 1, 14.0, 12.0, 24.0, 30.0, 1, 1.0),
    (2, 2, 40.0, 40.0, 50.5, 52.25, 1, 0.8),
    (3, 1, 18.0, 13.0, 28.0, 31.0, 1, 1.0),
]


def test_mot_sequence_round_trip(tmp_path: Path):
    write_mot_sequence(tmp_path / "seq", _frames(3), _ROWS)
    source = parse_mot(tmp_path / "seq", class_names=["thing"])
    (sequence,) = source.sequences
    assert (sequence.width, sequence.height, len(sequence)) == (64, 64, 3)
    assert [frame.frame for frame in sequence.frames] == [1, 2, 3]
    assert sequence.frames[1].track_ids.tolist() == [1, 2]
    assert np.allclose(sequence.frames[1].boxes[1], [40.0, 40.0, 50.5, 52.25])
    assert source.class_names == ["thing"]
    assert len({frame.image_id for frame in sequence.frames}) == 3


def test_mot_results_round_trip(tmp_path: Path):
    rows = [(2, 7, np.array([3.5, 4.0, 13.5, 24.0]), 0.9), (1, 7, np.array([1.0, 2.0, 11.0, 22.0]), 0.8)]
    write_mot_results(tmp_path / "res.txt", rows)
    lines = (tmp_path / "res.txt").read_text().splitlines()
    assert lines[0] == "1,7,2.00,3.00,10.00,20.00,0.8000,-1,-1,-1"  # MOTChallenge's 1-based top-left corner
    read = read_mot_results(tmp_path / "res.txt")
    assert np.allclose(read[2][1], [[3.5, 4.0, 13.5, 24.0]]) and read[2][0].tolist() == [7]


def test_mot_policy(tmp_path: Path):
    folder = tmp_path / "seq"
    write_mot_sequence(folder, _frames(3), _ROWS)
    gt = folder / "gt" / "gt.txt"
    lines = gt.read_text().splitlines()
    # Lines out of frame order: the same sequence.
    gt.write_text("\n".join(reversed(lines)) + "\n")
    assert parse_mot(folder).sequences[0].frames[1].track_ids.tolist() == [2, 1]
    # A "consider" flag of 0 is not an object; a box half outside is clipped, one fully outside dropped.
    gt.write_text("\n".join([*lines, "3,5,1,1,4,4,0,1,1", "3,6,60,60,20,20,1,1,1", "3,8,90,90,5,5,1,1,1"]) + "\n")
    source = parse_mot(folder)
    assert source.ignored == 1
    assert source.sequences[0].frames[2].track_ids.tolist() == [1, 6]
    assert np.allclose(source.sequences[0].frames[2].boxes[1], [59, 59, 64, 64])
    # A track id twice in one frame: an error naming the file, line and frame.
    gt.write_text("\n".join([*lines, "2,1,30,30,5,5,1,1,1"]) + "\n")
    with pytest.raises(DatasetError, match=r"gt\.txt:5: track id 1 is used twice in frame 2"):
        parse_mot(folder)
    # A missing frame.
    gt.write_text("\n".join(lines) + "\n")
    (folder / "img1" / "000002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"000002\.jpg: missing frame 2 of 3"):
        parse_mot(folder)


def _coco_video(tmp_path: Path) -> Path:
    for index, image in enumerate(_frames(3, size=48)):
        import cv2

        cv2.imwrite(str(tmp_path / f"f{index}.png"), image)
    frames = [
        ("f2.png", [(4, np.array([5.0, 5, 15, 25]), 0, 1.0)]),
        ("f0.png", [(4, np.array([1.0, 5, 11, 25]), 0, 1.0), (9, np.array([30.0, 30, 40, 40]), 1, 1.0)]),
        ("f1.png", [(4, np.array([3.0, 5, 13, 25]), 0, 1.0)]),
    ]
    write_coco_video(tmp_path / "video.json", [("walk", 48, 48, frames)], ["a", "b"], [3, 7])
    return tmp_path / "video.json"


def test_coco_video_reads_sorts_by_frame_and_keeps_gaps(tmp_path: Path):
    path = _coco_video(tmp_path)
    data = json.loads(path.read_text())
    # Frame ids 3, 1, 2 (listed out of order) -> sorted; then make a gap: frame 2 becomes 5.
    for image, frame_id in zip(data["images"], [3, 1, 5], strict=True):
        image["frame_id"] = frame_id
    path.write_text(json.dumps(data))
    source = parse_coco_video(path, tmp_path)
    (sequence,) = source.sequences
    assert [frame.frame for frame in sequence.frames] == [1, 3, 5]
    assert [frame.path.name for frame in sequence.frames] == ["f0.png", "f2.png", "f1.png"]
    assert sequence.gaps == [(1, 3), (3, 5)]
    assert sequence.frames[0].labels.tolist() == [0, 1] and source.category_ids == [3, 7]


def test_coco_video_policy_errors(tmp_path: Path):
    path = _coco_video(tmp_path)
    data = json.loads(path.read_text())
    data["images"][1]["frame_id"] = data["images"][0]["frame_id"]
    data["annotations"].append({**data["annotations"][0], "id": 99})
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError) as error:
        parse_coco_video(path, tmp_path)
    text = str(error.value)
    assert "frame_id 1 of video 1 again" in text
    assert "annotation id=99: track id 4 is used twice in image id=1" in text


def test_prior_heatmap_and_its_noise():
    boxes = np.array([[10.0, 10, 30, 40], [40, 5, 50, 15]])
    heatmap = render_prior_heatmap(boxes, (64, 64))
    assert heatmap[25, 20] == 1.0 and heatmap[10, 45] == 1.0  # peaks at the centres
    assert heatmap[60, 60] == 0.0 and heatmap.max() == 1.0
    rng = np.random.default_rng(0)
    assert np.array_equal(noisy_prior_boxes(rng, boxes, PriorNoise(0, 0, 0)), boxes)
    assert len(noisy_prior_boxes(rng, boxes, PriorNoise(0, 1, 0))) == 0
    assert len(noisy_prior_boxes(rng, boxes, PriorNoise(0, 0, 1))) == 4
    jittered = noisy_prior_boxes(rng, np.repeat(boxes[:1], 2000, 0), PriorNoise(0.1, 0, 0))
    assert abs(np.std(jittered[:, 0] - 10) - 2.0) < 0.2  # 0.1 x the 20-px width


def test_video_pairs_match_objects_by_track_id(tmp_path: Path):
    write_mot_sequence(tmp_path / "seq", _frames(3), _ROWS)
    (sequence,) = parse_mot(tmp_path / "seq").sequences
    pairs = VideoPairs([sequence], image_size=128, train=False)  # 64 px frames -> x2
    sample = pairs[1]  # frame 2, previous frame 1
    assert sample["track_mask"].tolist() == [1.0, 0.0]  # object 2 is new
    assert torch.allclose(sample["prev_centers"][0] * 128, torch.tensor([15.0, 21.0]) * 2)
    assert torch.allclose(sample["bboxes"][0, :2] * 128, torch.tensor([19.0, 21.0]) * 2)
    assert sample["prev_heatmap"][0, 42, 30] == 1.0  # the previous frame's object, drawn at its centre
    # In training, the joint flip / scale / shift keeps the displacement's length (scale 1, no shift).
    train = VideoPairs([sequence], image_size=128, train=True, max_gap=1, scale_range=(1, 1), shift=0.0)
    for seed in range(4):
        train.set_random_seed(seed)
        sample = train[2]  # frame 3; its only neighbour within max_gap=1 is frame 2
        motion = (sample["prev_centers"][0] - sample["bboxes"][0, :2]) * 128
        assert torch.allclose(motion.abs(), torch.tensor([8.0, 2.0]), atol=1e-4)
    batch = collate_tracking([pairs[0], pairs[1]])
    assert batch["prev_image"].shape == (2, 3, 128, 128) and batch["prev_heatmap"].shape == (2, 1, 128, 128)
    assert batch["prev_centers"].shape == (2, 2, 2) and batch["track_mask"].tolist() == [[1.0, 0.0], [1.0, 0.0]]
    # The first frame is its own previous frame (no motion), as a tracker starts.
    assert torch.equal(batch["prev_centers"][0, 0], batch["bboxes"][0, 0, :2])


def test_image_pairs_simulate_motion_from_one_image(tmp_path: Path):
    import cv2

    from centernet.data.records import DetectionSource, ImageRecord
    from centernet.data.tracking_pairs import ImagePairs

    cv2.imwrite(str(tmp_path / "a.png"), _frames(1)[0])
    boxes = np.array([[10.0, 10, 30, 30], [35, 20, 60, 50]])
    record = ImageRecord(
        tmp_path / "a.png",
        1,
        64,
        64,
        boxes,
        np.array([0, 0]),
        np.zeros(2, np.int64),
        np.full(2, 400.0, np.float32),
        ["a", "b"],
        tmp_path,
    )
    pairs = ImagePairs(DetectionSource([record], ["x"], [1], "test"), image_size=64, train=False)
    sample = pairs[0]
    assert sample["track_mask"].tolist() == [1.0, 1.0]
    motion = (sample["prev_centers"] - sample["bboxes"][:, :2]) * 64
    assert motion.abs().max() < 0.05 * 64 + 0.06 * 32 + 1e-4 and motion.abs().max() > 0


def test_moving_shapes_have_entering_occluded_and_turning_objects(tmp_path: Path):
    frames, rows = generate_moving_shapes(seed=0, split="train", index=0, num_frames=150)
    again = generate_moving_shapes(seed=0, split="train", index=0, num_frames=150)
    assert np.array_equal(frames[-1], again[0][-1]) and rows == again[1]
    first_seen, seen_in = {}, {}
    for frame, track_id, *_ in rows:
        first_seen.setdefault(track_id, frame)
        seen_in.setdefault(track_id, []).append(frame)
    assert any(frame > 1 for frame in first_seen.values())  # objects enter
    # Some object is hidden for a while and annotated again (occlusion or a brief exit).
    assert any(np.diff(frames_of).max() > 1 for frames_of in seen_in.values() if len(frames_of) > 1)
    paths = ensure_moving_shapes(tmp_path, num_train=1, num_val=1, num_frames=20, image_size=64)
    assert len(parse_mot(paths.val).sequences[0]) == 20


def _still_coco(tmp_path: Path, category: str = "shape") -> tuple[Path, Path]:
    """Two 64 px still images with two boxes each, as a COCO detection json."""
    import cv2

    folder = tmp_path / "still"
    folder.mkdir()
    images, annotations = [], []
    for i, frame in enumerate(_frames(2), start=1):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
        images.append({"id": i, "file_name": f"{i}.png", "width": 64, "height": 64})
        for j, (x, y) in enumerate([(8, 8), (36, 30)]):
            annotations.append({"id": 10 * i + j, "image_id": i, "category_id": 1, "bbox": [x, y, 20, 20],
                                "area": 400, "iscrowd": 0})  # fmt: skip
    path = tmp_path / "still.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": category}]}))  # fmt: skip
    return folder, path


def test_data_module_trains_on_still_images_with_or_without_videos(tmp_path: Path):
    from centernet.data.sampler import SeededSamples
    from centernet.data.tracking_datamodule import TrackingDataModule

    images, annotations = _still_coco(tmp_path)
    shapes = {"shapes_root": str(tmp_path / "cache"), "shapes_train": 1, "shapes_val": 1, "shapes_frames": 10}
    mixed = TrackingDataModule("moving_shapes", image_size=64, batch_size=4, num_workers=0, still_images=str(images),
                               still_annotations=str(annotations), **shapes)  # fmt: skip
    mixed.setup("fit")
    video_pairs = 10  # one 10-frame video: a pair per frame
    assert len(mixed.train_dataset) == video_pairs + 2
    still = SeededSamples(mixed.train_dataset)[(video_pairs + 1, 3)]  # the second still image, seeded
    assert still["track_mask"].tolist() == [1.0, 1.0]  # every object is in both frames of a simulated pair
    batch = next(iter(mixed.train_dataloader()))
    assert batch["prev_image"].shape == (4, 3, 64, 64)

    # Still images alone (CenterTrack's static-image training), scored on MOT validation videos.
    val = mixed.val
    alone = TrackingDataModule("mot", val=val, class_names=["shape"], image_size=64, batch_size=2, num_workers=0,
                               still_images=str(images), still_annotations=str(annotations))  # fmt: skip
    alone.setup("fit")
    assert len(alone.train_dataset) == 2 and alone.class_names == ["shape"]


def test_still_images_must_name_the_videos_classes(tmp_path: Path):
    from centernet.data.tracking_datamodule import TrackingDataModule

    images, annotations = _still_coco(tmp_path, category="person")
    shapes = {"shapes_root": str(tmp_path / "cache"), "shapes_train": 1, "shapes_val": 1, "shapes_frames": 10}
    with pytest.raises(ValueError, match=r"still_annotations .*\['person'\].*\['shape'\]"):
        TrackingDataModule("moving_shapes", image_size=64, still_images=str(images), still_annotations=str(annotations),
                           **shapes)  # fmt: skip
    with pytest.raises(ValueError, match="still_images and still_annotations go together"):
        TrackingDataModule("moving_shapes", image_size=64, still_annotations=str(annotations), **shapes)
