"""`centernet data check`: validates without training, prints a summary, writes the plots and report.json."""

from __future__ import annotations

import json

import cv2
import pytest
import yaml
from helpers.writers import noise_item, write_yolo

from centernet.cli.main import main


def _dataset(tmp_path):
    train = [
        noise_item("a", 48, 64, [(4, 4, 30, 30), (-6, 10, 20, 40)], [0, 1], seed=1),  # the second is clipped
        noise_item("b", 64, 64, [(10, 10, 60, 60), (70, 5, 80, 9)], [1, 1], seed=2),  # the second is outside
        noise_item("c", 64, 48, [], [], seed=3),
    ]
    val = [noise_item("v", 64, 64, [(1, 1, 20, 20)], [0], seed=4)]
    data = write_yolo(tmp_path / "data", {"train": train, "val": val}, ["cat", "dog"])
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"dataset": "yolo", "yolo_data": str(data), "image_size": 64}}))
    return config


def test_data_check_reports_a_valid_dataset(tmp_path, capsys):
    config = _dataset(tmp_path)
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info, pytest.warns(UserWarning, match="b.png"):
        main(["data", "check", "--config", str(config), "--output", str(output), "--samples", "4"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "images 3 (1 without boxes, 0 skipped), boxes 3 (1 clipped to their image, 1 dropped)" in printed
    assert "box 1 (line 2) of b.png" in printed and "the data is ready for training" in printed
    report = json.loads((output / "report.json").read_text())
    assert report["splits"]["train"]["boxes_per_class"] == {"cat": 1, "dog": 2}
    assert report["splits"]["val"]["boxes"] == 1 and report["class_names"] == ["cat", "dog"]
    batch = cv2.imread(str(output / "train_batch.png"))
    assert batch.shape == (128, 128, 3) and batch.std() > 0  # 2x2 grid of 64 px training images
    labels = cv2.imread(str(output / "labels.png"))
    assert labels is not None and min(labels.shape[:2]) > 300


def test_data_check_lists_errors_with_files_and_fails(tmp_path, capsys):
    config = _dataset(tmp_path)
    labels = tmp_path / "data" / "labels" / "train" / "a.txt"
    labels.write_text(labels.read_text() + "9 0.5 0.5 0.1 0.1\n")
    (tmp_path / "data" / "images" / "val" / "v.png").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info, pytest.warns(UserWarning):
        main(["data", "check", "--config", str(config), "--output", str(tmp_path / "out"), "--data.image_size=32"])
    assert exit_info.value.code == 1
    printed = capsys.readouterr().out
    assert f"ERROR: {labels}:3: class 9 is not in the names" in printed
    assert "v.png: zero-byte file" in printed and "errors found; training would stop" in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["splits"]["train"]["errors"]) == 1 and len(report["splits"]["val"]["errors"]) == 1
    with pytest.raises(ValueError, match=r"invalid config .*config.yaml.*--data.no_such_key=1"):
        main(["data", "check", "--config", str(config), "--data.no_such_key=1"])


def test_data_check_reports_an_unreadable_dataset(tmp_path, capsys):
    missing = tmp_path / "nope"
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", "--data.dataset=voc", f"--data.train_annotations={missing}", "--output", str(tmp_path)])
    assert exit_info.value.code == 1
    assert f"ERROR: VOC annotations not found: {missing}" in capsys.readouterr().out
