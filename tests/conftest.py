"""Shared fixtures: a tiny built-in shapes dataset, a real checkpoint of a tiny model, a private cache folder."""

from __future__ import annotations

import os

import pytest
from helpers import quiet_trainer, tiny_module, tiny_shapes_data


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
    from centernet.data.synthetic import ensure_shapes_dataset

    root = tmp_path_factory.mktemp("shapes")
    ensure_shapes_dataset(root, num_train=16, num_val=8, image_size=64, seed=0)
    return str(root)


@pytest.fixture(scope="session")
def tiny_checkpoint(shapes_root, tmp_path_factory) -> str:
    """A real checkpoint of ``centernet fit``'s kind: a tiny model after one optimiser step on ``shapes_root``'s
    64 px data (weights, optimiser, loops, data-module settings), boxes of ~12 px.

    Its size head starts with a bias of 3 cells (12 px) rather than near-zero sizes, so that decoded boxes overlap
    the 6-25 px shapes and the inference tests see real boxes.
    """
    import torch

    torch.manual_seed(0)
    data = tiny_shapes_data(shapes_root, batch_size=8)
    module = tiny_module(data, optimizer={"lr": 1e-6})
    with torch.no_grad():
        module.model.head.size[-1].bias.fill_(3.0)
    trainer = quiet_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return str(path)
