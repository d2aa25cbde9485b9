"""COCO-video json (the layout of CenterTrack's and TAO's converted datasets): reading and writing.

::

    {"videos": [{"id": 1, "name": "walk"}],
     "images": [{"id": 7, "file_name": "walk/000001.jpg", "video_id": 1, "frame_id": 1, "width": 640, "height": 480}],
     "annotations": [{"id": 3, "image_id": 7, "category_id": 1, "bbox": [x, y, w, h], "track_id": 12}],
     "categories": [{"id": 1, "name": "person"}]}

Boxes are COCO's (continuous pixels, first pixel's corner at 0); ``frame_id`` counts from 1 within a video. Written
results add ``score`` to each annotation. The validation policy is :mod:`centernet.data.video_records`'.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from centernet.data.records import DatasetError, Problems, leaves_folder, read_annotation_text
from centernet.data.video_records import VideoFrame, VideoSequence, VideoSource, clip_or_drop

__all__ = ["parse_coco_video", "write_coco_video"]


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_annotation_text(path))
    except json.JSONDecodeError as error:
        raise DatasetError(f"COCO-video json {path}", [f"{path}: not JSON ({error})"]) from error
    missing = [key for key in ("videos", "images", "annotations", "categories") if key not in data]
    if missing:
        raise DatasetError(
            f"COCO-video json {path}", [f"{path}: no {', '.join(missing)} (a COCO-video json has all four)"]
        )
    return data


def parse_coco_video(json_path: str | Path, image_dir: str | Path) -> VideoSource:
    """Read a COCO-video json whose ``file_name`` s are relative to ``image_dir``.

    Raises:
        DatasetError: listing every problem (each names the json and the image or annotation id).
    """
    path, image_dir = Path(json_path), Path(image_dir)
    data = _load(path)
    problems = Problems()
    categories = sorted(data["categories"], key=lambda c: int(c["id"]))
    label_of = {int(c["id"]): label for label, c in enumerate(categories)}
    videos = {int(v["id"]): v for v in data["videos"]}
    frames_of: dict[int, dict[int, VideoFrame]] = {video_id: {} for video_id in videos}
    size_of: dict[int, tuple[int, int]] = {}  # (H, W) by image id
    video_sizes: dict[int, tuple[int, int]] = {}  # (H, W) by video id
    frame_of_image: dict[int, VideoFrame] = {}
    for image in data["images"]:
        where = f"{path}: image id={image.get('id')}"
        try:
            image_id, video_id, frame_id = int(image["id"]), int(image["video_id"]), int(image["frame_id"])
            size = (int(image["height"]), int(image["width"]))
            file_name = str(image["file_name"])
        except (KeyError, TypeError, ValueError) as error:
            problems.error(f"{where}: needs integer id, video_id, frame_id, width, height and a file_name ({error})")
            continue
        if video_id not in videos:
            problems.error(f"{where}: video_id {video_id} is not in videos")
            continue
        if leaves_folder(image_dir, file_name) or not (image_dir / file_name).is_file():
            problems.error(f"{where}: missing frame {frame_id} of video {video_id}: {image_dir / file_name}")
            continue
        previous = frames_of[video_id].get(frame_id)
        if previous is not None:
            problems.error(f"{where}: frame_id {frame_id} of video {video_id} again (image id={previous.image_id})")
            continue
        empty = np.zeros((0, 4))
        frame = VideoFrame(
            image_dir / file_name, frame_id, image_id, empty, np.zeros(0, np.int64), np.zeros(0, np.int64)
        )
        frames_of[video_id][frame_id] = frame
        frame_of_image[image_id] = frame
        size_of[image_id] = size
        video_size = video_sizes.setdefault(video_id, size)
        if video_size != size:
            problems.error(
                f"{where}: {size[1]}x{size[0]}, but video {video_id}'s frames are {video_size[1]}x{video_size[0]}"
            )
    objects: dict[int, list[tuple[np.ndarray, int, int, str]]] = {}
    for annotation in data["annotations"]:
        where = f"{path}: annotation id={annotation.get('id')}"
        try:
            image_id, category = int(annotation["image_id"]), int(annotation["category_id"])
            track_id = int(annotation["track_id"])
            x, y, w, h = (float(v) for v in annotation["bbox"])
        except (KeyError, TypeError, ValueError) as error:
            problems.error(f"{where}: needs image_id, category_id, track_id and a 4-number bbox ({error})")
            continue
        if category not in label_of:
            problems.error(f"{where}: category_id {category} is not in categories")
            continue
        if image_id not in frame_of_image:
            if image_id not in {int(i.get("id", -1)) for i in data["images"]}:
                problems.error(f"{where}: image_id {image_id} is not in images")
            continue
        box = clip_or_drop(np.array([x, y, x + w, y + h]), size_of[image_id], where, problems)
        if box is not None:
            objects.setdefault(image_id, []).append((box, label_of[category], track_id, where))
    for image_id, rows in objects.items():
        frame, seen = frame_of_image[image_id], {}
        for _, _, track_id, where in rows:
            if track_id in seen:
                problems.error(f"{where}: track id {track_id} is used twice in image id={image_id} ({seen[track_id]})")
            seen[track_id] = where
        frame.boxes = np.stack([row[0] for row in rows])
        frame.labels = np.array([row[1] for row in rows], dtype=np.int64)
        frame.track_ids = np.array([row[2] for row in rows], dtype=np.int64)
    description = f"COCO-video json {path}"
    problems.raise_if_errors(description)
    sequences = []
    for video_id, video in videos.items():
        frames = [frames_of[video_id][number] for number in sorted(frames_of[video_id])]
        if not frames:
            continue
        height, width = video_sizes[video_id]
        name = str(video.get("name", video_id))
        sequences.append(VideoSequence(name, frames, width, height, float(video.get("fps", 30)), path))
    return VideoSource(sequences, [str(c["name"]) for c in categories], [int(c["id"]) for c in categories], description)


def write_coco_video(
    path: Path,
    videos: Iterable[tuple[str, int, int, list[tuple[str, list[tuple[int, np.ndarray, int, float]]]]]],
    class_names: list[str],
    category_ids: list[int],
) -> None:
    """Write a COCO-video json.

    Args:
        path: The json to write.
        videos: ``(name, width, height, frames)`` per video, each frame ``(file_name, objects)`` in frame order
            and each object ``(track id, (4,) xyxy box, label, score)``.
        class_names: Names by contiguous label.
        category_ids: The dataset's category id of each label.
    """
    out: dict[str, list] = {"videos": [], "images": [], "annotations": [], "categories": []}
    out["categories"] = [{"id": int(i), "name": n} for i, n in zip(category_ids, class_names, strict=True)]
    for video_id, (name, width, height, frames) in enumerate(videos, start=1):
        out["videos"].append({"id": video_id, "name": name})
        for frame_id, (file_name, objects) in enumerate(frames, start=1):
            image_id = len(out["images"]) + 1
            out["images"].append(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "video_id": video_id,
                    "frame_id": frame_id,
                    "width": int(width),
                    "height": int(height),
                }
            )
            for track_id, box, label, score in objects:
                x1, y1, x2, y2 = (round(float(v), 2) for v in box)
                out["annotations"].append(
                    {
                        "id": len(out["annotations"]) + 1,
                        "image_id": image_id,
                        "category_id": int(category_ids[label]),
                        "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                        "area": round((x2 - x1) * (y2 - y1), 2),
                        "track_id": int(track_id),
                        "score": round(float(score), 4),
                        "iscrowd": 0,
                    }
                )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
