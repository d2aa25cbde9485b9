"""Where one CenterNet training step spends its time: a table of phases and their shares of the step.

The step is CenterNet-R18 at ``--batch`` x 512 px, 8 objects per image, set up as ``centernet fit`` does on the
device (``benchmarks/step_setup.py``). Each repetition runs the phases of one step in order and times each:

- data: one batch of the shapes dataset from the training DataLoader, in this process (``fit``'s worker
  processes overlap it with the step; here it is shown for scale, and not part of the step's total);
- forward: the network, images to raw maps;
- targets: rendering the ground-truth heatmap, sizes and offsets;
- loss: focal + L1 losses from the maps and targets (the criterion minus its target rendering);
- backward: ``loss.backward()``;
- optimizer: ``zero_grad`` and the AdamW step.

Shares are medians over repetitions of each phase's fraction of that repetition's step, with the interquartile
range. ``--profiler`` adds torch.profiler's operators with the most self CPU time.

Usage:

    python benchmarks/profile_step.py                      # batch 8, 512 px, 5 repetitions
    python benchmarks/profile_step.py --repeats 3 --profiler
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator

import torch
from step_setup import NUM_CLASSES, centernet_r18, fit_defaults, synthetic_batch
from timing import machine_header, ratio_stats

from centernet.tasks.detection.criterion import heatmap_targets

PHASES = ("forward", "targets", "loss", "backward", "optimizer")


def _data_batches(batch: int, size: int) -> Iterator[dict]:
    """Endless batches of the shapes dataset (PNG decode, augmentation, collate) at ``size`` px, in-process."""
    from centernet.data import CenterNetDataModule, ensure_shapes_dataset

    root = tempfile.mkdtemp(prefix="centernet-profile-")
    images = 4 * batch
    ensure_shapes_dataset(root, num_train=images, num_val=1, image_size=size)
    data = CenterNetDataModule(dataset="shapes", shapes_root=root, shapes_train_images=images, shapes_val_images=1,
                               shapes_image_size=size, image_size=size, batch_size=batch, num_workers=0)  # fmt: skip
    data.setup("fit")
    while True:
        yield from data.train_dataloader()


def _timed_step(model, batch: dict, optimizer: torch.optim.Optimizer, sync: Callable[[], None]) -> dict[str, float]:
    """Seconds of each phase of one training step, run in order."""
    criterion = model.criterion
    times: dict[str, float] = {}

    def clock(name: str, start: float) -> float:
        sync()
        now = time.perf_counter()
        times[name] = now - start
        return now

    start = time.perf_counter()
    outputs = model(batch["image"])
    start = clock("forward", start)
    targets = heatmap_targets(outputs["heatmap"], batch, criterion.num_classes, criterion.options)
    start = clock("targets", start)
    loss = criterion(outputs, batch)["total"]  # renders the targets again: subtracted below
    start = clock("loss", start)
    times["loss"] = max(0.0, times["loss"] - times["targets"])
    loss.backward()
    start = clock("backward", start)
    optimizer.zero_grad(set_to_none=False)
    optimizer.step()
    clock("optimizer", start)
    del targets
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-data", action="store_true", help="skip the data-loading row")
    parser.add_argument("--profiler", action="store_true", help="also print torch.profiler's top operators")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    model, batch, optimizer = fit_defaults(centernet_r18(), synthetic_batch(args.batch, args.size), device)
    data = None if args.no_data else _data_batches(args.batch, args.size)
    _timed_step(model, batch, optimizer, sync)  # warm-up
    rows: dict[str, list[float]] = {name: [] for name in (*PHASES, "step", "data")}
    for _ in range(args.repeats):
        if data is not None:
            start = time.perf_counter()
            next(data)
            rows["data"].append(time.perf_counter() - start)
        phases = _timed_step(model, batch, optimizer, sync)
        for name in PHASES:
            rows[name].append(phases[name])
        rows["step"].append(sum(phases.values()))
    print(machine_header(device))
    print(f"CenterNet-R18, {NUM_CLASSES} classes, batch {args.batch} x {args.size} px, 8 objects per image, "
          f"channels_last={batch['image'].is_contiguous(memory_format=torch.channels_last)}, "
          f"AdamW fused={optimizer.defaults.get('fused')}; medians of {args.repeats} steps\n")  # fmt: skip
    print("| phase | ms | share of the step (IQR) |\n| --- | ---: | --- |")
    for name in (*PHASES, "step", "data"):
        if not rows[name]:
            continue
        share = ratio_stats([100 * t for t in rows[name]], rows["step"])
        note = " (in-process; overlapped by fit's workers)" if name == "data" else ""
        print(f"| {name}{note} | {1000 * statistics.median(rows[name]):.0f} | {share.median:.1f}% "
              f"({share.q1:.1f}-{share.q3:.1f}) |")  # fmt: skip
    if args.profiler:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            _timed_step(model, batch, optimizer, sync)
        print("\n" + profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
