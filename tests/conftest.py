"""Shared fixtures: a tiny built-in shapes dataset and the keyword arguments of a tiny CenterNet."""

from __future__ import annotations

import os

import pytest

from centernet.data import CenterNetDataModule, ensure_shapes_dataset

# A CenterNet small enough to train for a few steps in seconds on two CPU cores.
TINY_MODEL = {"backbone": "resnet18", "neck": "lateral", "neck_channels": (32, 32, 32), "head_channels": 32}


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Point ``$CENTERNET_CACHE`` (ONNX exports of checkpoints, datasets) at a folder of this test run."""
    previous = os.environ.get("CENTERNET_CACHE")
    os.environ["CENTERNET_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("CENTERNET_CACHE", None)
    else:
        os.environ["CENTERNET_CACHE"] = previous


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
    """A Lightning checkpoint (random weights, boxes of ~12 px) of a TINY_MODEL for ``shapes_root``'s 64 px data.

    Written in the layout of ``centernet fit``'s checkpoints, data module settings included, without training.
    """
    import lightning as L
    import torch

    from centernet.training.module import CenterNetModule

    torch.manual_seed(0)
    data = tiny_shapes_data(shapes_root, batch_size=8)
    module = CenterNetModule(data.num_classes, data.class_names, data.category_ids, 64, **TINY_MODEL)
    with torch.no_grad():  # boxes of about 3 cells (12 px) rather than near-zero sizes
        module.model.head.size[-1].bias.fill_(3.0)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt"
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "datamodule_hyper_parameters": {**data.hparams, "_instantiator": "lightning.pytorch.cli.instantiate_module"},
        "pytorch-lightning_version": L.__version__,
    }
    torch.save(checkpoint, path)
    return str(path)
