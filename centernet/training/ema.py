"""Exponential moving average of the weights: validated, checkpointed and used for inference.

An average of the weights over the last few hundred steps is usually a better detector than the last step's
weights (YOLOX, Ultralytics and MMDetection all ship one). Training keeps updating the raw weights; the average
is swapped into the model for validation, so ``val/*`` metrics and the "best" checkpoint describe it, and stored
in every checkpoint under ``ema_state_dict`` (resuming restores it; :meth:`CenterNetModule.load_from_checkpoint`
outside a trainer returns it).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn

from centernet.model.checkpoint import EMA_STATE_KEY

__all__ = ["EMA"]


class EMA(L.Callback):
    """Keep ``ema = d * ema + (1 - d) * weights`` after every optimiser step, with a warm-up of the decay.

    The decay ramps up as ``d = decay * (1 - exp(-updates / warmup_steps))`` so that the average does not stay
    anchored to the random initialisation early on (the schedule of YOLOX/Ultralytics). Floating-point
    parameters and buffers are averaged in fp32; integer buffers (BatchNorm's ``num_batches_tracked``) are
    copied.

    Args:
        decay: Final decay per optimiser step; the average spans about ``1 / (1 - decay)`` steps.
        warmup_steps: Time constant of the decay's warm-up, in optimiser steps.
    """

    def __init__(self, decay: float = 0.9998, warmup_steps: int = 2000) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if warmup_steps < 0:
            raise ValueError(f"EMA warmup_steps must be >= 0, got {warmup_steps}")
        self.decay = decay
        self.warmup_steps = warmup_steps
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] | None = None
        self._loaded: dict[str, torch.Tensor] | None = None
        self._backup: dict[str, torch.Tensor] | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(decay=self.decay, warmup_steps=self.warmup_steps)

    def average(self) -> dict[str, torch.Tensor]:
        """The averaged state dict (fp32 copies of floating-point tensors); empty before training starts."""
        return {name: value.clone() for name, value in (self.shadow or {}).items()}

    def current_decay(self) -> float:
        """The decay applied at the next update."""
        if self.warmup_steps == 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-(self.updates + 1) / self.warmup_steps))

    def _init_shadow(self, pl_module: L.LightningModule) -> None:
        state = pl_module.state_dict()
        source = self._loaded if self._loaded is not None else state
        missing = sorted(set(state) ^ set(source))
        if missing:
            raise RuntimeError(f"the checkpoint's EMA weights do not match the model: keys {missing[:10]}")
        self.shadow = {
            name: (source[name].detach().float() if value.is_floating_point() else source[name].detach()).to(
                value.device, copy=True
            )
            for name, value in state.items()
        }
        self._loaded = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.shadow is None or self._loaded is not None:
            self._init_shadow(pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Only inside fit: `validate`/`predict` on a checkpoint already load its EMA weights (see
        # CenterNetModule.on_load_checkpoint), and after a fit the trainer may validate another checkpoint.
        if trainer.state.fn != TrainerFn.FITTING or self.shadow is None:
            return
        self._backup = {name: value.detach().clone() for name, value in pl_module.state_dict().items()}
        pl_module.load_state_dict(self._cast_like(self.shadow, self._backup))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._backup is not None:
            pl_module.load_state_dict(self._backup)
            self._backup = None

    @torch.no_grad()
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # One update per optimiser step: not on accumulation batches, nor on steps skipped by the NaN guard.
        if self.shadow is None or trainer.global_step <= self.updates:
            return
        if getattr(pl_module, "last_step_skipped", False):
            self.updates = trainer.global_step
            return
        d = self.current_decay()
        self.updates = trainer.global_step
        for name, value in pl_module.state_dict().items():
            average = self.shadow[name]
            if average.is_floating_point():
                average.mul_(d).add_(value.detach().float(), alpha=1.0 - d)
            else:
                average.copy_(value)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self.shadow is not None:
            reference = pl_module.state_dict()
            checkpoint[EMA_STATE_KEY] = {
                k: v.detach().cpu() for k, v in self._cast_like(self.shadow, reference).items()
            }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if EMA_STATE_KEY in checkpoint:
            self._loaded = checkpoint[EMA_STATE_KEY]
            self.shadow = None

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "decay": self.decay, "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.updates = int(state_dict["updates"])

    @staticmethod
    def _cast_like(source: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: source[name].to(dtype=reference[name].dtype) for name in reference}
