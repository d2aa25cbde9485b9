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
