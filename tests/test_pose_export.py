"""Pose downstream: exported graphs decode people and joints like the eager model (two input sizes), and
``Detector`` returns joints in original pixels from a checkpoint's network and from an exported file."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import tiny_network

from centernet.data.keypoints import keypoint_info
from centernet.inference import Detector
from centernet.inference.export import export_onnx, export_torchscript, read_metadata
from centernet.tasks.pose.results import PosePrediction

JOINTS = keypoint_info(["head", "left_hand", "right_hand"], [[0, 1], [0, 2]])
OUTPUTS = ("boxes", "scores", "labels", "keypoints")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    network = tiny_network(1, task="pose", task_data=JOINTS, max_detections=20).eval()
    with torch.no_grad():  # a heatmap with a few clear peaks, so that snapping and ordering are exercised
        network.head.joint_heatmap[-1].bias.add_(1.0)
    return network


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("pose_export")
    onnx_path = export_onnx(model, root / "p.onnx", ["person"], [1], image_size=64, dynamic=True)
    ts_path = export_torchscript(model, root / "p.torchscript", ["person"], [1], image_size=64, dynamic=True)
    return onnx_path, ts_path


def _assert_same(reference, outputs):
    outputs = dict(zip(OUTPUTS, (torch.as_tensor(np.asarray(v)) for v in outputs), strict=True))
    valid = reference["scores"] > 0
    assert valid.sum() > 0 and torch.equal(outputs["scores"] > 0, valid)
    for key in ("boxes", "scores", "keypoints"):
        assert outputs[key].shape == reference[key].shape, key
        assert (outputs[key][valid] - reference[key][valid]).abs().max() <= 1e-3, key
    assert torch.equal(outputs["labels"][valid], reference["labels"][valid])


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 96, 128)])
def test_exported_pose_graphs_equal_eager(model, exported, shape):
    images = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    with torch.no_grad():
        reference = model.decode(model(images))
    onnx_path, ts_path = exported
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(OUTPUTS)
    _assert_same(reference, session.run(None, {session.get_inputs()[0].name: images.numpy()}))
    with torch.no_grad():
        _assert_same(reference, torch.jit.load(str(ts_path))(images))
    meta = read_metadata(onnx_path)
    assert meta["task"] == "pose" and meta["task_data"]["joint_names"] == JOINTS["joint_names"]


def test_detector_returns_joints_in_original_pixels(model, exported):
    image = (np.random.default_rng(0).random((50, 90, 3)) * 255).astype(np.uint8)
    eager = Detector(model, ["person"], [1], image_size=64)
    [prediction] = eager.predict([image], score_threshold=0.0)
    assert isinstance(prediction, PosePrediction)
    assert prediction.keypoints.shape == (len(prediction.boxes), 3, 3) and len(prediction.boxes) > 0
    assert (prediction.keypoints[..., 0] <= 90).all() and (prediction.keypoints[..., 1] <= 50).all()
    # The joints scale back with the letterbox exactly as the boxes do: 90 px -> 64 px is a factor 64 / 90.
    with torch.no_grad():
        canvas = np.zeros((64, 64, 3), np.uint8)
        canvas[:36, :64] = __import__("cv2").resize(image, (64, 36), interpolation=1)
        raw = model.decode(model(torch.from_numpy(canvas).permute(2, 0, 1)[None].float() / 255))
    best = raw["keypoints"][0, 0, :, :2].numpy() * np.array([90 / 64, 50 / 36])
    assert np.allclose(prediction.keypoints[0, :, :2], np.minimum(best, [90, 50]), atol=1e-3)
    for path in exported:
        [again] = Detector.load(path).predict([image], score_threshold=0.0)
        assert isinstance(again, PosePrediction)
        assert np.allclose(again.keypoints, prediction.keypoints, atol=1e-2)
    drawing = prediction.draw(image)
    assert drawing.shape == image.shape and not np.array_equal(drawing, image)
    [flipped] = eager.predict([image], score_threshold=0.0, flip=True)
    assert flipped.keypoints.shape[1:] == (3, 3)
