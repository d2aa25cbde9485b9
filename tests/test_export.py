"""Export: ONNX and TorchScript graphs with decoding inside give the eager model's detections."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import TINY_MODEL, tiny_network

from centernet.cli.main import main
from centernet.inference import Detector
from centernet.inference.export import DecodingWrapper, export_onnx, export_torchscript, read_metadata
from centernet.model import CenterNet

NAMES, IDS = ["a", "b", "c"], [7, 3, 11]


@pytest.fixture(scope="module")
def model() -> CenterNet:
    torch.manual_seed(0)
    return tiny_network(3).eval()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    onnx_path = export_onnx(model, root / "m.onnx", NAMES, IDS, image_size=64, batch_size=1, dynamic=True)
    ts_path = export_torchscript(model, root / "m.torchscript", NAMES, IDS, image_size=64, batch_size=1)
    return onnx_path, ts_path


@pytest.fixture(scope="module")
def runtimes(exported):
    onnx_path, ts_path = exported
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]), torch.jit.load(str(ts_path))


def _assert_same(reference: dict[str, torch.Tensor], boxes, scores, labels) -> None:
    boxes, scores, labels = (torch.as_tensor(np.asarray(v)) for v in (boxes, scores, labels))
    assert boxes.shape == reference["boxes"].shape and labels.dtype == torch.int64
    # Entries with score 0 pad images with fewer than K peaks; their order is arbitrary (ties), so compare the
    # real detections, which must be the same set in the same order.
    valid = reference["scores"] > 0
    assert torch.equal(scores > 0, valid)
    assert valid.sum() > 0
    assert (boxes[valid] - reference["boxes"][valid]).abs().max() <= 1e-4
    assert (scores[valid] - reference["scores"][valid]).abs().max() <= 1e-4
    assert torch.equal(labels[valid], reference["labels"][valid])


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (3, 3, 64, 64), (1, 3, 96, 128), (3, 3, 96, 128)])
def test_exported_graphs_equal_eager(model, runtimes, shape):
    images = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    with torch.no_grad():
        reference = model.decode(model(images))
    session, scripted = runtimes
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores", "labels"]
    _assert_same(reference, *session.run(None, {"images": images.numpy()}))
    with torch.no_grad():
        _assert_same(reference, *scripted(images))


def test_number_of_detections_follows_the_input_size(tmp_path):
    """K = min(100, C x H/4 x W/4) is computed in the graph: 64 for one class at 32x32, 100 at the 64 px export."""
    torch.manual_seed(0)
    single_class = tiny_network(1).eval()
    path = export_onnx(single_class, tmp_path / "one.onnx", ["a"], [1], image_size=64, dynamic=True)
    scripted = torch.jit.load(str(export_torchscript(single_class, tmp_path / "one.ts", ["a"], [1], image_size=64)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size, k in ((32, 64), (64, 100)):
        images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            reference = single_class.decode(single_class(images))
        assert reference["scores"].shape == (2, k)
        _assert_same(reference, *session.run(None, {"images": images.numpy()}))
        with torch.no_grad():
            _assert_same(reference, *scripted(images))


def test_wrapper_calls_the_models_own_decode(model):
    """A model with another decode (e.g. another box head) exports its own decoding, not a copy."""

    class Shifted(CenterNet):
        def decode(self, outputs, max_detections=None):
            detections = super().decode(outputs, max_detections)
            return {**detections, "boxes": detections["boxes"] + 1.0}

    torch.manual_seed(0)
    shifted = Shifted(3, **TINY_MODEL).eval()
    shifted.load_state_dict(model.state_dict())
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        boxes, _, _ = DecodingWrapper(shifted)(images)
        reference = model.decode(model(images))["boxes"]
    torch.testing.assert_close(boxes, reference + 1.0)


def test_exported_detector_equals_eager_detector(model, exported):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((64, 64, 3), (50, 90, 3), (120, 40, 3))]
    eager = Detector(model, NAMES, IDS, image_size=64).predict(images, score_threshold=0.0, batch_size=3)
    for path in exported:
        other = Detector.load(path).predict(images, score_threshold=0.0, batch_size=2)
        for a, b in zip(eager, other, strict=True):
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
            np.testing.assert_array_equal(a.labels, b.labels)
            assert a.names == b.names and a.category_ids == b.category_ids
    # Keep-resolution runs other input sizes through the dynamic ONNX graph.
    onnx_keep = Detector.load(exported[0]).predict(images, score_threshold=0.0, keep_resolution=True)
    eager_keep = Detector(model, NAMES, IDS, image_size=64).predict(images, score_threshold=0.0, keep_resolution=True)
    for a, b in zip(eager_keep, onnx_keep, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_metadata_and_fixed_size_export(model, tmp_path):
    path = export_onnx(model, tmp_path / "fixed.onnx", NAMES, IDS, image_size=64, batch_size=2, dynamic=False)
    meta = read_metadata(path)
    assert meta["class_names"] == NAMES and meta["category_ids"] == IDS and meta["image_size"] == 64
    assert meta["dynamic"] is False
    detector = Detector.load(path)
    images = [np.full((40, 60, 3), 90, dtype=np.uint8)] * 3  # 3 images through a batch-2 graph: chunked
    assert len(detector.predict(images, score_threshold=0.0)) == 3
    with pytest.raises(ValueError, match="--dynamic"):
        detector.predict(images, keep_resolution=True)
    with pytest.raises(ValueError, match="exported for 64 px"):
        Detector.load(path, image_size=96)
    with pytest.raises(ValueError, match="flip"):
        detector.predict(images, flip=True)


def test_export_command(tiny_checkpoint, tmp_path, capsys):
    output = tmp_path / "tiny.onnx"
    main(["export", "--checkpoint", tiny_checkpoint, "--format", "onnx", "--dynamic", "--output", str(output)])
    out = capsys.readouterr().out
    assert "max |exported - eager|" in out
    meta = json.loads(json.dumps(read_metadata(output)))
    assert meta["class_names"] == ["circle", "square", "triangle", "diamond", "cross"]
    assert meta["category_ids"] == [1, 2, 3, 4, 5] and meta["dynamic"] is True
    torchscript = ["--format", "torchscript", "--output", str(tmp_path / "t.pt"), "--no-check"]
    main(["export", "--checkpoint", tiny_checkpoint, *torchscript])
    assert read_metadata(tmp_path / "t.pt")["image_size"] == 64


@pytest.mark.parametrize(
    "options",
    [
        {"neck": {"deformable": True}},
        {"head": {"type": "ltrb"}},
        {"head": {"type": "ltrb"}, "neck": {"name": "dla_up"}},
    ],
)
def test_other_architectures_export_with_decoding_inside(options, tmp_path):
    """Deformable necks (ONNX DeformConv, opset 19 by default) and the ltrb head export with their own decoding."""
    torch.manual_seed(0)
    model = tiny_network(3, **options).eval()
    path = export_onnx(model, tmp_path / "m.onnx", NAMES, IDS, image_size=64, batch_size=1, dynamic=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.rand(3, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model.decode(model(images))
    _assert_same(reference, *session.run(None, {"images": images.numpy()}))
