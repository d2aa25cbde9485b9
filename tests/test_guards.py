"""Training guards: the NaN guard, bf16 autocast with saturated logits, seeded determinism, EMA, fine-tuning."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from helpers import quiet_trainer, tiny_module, tiny_network, tiny_shapes_data

from centernet.model.checkpoint import EMA_STATE_KEY
from centernet.training.ema import EMA
from centernet.training.finetune import load_finetune_weights
from centernet.training.module import CenterNetModule


def _trainer(max_steps: int, callbacks=(), **kwargs) -> L.Trainer:
    return quiet_trainer(max_steps, callbacks, limit_val_batches=0, **kwargs)


def _module(data, **kwargs) -> CenterNetModule:
    return tiny_module(data, **kwargs)


class _PlantNaN(L.Callback):
    """Puts a NaN pixel into the images of the given batches."""

    def __init__(self, batches: set[int]) -> None:
        self.batches = batches
        self.image_ids: list[list[int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx in self.batches:
            batch["image"][0, 0, 0, 0] = float("nan")
            self.image_ids.append(batch["image_id"].tolist())


class _Snapshots(L.Callback):
    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def test_nan_guard_skips_the_step_and_names_the_images(shapes_root, caplog):
    L.seed_everything(0)
    data = tiny_shapes_data(shapes_root, batch_size=4)
    module = _module(data)
    plant, snapshots = _PlantNaN({1}), _Snapshots()
    with caplog.at_level(logging.WARNING, logger="centernet.training.module"):
        _trainer(3, [plant, snapshots]).fit(module, datamodule=data)
    assert module.skipped_steps == 1
    # The poisoned batch changed nothing: weights after it equal the weights before it, and all stay finite.
    for name, value in snapshots.weights[0].items():
        assert torch.equal(value, snapshots.weights[1][name]), name
        assert torch.isfinite(snapshots.weights[2][name].float()).all(), name
    assert any(name != "model.backbone.conv1.weight" for name in snapshots.weights[0])
    assert not torch.equal(
        snapshots.weights[1]["model.head.size.0.weight"], snapshots.weights[2]["model.head.size.0.weight"]
    )
    messages = [r.getMessage() for r in caplog.records if "non-finite training loss" in r.getMessage()]
    assert len(messages) == 1 and f"image ids {plant.image_ids[0]}" in messages[0]


def test_nan_guard_stops_after_too_many_in_a_row(shapes_root):
    data = tiny_shapes_data(shapes_root, batch_size=4)
    module = _module(data, max_nonfinite_steps=2)
    with pytest.raises(RuntimeError, match=r"2 non-finite losses in a row \(max_nonfinite_steps=2\)"):
        _trainer(4, [_PlantNaN({0, 1, 2, 3})]).fit(module, datamodule=data)


def test_bf16_autocast_steps_stay_finite_with_saturated_logits(shapes_root):
    L.seed_everything(0)
    data = tiny_shapes_data(shapes_root, batch_size=4)
    for bias in (40.0, -40.0):  # every cell certain of an object / certain of none: sigmoid rounds to 1 or 0
        module = _module(data)
        with torch.no_grad():
            module.model.head.heatmap[-1].bias.fill_(bias)
        snapshots = _Snapshots()
        trainer = _trainer(3, [snapshots], precision="bf16-mixed")
        trainer.fit(module, datamodule=data)
        assert module.skipped_steps == 0
        assert all(torch.isfinite(v.float()).all() for v in snapshots.weights[-1].values())
        assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_focal_loss_runs_in_fp32_under_bf16_autocast(shapes_root):
    data = tiny_shapes_data(shapes_root, batch_size=2)
    data.setup("validate")
    batch = next(iter(data.val_dataloader()))
    model = tiny_network(data.num_classes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(batch)
        losses = model.compute_loss(outputs, batch)
    assert outputs["heatmap"].dtype == torch.bfloat16
    assert all(loss.dtype == torch.float32 for loss in losses.values())


def test_seeded_runs_give_identical_weights(shapes_root):
    weights = []
    for _ in range(2):
        L.seed_everything(123)
        data = tiny_shapes_data(shapes_root, batch_size=4)
        module = _module(data)
        _trainer(3).fit(module, datamodule=data)
        weights.append(module.state_dict())
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_ema_follows_the_reference_formula_and_is_what_validation_and_loading_see(shapes_root, tmp_path):
    L.seed_everything(0)
    data = tiny_shapes_data(shapes_root, batch_size=4)
    module = _module(data)
    initial = {k: v.detach().clone().float() for k, v in module.state_dict().items()}
    ema, snapshots = EMA(decay=0.9, warmup_steps=2), _Snapshots()
    trainer = _trainer(3, [ema, snapshots])
    trainer.fit(module, datamodule=data)
    name = "model.head.heatmap.2.weight"
    expected = initial[name]
    for step, weights in enumerate(snapshots.weights, start=1):
        d = 0.9 * (1 - torch.exp(torch.tensor(-step / 2.0)).item())
        expected = d * expected + (1 - d) * weights[name].float()
    torch.testing.assert_close(ema.average()[name], expected, rtol=0, atol=1e-7)

    # Checkpoints carry the average; outside a trainer, loading a checkpoint gives the averaged weights.
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)
    assert torch.equal(saved[EMA_STATE_KEY][name], ema.average()[name])
    assert torch.equal(saved["state_dict"][name], module.state_dict()[name])
    loaded = CenterNetModule.load_from_checkpoint(path)
    assert torch.equal(loaded.state_dict()[name], ema.average()[name])


def test_finetune_with_another_class_count_reinitialises_only_the_class_layer(tmp_path, caplog):
    torch.manual_seed(0)
    source = tiny_network(5)
    path = tmp_path / "five_classes.pt"
    torch.save(source.state_dict(), path)
    target = tiny_network(3)
    fresh_bias = target.head.heatmap[2].bias.detach().clone()
    reinitialised = load_finetune_weights(target, path, "head.heatmap.2")
    assert reinitialised == ["head.heatmap.2.bias", "head.heatmap.2.weight"]
    assert torch.equal(target.head.heatmap[2].bias, fresh_bias)  # the prior bias, -log((1 - 0.1) / 0.1)
    torch.testing.assert_close(fresh_bias, torch.full((3,), -2.1972246))
    for name, value in source.state_dict().items():
        if name not in reinitialised:
            assert torch.equal(target.state_dict()[name], value), name


def test_finetune_rejects_any_other_mismatch(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(tiny_network(5).state_dict(), path)
    wider = {"head": {"channels": 48}}
    with pytest.raises(ValueError, match=r"shape mismatches .*head\.heatmap\.0\.weight"):
        load_finetune_weights(tiny_network(5, **wider), path, "head.heatmap.2")
    plain_neck = {"neck": {"name": "upsampling"}}
    with pytest.raises(ValueError, match=r"(missing|unexpected) keys \[.*neck\."):
        load_finetune_weights(tiny_network(5, **plain_neck), path, "head.heatmap.2")


def test_init_weights_loads_a_checkpoint_when_a_fit_starts(shapes_root, tmp_path, caplog):
    L.seed_everything(0)
    data = tiny_shapes_data(shapes_root, batch_size=4)
    source = tiny_module(num_classes=3)  # trained elsewhere on 3 classes
    path = tmp_path / "source.ckpt"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, path)

    class _Before(L.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            self.weights = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    module = _module(data, init_weights=str(path))  # the shapes data has 5 classes
    before = _Before()
    with caplog.at_level(logging.WARNING, logger="centernet.training.module"):
        _trainer(1, [before]).fit(module, datamodule=data)
    for name, value in source.state_dict().items():
        if "heatmap.2" not in name:
            assert torch.equal(before.weights[name], value), name
    assert before.weights["model.head.heatmap.2.bias"].shape == (5,)
    messages = [r.getMessage() for r in caplog.records]
    assert any("5 classes: re-initialised head.heatmap.2.bias, head.heatmap.2.weight" in m for m in messages), messages
