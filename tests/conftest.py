"""Shared fixtures: a tiny built-in shapes dataset and the keyword arguments of a tiny CenterNet."""

from __future__ import annotations

import pytest

from centernet.data import CenterNetDataModule, ensure_shapes_dataset

# A CenterNet small enough to train for a few steps in seconds on two CPU cores.
TINY_MODEL = {"backbone": "resnet18", "neck": "lateral", "neck_channels": (32, 32, 32), "head_channels": 32}


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory) -> str:
    """Root of a generated shapes cache (16 train / 8 val images of 64 px), shared by the whole test run."""
    root = tmp_path_factory.mktemp("shapes")
    ensure_shapes_dataset(root, num_train=16, num_val=8, image_size=64, seed=0)
    return str(root)


def tiny_shapes_data(shapes_root: str, batch_size: int) -> CenterNetDataModule:
    """A DataModule over the ``shapes_root`` fixture's dataset, 64 px, loading in the main process."""
    return CenterNetDataModule(
        dataset="shapes",
        shapes_root=shapes_root,
        shapes_train_images=16,
        shapes_val_images=8,
        shapes_image_size=64,
        image_size=64,
        batch_size=batch_size,
        num_workers=0,
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(shapes_root, tmp_path_factory) -> str:
    """A Lightning checkpoint of a TINY_MODEL trained for 60 steps on the ``shapes_root`` data (64 px input).

    Short, but enough for peaks at the objects (non-trivial AP) so inference and evaluation tests see real
    detections. The checkpoint also holds the data module's settings, as ``centernet fit`` writes it.
    """
    import lightning as L

    from centernet.lightning_module import CenterNetModule

    L.seed_everything(0)
    data = tiny_shapes_data(shapes_root, batch_size=8)
    module = CenterNetModule(
        data.num_classes, data.class_names, data.category_ids, 64, lr=3e-3, warmup_steps=5, **TINY_MODEL
    )
    trainer = L.Trainer(
        max_steps=60,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=data)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return str(path)
