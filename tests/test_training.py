"""Training end to end: a short run must learn; a longer (slow) run must overfit a few images."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import quiet_trainer, tiny_module, tiny_shapes_data

from centernet.data.datamodule import CenterNetDataModule


class _LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _trainer(max_steps: int, callbacks: list[L.Callback], **kwargs) -> L.Trainer:
    return quiet_trainer(max_steps, callbacks, **kwargs)


def test_short_training_run_loss_falls(shapes_root):
    L.seed_everything(0)
    data = tiny_shapes_data(shapes_root, batch_size=8)
    module = tiny_module(data, optimizer={"lr": 3e-3, "warmup_steps": 5})
    recorder = _LossRecorder()
    _trainer(100, [recorder], limit_val_batches=0).fit(module, datamodule=data)
    assert len(recorder.losses) == 100
    assert all(torch.isfinite(torch.tensor(recorder.losses)))
    first, last = sum(recorder.losses[:5]) / 5, sum(recorder.losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)


@pytest.mark.slow
def test_overfits_a_few_images(shapes_root):
    """Trained and evaluated on the same 8 images without augmentation, AP50 must reach 0.9."""
    L.seed_everything(0)
    root = f"{shapes_root}/shapes-v1-seed0-train16-val8-64px"
    images, annotations = f"{root}/val/images", f"{root}/val/annotations.json"
    data = CenterNetDataModule(
        dataset="coco",
        train_images=images,
        train_annotations=annotations,
        val_images=images,
        val_annotations=annotations,
        image_size=64,
        batch_size=8,
        num_workers=0,
        scale_range=(1.0, 1.0),
        hflip_prob=0.0,
        color_jitter=0.0,
    )
    module = tiny_module(data, optimizer={"lr": 3e-3, "warmup_steps": 20})
    trainer = _trainer(400, [], check_val_every_n_epoch=400, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)
    metrics = trainer.validate(module, datamodule=data, verbose=False)[0]
    assert metrics["val/map_50"] >= 0.9, metrics


def test_channels_last_changes_speed_not_results(shapes_root):
    data = tiny_shapes_data(shapes_root, batch_size=4)
    data.setup("validate")
    batch = next(iter(data.val_dataloader()))
    losses = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        module = tiny_module(data, channels_last=channels_last).eval()
        with torch.no_grad():
            _, loss = module._shared_step(batch, "val")
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-4, atol=1e-5)
