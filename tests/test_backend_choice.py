"""Which backend runs a checkpoint: ONNX Runtime on the CPU through a cached export, the eager model otherwise."""

from __future__ import annotations

import numpy as np
import pytest

import centernet.inference.detector
import centernet.inference.onnx_cache
from centernet.cli.predict import build_parser, load_detector
from centernet.inference import Detector


def _images(count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8) for i in range(count)]


def _load(checkpoint: str, *options: str):
    return load_detector(build_parser().parse_args(["--checkpoint", checkpoint, "--source", "x", *options]))


def test_a_checkpoint_exports_once_and_runs_on_onnxruntime_like_the_eager_model(tiny_checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("CENTERNET_CACHE", str(tmp_path))
    exports = []
    real_export = centernet.inference.onnx_cache.export_onnx
    monkeypatch.setattr(
        centernet.inference.onnx_cache, "export_onnx", lambda *a, **k: exports.append(a) or real_export(*a, **k)
    )
    onnx = Detector.from_checkpoint(tiny_checkpoint, backend="onnxruntime")
    again = Detector.from_checkpoint(tiny_checkpoint, backend="onnxruntime")
    assert onnx.backend.name == again.backend.name == "onnxruntime" and len(exports) == 1
    assert [p.name for p in (tmp_path / "onnx").iterdir()] == [onnx.backend.path.name]
    Detector.from_checkpoint(tiny_checkpoint, image_size=96, backend="onnxruntime")  # another size: another file
    assert len(exports) == 2 and len(list((tmp_path / "onnx").iterdir())) == 2

    eager = Detector.from_checkpoint(tiny_checkpoint)
    assert eager.backend.name == "eager" and eager.backend.channels_last  # channels-last by default on the CPU
    assert (onnx.class_names, onnx.category_ids, onnx.image_size) == (eager.class_names, eager.category_ids, 64)
    for mine, theirs in zip(onnx.predict(_images(), 0.05), eager.predict(_images(), 0.05), strict=True):
        assert len(mine.scores) == len(theirs.scores) > 0
        np.testing.assert_array_equal(mine.labels, theirs.labels)
        np.testing.assert_allclose(mine.scores, theirs.scores, atol=1e-4)
        np.testing.assert_allclose(mine.boxes, theirs.boxes, atol=1e-3)


def test_predict_picks_onnxruntime_on_the_cpu_unless_an_option_needs_the_eager_model(tiny_checkpoint):
    assert _load(tiny_checkpoint).backend.name == "onnxruntime"
    for options in (["--scales", "1", "1.5"], ["--keep-resolution"]):  # the export is dynamic, K included
        assert _load(tiny_checkpoint, *options).backend.name == "onnxruntime", options
    for options in (["--flip"], ["--channels-last"], ["--backend", "eager"]):
        assert _load(tiny_checkpoint, *options).backend.name == "eager", options
    assert not _load(tiny_checkpoint, "--no-channels-last").backend.channels_last
    with pytest.raises(SystemExit, match="--flip cannot run on onnxruntime"):
        _load(tiny_checkpoint, "--backend", "onnxruntime", "--flip")
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        _load("missing.ckpt")


def test_a_failed_export_falls_back_to_the_eager_model(tiny_checkpoint, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(centernet.inference.detector, "cached_onnx_export", broken)
    assert _load(tiny_checkpoint).backend.name == "eager"
    assert "unsupported operator" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="unsupported operator"):
        _load(tiny_checkpoint, "--backend", "onnxruntime")
