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


def _memory_format_after_one_step(shapes_root, **trainer_options):
    data = tiny_shapes_data(shapes_root, batch_size=4)
    module = tiny_module(data, channels_last=trainer_options.pop("channels_last", None))
    _trainer(1, [], limit_val_batches=0, **trainer_options).fit(module, datamodule=data)
    conv = next(p for p in module.model.parameters() if p.ndim == 4 and p.shape[1] > 1)
    return module, conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_channels_last_defaults_to_the_cpu_choice_and_explicit_values_hold(shapes_root):
    from centernet.training.module import default_channels_last

    assert default_channels_last(torch.device("cpu")) and not default_channels_last(torch.device("cuda"))
    module, channels_last = _memory_format_after_one_step(shapes_root)
    assert module.hparams.channels_last is None and channels_last  # decided in setup() for the CPU
    assert module.trainer.optimizers[0].defaults["fused"]
    _, channels_last = _memory_format_after_one_step(shapes_root, channels_last=False)
    assert not channels_last


def test_gradient_clipping_under_mixed_precision_uses_foreach_adamw(shapes_root):
    module, _ = _memory_format_after_one_step(shapes_root, precision="bf16-mixed", gradient_clip_val=1.0)
    optimizer = module.trainer.optimizers[0]
    assert optimizer.defaults["foreach"] and not optimizer.defaults["fused"]


@pytest.mark.slow
def test_compiled_fit_trains_and_keeps_checkpoint_keys(shapes_root):
    module, _ = _memory_format_after_one_step(shapes_root, channels_last=None)
    keys = set(module.state_dict())
    data = tiny_shapes_data(shapes_root, batch_size=4)
    compiled = tiny_module(data, compile=True)
    _trainer(2, [], limit_val_batches=0).fit(compiled, datamodule=data)
    assert compiled.hparams.compile and set(compiled.state_dict()) == keys
