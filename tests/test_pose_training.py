"""Pose training end to end: fit, validate and predict through the CLI carry the keypoint numbers and joints; a
tiny pose model overfits a few stick-figure images (slow)."""

from __future__ import annotations

import json

import lightning as L
import pytest
from helpers import quiet_trainer, tiny_module

from centernet.cli.main import main
from centernet.data.datamodule import CenterNetDataModule
from centernet.evaluation import KEYPOINT_METRIC_NAMES


@pytest.fixture(scope="module")
def sticks_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("sticks")
    data = CenterNetDataModule(
        dataset="stick_figures", shapes_root=str(root), shapes_train_images=8, shapes_val_images=4, image_size=128
    )
    data.prepare_data()
    return str(root / "stick-figures-v1-seed0-train8-val4-128px")


def _data(root: str, split: str = "val", **overrides) -> CenterNetDataModule:
    """The ``split`` images as both training and validation data (to overfit them)."""
    images, annotations = f"{root}/{split}/images", f"{root}/{split}/annotations.json"
    options = {
        "dataset": "coco",
        "train_images": images,
        "train_annotations": annotations,
        "val_images": images,
        "val_annotations": annotations,
        "image_size": 128,
        "batch_size": 4,
        "num_workers": 0,
    }
    return CenterNetDataModule(**{**options, **overrides})


@pytest.mark.slow  # ~40 s on two cores: a fit, `centernet validate` and `centernet predict`
def test_pose_fit_validate_and_predict_carry_joints(sticks_root, tmp_path):
    L.seed_everything(0)
    data = _data(sticks_root)
    assert data.task_data["joint_names"][:2] == ["head", "neck"]  # read from the COCO keypoints json
    module = tiny_module(data, image_size=128, task="pose", task_data=data.task_data, max_detections=10)
    trainer = quiet_trainer(6, enable_checkpointing=True, default_root_dir=str(tmp_path), num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)
    assert set(KEYPOINT_METRIC_NAMES) <= set(module.last_val_metrics)
    checkpoint = tmp_path / "pose.ckpt"
    trainer.save_checkpoint(checkpoint)

    config = tmp_path / "data.yaml"
    config.write_text(
        json.dumps(
            {
                "data": {
                    k: getattr(data, k) for k in ("train_images", "train_annotations", "val_images", "val_annotations")
                }
            }
        )
    )
    out = tmp_path / "validate"
    main(["validate", "--checkpoint", str(checkpoint), "--config", str(config), "--output", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(KEYPOINT_METRIC_NAMES) <= set(metrics)
    predicted = tmp_path / "predict"
    main(["predict", "--checkpoint", str(checkpoint), "--source", data.val_images, "--output", str(predicted),
          "--save-txt", "--conf", "0.0", "--backend", "eager"])  # fmt: skip
    results = json.loads((predicted / "predictions.json").read_text())
    assert results and len(results[0]["keypoints"]) == 14 * 3
    line = next((predicted / "labels").glob("*.txt")).read_text().splitlines()[0].split()
    assert len(line) == 1 + 4 + 14 * 3 + 1  # class, box, 14 joints (x, y, score), the person's score


@pytest.mark.slow
def test_tiny_pose_model_overfits_a_few_images(sticks_root):
    """Trained and evaluated on the same 4 images without augmentation, keypoint AP must reach 0.9."""
    L.seed_everything(0)
    data = _data(sticks_root, scale_range=(1.0, 1.0), hflip_prob=0.0, color_jitter=0.0)
    module = tiny_module(
        data, image_size=128, task="pose", task_data=data.task_data, max_detections=10,
        optimizer={"lr": 3e-3, "warmup_steps": 20},
    )  # fmt: skip
    trainer = quiet_trainer(300, check_val_every_n_epoch=1000, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)
    metrics = trainer.validate(module, datamodule=data, verbose=False)[0]
    assert metrics["val/kp_map"] >= 0.9, metrics
