"""Lightning's cost: the project's training step in ``Trainer.fit`` against the same step in a bare PyTorch loop.

Both train CenterNet-R18 (``benchmarks/step_setup.py``) at ``--batch`` x 512 px on the same in-memory batch,
each its own copy of the model with its own AdamW, as ``centernet fit`` sets them up on the device. The bare
step runs inside the fit, from a callback, alternately just before and just after Lightning's step (ABBA), so
the two are paired repetition by repetition. Lightning's step is the time from one training batch to the next,
minus the bare step run in between: ``CenterNetModule``'s training step with its NaN guard and logging, the
backward pass, the optimiser and scheduler steps, hooks and fetching the (in-memory) batch.

Usage:

    python benchmarks/lightning_step.py                    # batch 8, 5 paired repetitions
    python benchmarks/lightning_step.py --repeats 3 --batch 4
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import statistics
import time
import warnings

import lightning as L
import torch
from step_setup import NUM_CLASSES, fit_defaults, step_fn, synthetic_batch
from timing import machine_header, ratio_stats

from centernet.training.module import CenterNetModule


class _PairedBareStep(L.Callback):
    """Runs and times the bare step next to each of Lightning's steps, before it in even steps, after in odd."""

    def __init__(self, bare_step, warmup: int) -> None:
        self.bare_step, self.warmup = bare_step, warmup
        self.bare: list[float] = []
        self.lightning: list[float] = []
        self._step_start: float | None = None
        self._inside = 0.0  # bare-step seconds spent inside the current Lightning interval

    def _bare(self, index: int) -> float:
        start = time.perf_counter()
        self.bare_step()
        seconds = time.perf_counter() - start
        if index >= self.warmup:
            self.bare.append(seconds)
        return seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._step_start is not None and batch_idx - 1 >= self.warmup:
            self.lightning.append(now - self._step_start - self._inside)  # the previous step, end to start
        if batch_idx % 2 == 0:
            self._bare(batch_idx)  # A B: bare, then Lightning's
        self._step_start, self._inside = time.perf_counter(), 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx % 2 == 1:
            self._inside += self._bare(batch_idx)  # B A: Lightning's, then bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    device = torch.device(args.device)
    batch = synthetic_batch(args.batch, args.size)
    torch.manual_seed(0)
    module = CenterNetModule(NUM_CLASSES, image_size=args.size, backbone={"name": "resnet18", "pretrained": False},
                             optimizer={"lr": 1e-4, "warmup_steps": 0})  # fmt: skip
    bare = step_fn(*fit_defaults(copy.deepcopy(module.model), batch, device))
    # The last Lightning step has no next batch to end it: one extra step, untimed.
    steps = args.warmup + args.repeats + 1
    callback = _PairedBareStep(bare, args.warmup)
    trainer = L.Trainer(accelerator=device.type, devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
                        limit_val_batches=0)  # fmt: skip
    loader = torch.utils.data.DataLoader([batch] * steps, batch_size=None)
    trainer.fit(module, train_dataloaders=loader)
    bare_times, lightning_times = callback.bare[: len(callback.lightning)], callback.lightning
    print(machine_header(device))
    print(f"CenterNet-R18, {NUM_CLASSES} classes, batch {args.batch} x {args.size} px; "
          f"{len(lightning_times)} paired repetitions after {args.warmup} warm-up\n")  # fmt: skip
    print("| step | median ms | vs the bare loop (IQR) |\n| --- | ---: | --- |")
    print(f"| bare PyTorch loop | {1000 * statistics.median(bare_times):.0f} | 1.00x |")
    print(f"| Trainer.fit with CenterNetModule | {1000 * statistics.median(lightning_times):.0f} | "
          f"{ratio_stats(lightning_times, bare_times)} |")  # fmt: skip


if __name__ == "__main__":
    main()
