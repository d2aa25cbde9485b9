"""``centernet predict`` never destroys or overwrites its input, keeps every result, and checks its writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from centernet.cli.main import main


def _image(path: Path, seed: int, size: tuple[int, int] = (48, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_output_equal_to_the_source_is_refused_and_nothing_changes(tiny_checkpoint, tmp_path):
    photos = tmp_path / "photos"
    _image(photos / "a.png", 0)
    _image(photos / "b.jpg", 1)
    before = _digests(photos)
    with pytest.raises(ValueError, match=r"--output would overwrite the source .*a.png"):
        main(["predict", "--checkpoint", tiny_checkpoint, "--source", str(photos), "--output", str(photos)])
    assert _digests(photos) == before


def test_a_video_inside_the_output_folder_is_never_truncated(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    video = out / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for i in range(4):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    before = video.read_bytes()
    with pytest.raises(ValueError, match=r"overwrite the source .*clip.mp4"):
        main(["predict", "--checkpoint", tiny_checkpoint, "--source", str(video), "--output", str(out)])
    assert video.read_bytes() == before


def test_same_names_in_other_folders_or_formats_give_distinct_outputs(tiny_checkpoint, tmp_path):
    photos = tmp_path / "photos"
    for i, relative in enumerate(["a/x.png", "b/x.png", "c/photo.jpg", "c/photo.png"]):
        _image(photos / relative, i)
    before = _digests(photos)
    out = tmp_path / "out"
    main(["predict", "--checkpoint", tiny_checkpoint, "--source", f"{photos}/**/*.*", "--output", str(out),
          "--conf", "0.0", "--save-txt"])  # fmt: skip
    assert _digests(photos) == before
    drawn = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.suffix in (".png", ".jpg"))
    assert drawn == ["a/x.png", "b/x.png", "c/photo.jpg", "c/photo.png"]
    labels = sorted(str(p.relative_to(out / "labels")) for p in (out / "labels").rglob("*.txt"))
    assert labels == ["a/x.txt", "b/x.txt", "c/photo.jpg.txt", "c/photo.png.txt"]
    results = json.loads((out / "predictions.json").read_text())
    assert {r["file_name"] for r in results} == {"a/x.png", "b/x.png", "c/photo.jpg", "c/photo.png"}
    assert len({r["image_id"] for r in results}) == 4


def test_a_failed_write_is_an_error_naming_the_file(tiny_checkpoint, tmp_path, monkeypatch):
    _image(tmp_path / "in" / "a.png", 0)
    monkeypatch.setattr(cv2, "imwrite", lambda *args, **kwargs: False)  # what OpenCV returns on a full disk
    with pytest.raises(OSError, match=r"out/a.png: could not write the annotated image"):
        main(["predict", "--checkpoint", tiny_checkpoint, "--source", str(tmp_path / "in"),
              "--output", str(tmp_path / "out"), "--backend", "eager"])  # fmt: skip


def test_unreadable_images_stop_or_are_skipped_by_name(tiny_checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    _image(photos / "a.png", 0)
    (photos / "broken.png").write_bytes(b"not an image")
    _image(photos / "c.png", 2)
    with pytest.raises(ValueError, match=r"broken.png.*--skip-unreadable"):
        main(["predict", "--checkpoint", tiny_checkpoint, "--source", str(photos), "--output", str(tmp_path / "a")])
    main(["predict", "--checkpoint", tiny_checkpoint, "--source", str(photos), "--output", str(tmp_path / "b"),
          "--skip-unreadable", "--conf", "0.0"])  # fmt: skip
    assert "skipped 1 unreadable image(s)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "b").glob("*.png")) == ["a.png", "c.png"]
    assert {r["file_name"] for r in json.loads((tmp_path / "b" / "predictions.json").read_text())} == {"a.png", "c.png"}


def test_a_truncated_video_is_predicted_to_its_end_with_a_warning(tiny_checkpoint, tmp_path, capsys):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(30):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.6)])  # the container still announces 30 frames
    main(["predict", "--checkpoint", tiny_checkpoint, "--source", str(video), "--output", str(tmp_path / "out"),
          "--no-draw"])  # fmt: skip
    err = capsys.readouterr().err
    assert "announces 30 frames but only" in err and "clip.avi" in err


@pytest.mark.parametrize("value", ["-1", "0", "two"])
def test_batch_size_must_be_a_positive_integer(tiny_checkpoint, tmp_path, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--checkpoint", tiny_checkpoint, "--source", str(tmp_path), "--batch-size", value])
    assert exit_info.value.code == 2
    assert "argument --batch-size" in capsys.readouterr().err
