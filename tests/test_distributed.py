"""Data-parallel training: 2-process DDP (gloo) on the CPU, exact distributed evaluation, loss normalisation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import TINY_MODEL, quiet_trainer, tiny_module, tiny_shapes_data
from scripts.ddp_fit import NoisyOracleModule

from centernet.data.datamodule import CenterNetDataModule
from centernet.data.sampler import SeededEpochSampler
from centernet.data.synthetic import ensure_shapes_dataset
from centernet.distributed import deduplicate_by_image_id, gather_objects, global_mean_count, scaled_learning_rate

SCRIPTS = Path(__file__).parent / "scripts"
REPO = Path(__file__).parent.parent


def _single_process_metrics(module: L.LightningModule, data: CenterNetDataModule) -> dict[str, float]:
    return quiet_trainer().validate(module, datamodule=data, verbose=False)[0]


def test_ddp_training_and_distributed_evaluation_equal_single_process(tmp_path):
    shapes = tmp_path / "shapes"
    ensure_shapes_dataset(shapes, num_train=16, num_val=7, image_size=64, seed=0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("PL_GLOBAL_SEED", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "ddp_fit.py"), str(shapes), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]

    # Both ranks trained: 3 optimiser steps, of which rank 1's planted NaN made both skip one together; the
    # replicas stayed identical and finite.
    for rank in ranks:
        assert rank["world_size"] == 2 and rank["global_step"] == 3 and rank["skipped_steps"] == 1
    for name, value in ranks[0]["state_dict"].items():
        assert torch.equal(value, ranks[1]["state_dict"][name]), name
        assert torch.isfinite(value.float()).all(), name

    # 7 validation images on 2 ranks: each rank evaluates 4 (image 1 twice overall); every image counts once.
    assert ranks[0]["num_val_samples"] == 4
    assert ranks[0]["image_ids"] == ranks[1]["image_ids"] == [1, 2, 3, 4, 5, 6, 7]

    data = CenterNetDataModule(
        dataset="shapes",
        shapes_root=str(shapes),
        shapes_train_images=16,
        shapes_val_images=7,
        shapes_image_size=64,
        image_size=64,
        batch_size=2,
        val_batch_size=1,
        num_workers=0,
    )
    trained = tiny_module(data)
    trained.model.load_state_dict(ranks[0]["state_dict"])
    oracle = NoisyOracleModule(data.num_classes, data.class_names, data.category_ids, 64, **TINY_MODEL)
    for module, key in ((trained, "metrics"), (oracle, "oracle_metrics")):
        single = _single_process_metrics(module, data)
        coco = {name: value for name, value in single.items() if not name.startswith("val/loss")}
        assert coco == {name: ranks[0][key][name] for name in coco}, key
        assert coco == {name: ranks[1][key][name] for name in coco}, key
    assert ranks[0]["oracle_metrics"]["val/map_50"] > 0.3  # a non-trivial comparison


def test_single_process_helpers_are_identities():
    count = torch.tensor(7.0)
    assert global_mean_count(count).item() == 7.0 and global_mean_count(count).dtype == torch.float32
    assert gather_objects([1, 2]) == [1, 2]


def test_deduplicate_by_image_id_keeps_one_entry_per_image_in_id_order():
    items = [(3, "c"), (1, "a"), (2, "b"), (1, "a"), (3, "c")]
    assert deduplicate_by_image_id(items) == [(1, "a"), (2, "b"), (3, "c")]


def test_linear_learning_rate_scaling_rule():
    assert scaled_learning_rate(1e-3, 64, 16) == pytest.approx(4e-3)
    assert scaled_learning_rate(1e-3, 8, None) == 1e-3
    with pytest.raises(ValueError, match="batch sizes"):
        scaled_learning_rate(1e-3, 8, 0)


def test_seeded_sampler_partitions_ranks_and_seeds_samples_independently_of_ranks():
    dataset = list(range(7))
    single = SeededEpochSampler(dataset, num_replicas=1, rank=0, seed=5)
    ranks = [SeededEpochSampler(dataset, num_replicas=2, rank=r, seed=5) for r in (0, 1)]
    for sampler in (single, *ranks):
        sampler.set_epoch(3)
    one = list(single)
    two = [list(sampler) for sampler in ranks]
    assert sorted(i for i, _ in one) == dataset
    assert len(two[0]) == len(two[1]) == 4 and {i for part in two for i, _ in part} == set(dataset)
    # The augmentation seed of a sample depends on (seed, epoch, index) only, not on the number of ranks.
    seed_of = dict(one)
    assert all(seed_of[i] == s for part in two for i, s in part)
    single.set_epoch(4)
    assert list(single) != one  # a new order and new augmentations every epoch
    single.set_epoch(3)
    assert list(single) == one  # ... and the same ones again for the same epoch


def test_lr_scales_with_the_global_batch(shapes_root):
    data = tiny_shapes_data(shapes_root, batch_size=4)
    module = tiny_module(data, optimizer={"lr": 1e-3, "warmup_steps": 0, "base_batch_size": 2})
    trainer = quiet_trainer(max_steps=1, accumulate_grad_batches=2, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    # global batch 4 images x 1 device x 2 accumulated batches = 8 = 4 x base_batch_size
    assert trainer.optimizers[0].param_groups[0]["initial_lr"] == pytest.approx(4e-3)
