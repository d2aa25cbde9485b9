"""Two-process DDP (gloo, CPU) training and validation, run by tests/test_distributed.py.

usage: python ddp_fit.py SHAPES_ROOT OUT_DIR

Lightning's DDP launcher re-runs this script for rank 1. Rank 1 plants a NaN in its batch at the second step:
both ranks must skip that optimiser step together. Each rank writes OUT_DIR/rank<r>.pt with its weights, its
validation metrics, the image ids it evaluated and its number of skipped steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the shared helpers
from helpers import TINY_MODEL, tiny_module  # noqa: E402

from centernet.data.datamodule import CenterNetDataModule  # noqa: E402
from centernet.tasks.detection.targets import render_targets  # noqa: E402
from centernet.training.module import CenterNetModule  # noqa: E402


class PlantNaN(L.Callback):
    """Puts a NaN into rank 1's images at batch 1 (the data of one rank only goes bad)."""

    def __init__(self) -> None:
        self.planted = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_rank == 1 and trainer.current_epoch == 0 and batch_idx == 1:
            batch["image"][0, 0, 0, 0] = float("nan")
            self.planted += 1


class NoisyOracleModule(CenterNetModule):
    """Validation maps made from each image's ground truth plus noise seeded by its image id.

    A few training steps give AP 0, which would make "distributed == single-process" trivially true; these maps
    give non-trivial detections (misplaced, mis-sized and spurious ones) that are the same on any rank. They go
    through the real decoding, pixel mapping, gathering, deduplication and COCO evaluation.
    """

    def _shared_step(self, batch, prefix):
        if prefix == "train":
            return super()._shared_step(batch, prefix)
        num_images, _, height, width = batch["image"].shape
        out_h, out_w = height // 4, width // 4
        targets = render_targets(
            batch["bboxes"], batch["labels"], batch["mask"], self.hparams.num_classes, (out_h, out_w)
        )
        heatmaps, sizes, offsets = [], [], []
        for i in range(num_images):
            generator = torch.Generator().manual_seed(int(batch["image_id"][i]))
            noise = torch.randn(targets.heatmap[i].shape, generator=generator)
            heatmaps.append(torch.logit(targets.heatmap[i].clamp(1e-3, 1 - 1e-3)) + 2.0 * noise)  # (C, h, w)
            size = torch.zeros(2, out_h * out_w)
            offset = torch.zeros(2, out_h * out_w)
            real = targets.mask[i] > 0
            jitter = 1.0 + 0.25 * torch.randn(int(real.sum()), 2, generator=generator)
            size[:, targets.indices[i][real]] = (targets.size[i][real] * jitter).T
            offset[:, targets.indices[i][real]] = targets.offset[i][real].T
            sizes.append(size.view(2, out_h, out_w))
            offsets.append(offset.view(2, out_h, out_w))
        outputs = {"heatmap": torch.stack(heatmaps), "size": torch.stack(sizes), "offset": torch.stack(offsets)}
        return outputs, torch.zeros(())


class CountSteps(L.Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1


def main(shapes_root: str, out_dir: str) -> None:
    L.seed_everything(0)
    data = CenterNetDataModule(
        dataset="shapes",
        shapes_root=shapes_root,
        shapes_train_images=16,
        shapes_val_images=7,  # odd: DistributedSampler pads rank 1 with a repeat of image 0
        shapes_image_size=64,
        image_size=64,
        batch_size=2,
        val_batch_size=1,
        num_workers=0,
    )
    module = tiny_module(data, optimizer={"lr": 1e-3, "warmup_steps": 2})
    counter = CountSteps()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=100,
        callbacks=[PlantNaN(), counter],
    )
    trainer.fit(module, datamodule=data)
    metrics = trainer.validate(module, datamodule=data, verbose=False)[0]
    oracle = NoisyOracleModule(data.num_classes, data.class_names, data.category_ids, 64, **TINY_MODEL)
    oracle_metrics = trainer.validate(oracle, datamodule=data, verbose=False)[0]
    torch.save(
        {
            "state_dict": {k: v.detach().cpu() for k, v in module.model.state_dict().items()},
            "metrics": metrics,
            "oracle_metrics": oracle_metrics,
            "image_ids": module.last_val_image_ids,
            "global_step": trainer.global_step,
            "skipped_steps": module.skipped_steps,
            "batches": counter.batches,
            "world_size": trainer.world_size,
            "num_val_samples": len(trainer.val_dataloaders.sampler),
        },
        f"{out_dir}/rank{trainer.global_rank}.pt",
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
