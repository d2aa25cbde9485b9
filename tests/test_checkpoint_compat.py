"""Checkpoints of format 1 (the flat options of centernet 0.1) load, predict the same boxes and resume; the format
is versioned; loading never runs code."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from centernet.cli.main import main
from centernet.configs import config_path
from centernet.inference import Detector
from centernet.model.checkpoint import (
    CHECKPOINT_FORMAT,
    FORMAT_KEY,
    CheckpointError,
    load_model,
    migrate_checkpoint,
    read_checkpoint,
)
from centernet.training.module import CenterNetModule

FIXTURES = Path(__file__).parent / "fixtures" / "v1"
V1 = FIXTURES / "tiny_size_head.ckpt"


def test_format_1_options_become_groups():
    checkpoint = read_checkpoint(V1)
    assert checkpoint[FORMAT_KEY] == CHECKPOINT_FORMAT == 2
    hparams = checkpoint["hyper_parameters"]
    assert hparams["task"] == "detection"
    assert hparams["backbone"] == {"name": "timm:test_efficientnet", "pretrained": False, "frozen_stages": 0,
                                   "freeze_bn": False}  # fmt: skip
    assert hparams["neck"] == {"name": "lateral", "channels": [16, 16, 16], "deformable": False}
    assert hparams["head"] == {"type": "size", "channels": 16}
    assert hparams["loss"]["gaussian_extent"] == 0.54 and "alpha" not in hparams
    assert hparams["optimizer"]["lr"] == 0.004 and hparams["optimizer"]["warmup_steps"] == 1
    assert hparams["class_names"] == ["circle", "square", "triangle", "diamond", "cross"]


def test_ltrb_options_of_format_1_migrate():
    flat = {"num_classes": 2, "head": "ltrb", "box_weight": 2.0, "box_sampling": "center3x3", "neck": "dla_up"}
    migrated = migrate_checkpoint({"hyper_parameters": dict(flat)})["hyper_parameters"]
    assert migrated["head"] == {"type": "ltrb"} and migrated["neck"] == {"name": "dla_up"}
    assert migrated["loss"] == {"box_weight": 2.0, "box_sampling": "center3x3"}


def test_a_format_1_checkpoint_predicts_the_same_boxes():
    expected = json.loads((FIXTURES / "expected_predictions.json").read_text())
    detector = Detector.from_checkpoint(V1)
    names = sorted(expected)
    predictions = detector.predict([FIXTURES / name for name in names], score_threshold=0.0, batch_size=2)
    for name, prediction in zip(names, predictions, strict=True):
        reference = expected[name]
        assert list(prediction.image_size) == reference["image_size"]
        np.testing.assert_allclose(prediction.boxes[:20], reference["boxes"], atol=1e-3)
        np.testing.assert_allclose(prediction.scores[:20], reference["scores"], atol=1e-5)
        assert prediction.labels[:20].tolist() == reference["labels"]
    module = CenterNetModule.load_from_checkpoint(V1)
    assert list(module.hparams["neck"]["channels"]) == [16, 16, 16] and module.class_names == detector.class_names


def test_a_format_1_checkpoint_resumes_training(tmp_path, shapes_root):
    """``fit --ckpt_path`` on the old file: weights, optimiser and loops continue (the run's config is the new one)."""
    overrides = [
        "--model.backbone.name=timm:test_efficientnet",
        "--model.neck.channels=[16, 16, 16]",
        "--model.head.channels=16",
        "--model.optimizer.warmup_steps=1",
        "--trainer.max_epochs=2",
        "--trainer.check_val_every_n_epoch=1",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
        f"--data.shapes_root={shapes_root}",
        "--data.shapes_train_images=16",
        "--data.shapes_val_images=8",
        "--data.shapes_image_size=64",
        "--data.image_size=64",
        "--data.batch_size=8",
        "--data.num_workers=0",
        f"--ckpt_path={V1}",
    ]
    main(["fit", "--config", str(config_path("demo")), *overrides])
    resumed = read_checkpoint(tmp_path / "version_0" / "checkpoints" / "last.ckpt")
    assert resumed[FORMAT_KEY] == CHECKPOINT_FORMAT
    assert resumed["global_step"] == 4 and resumed["epoch"] == 1  # 2 steps of format 1, then 2 more
    old = read_checkpoint(V1)["optimizer_states"][0]["state"]
    new = resumed["optimizer_states"][0]["state"]
    assert int(new[0]["step"]) == int(old[0]["step"]) + 2  # AdamW's moments continued, not restarted


def test_an_unknown_format_is_a_clear_error(tmp_path):
    path = tmp_path / "future.ckpt"
    torch.save({FORMAT_KEY: 99, "hyper_parameters": {"num_classes": 1}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match=r"future.ckpt: checkpoint format 99 is newer .* upgrade centernet"):
        load_model(path)


class _RunsCode:
    """A pickle that would run a command on load (``os.system``), as a hostile checkpoint would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _fit_args(tmp_path: Path, shapes_root: str) -> list[str]:
    return [
        "fit", "--config", str(config_path("demo")), "--trainer.max_steps=1",
        f"--trainer.default_root_dir={tmp_path / 'runs'}", f"--data.shapes_root={shapes_root}",
        "--data.shapes_train_images=16", "--data.shapes_val_images=8", "--data.shapes_image_size=64",
        "--data.image_size=64", "--data.num_workers=0",
    ]  # fmt: skip


_LOADERS = {
    "load_model": lambda path, tmp, root: load_model(path),
    "Detector": lambda path, tmp, root: Detector.from_checkpoint(path),
    "ONNX cache": lambda path, tmp, root: Detector.from_checkpoint(path, backend="onnxruntime"),
    "CenterNetModule": lambda path, tmp, root: CenterNetModule.load_from_checkpoint(path),
    "predict": lambda path, tmp, root: main(
        ["predict", "--checkpoint", str(path), "--source", str(FIXTURES)] + ["--output", str(tmp / "p")]
    ),  # fmt: skip
    "validate": lambda path, tmp, root: main(["validate", "--checkpoint", str(path), "--output", str(tmp / "v")]),
    "export": lambda path, tmp, root: main(["export", "--checkpoint", str(path), "--output", str(tmp / "m.onnx")]),
    "fine-tuning": lambda path, tmp, root: main([*_fit_args(tmp, root), f"--model.init_weights={path}"]),
    "resume": lambda path, tmp, root: main([*_fit_args(tmp, root), f"--ckpt_path={path}"]),
}


@pytest.mark.parametrize("loader", list(_LOADERS))
def test_loading_a_hostile_pickle_runs_nothing(loader, tmp_path, shapes_root):
    marker = tmp_path / "ran"
    path = tmp_path / "model.ckpt"
    with open(path, "wb") as file:
        torch.save({"state_dict": {}, "hyper_parameters": {"num_classes": 1}, "x": _RunsCode(marker)}, file)
    assert pickle.loads(pickle.dumps(1)) == 1  # pickling itself works here; only the payload is hostile
    with pytest.raises(CheckpointError, match=r"model.ckpt: refused to load: the file would run code"):
        _LOADERS[loader](path, tmp_path, shapes_root)
    assert not marker.exists()


def test_unsafe_loading_cannot_be_switched_on(tmp_path, shapes_root):
    with pytest.raises(ValueError, match="--weights_only false is not supported"):
        main([*_fit_args(tmp_path, shapes_root), "--weights_only=false"])


def test_no_loader_unpickles_code():
    sources = " ".join(path.read_text() for path in Path(__file__).parents[1].joinpath("centernet").rglob("*.py"))
    assert "weights_only=False" not in sources


def test_truncated_and_random_files_are_named_errors(tmp_path):
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes(V1.read_bytes()[:5000])
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    for path in (truncated, noise):
        with pytest.raises(CheckpointError, match=f"{path.name}: not a readable checkpoint"):
            read_checkpoint(path)
