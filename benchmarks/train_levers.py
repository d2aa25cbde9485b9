"""Each speed lever of the CenterNet training step, paired against its alternative (``benchmarks/timing.py``).

Every lever is timed on the whole step (forward, targets + loss, backward, AdamW) of CenterNet-R18 at
``--batch`` x 512 px with 8 objects per image, with everything else as ``centernet fit`` runs it on the device;
the variants of one lever are interleaved (ABBA) and each ratio is the median of per-repetition ratios
(interquartile range). A ratio above 1 means the alternative is that many times slower than the default.

- ``channels_last``: NCHW against channels-last memory for weights, images and heatmap targets;
- ``adamw``: the for-loop and foreach AdamW against the fused one (whole step, and the optimiser step alone);
- ``focal``: the focal loss differentiated by autograd through its formula against the hand-written gradient;
- ``compile``: ``torch.compile`` of the network against eager (its compilation is not timed).

Usage:

    python benchmarks/train_levers.py                                  # all levers, batch 8, 5 repetitions
    python benchmarks/train_levers.py --levers channels_last adamw --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from step_setup import centernet_r18, fit_defaults, step_fn, synthetic_batch
from timing import machine_header, paired_times, ratio_stats

import centernet.tasks.detection.criterion as criterion_module
from centernet.training.module import default_channels_last

LEVERS = ("channels_last", "adamw", "focal", "compile")


def _reference_focal(logits: torch.Tensor, target: torch.Tensor, num_objects, alpha=2.0, beta=4.0) -> torch.Tensor:
    """The focal loss as written in the paper, for autograd to differentiate (the implementation it replaced)."""
    logits, target = logits.float(), target.float()
    positive = torch.sigmoid(-logits).pow(alpha) * F.logsigmoid(logits)
    negative = (1.0 - target).pow(beta) * torch.sigmoid(logits).pow(alpha) * F.logsigmoid(-logits)
    loss = -torch.where(target == 1.0, positive, negative).sum()
    return loss / torch.as_tensor(num_objects, dtype=torch.float32).clamp(min=1.0)


@contextlib.contextmanager
def _reference_focal_loss() -> Iterator[None]:
    """The criterion uses :func:`_reference_focal` inside the block."""
    original = criterion_module.focal_loss_with_logits
    criterion_module.focal_loss_with_logits = _reference_focal
    try:
        yield
    finally:
        criterion_module.focal_loss_with_logits = original


def _with_reference_focal(step: Callable[[], float]) -> Callable[[], float]:
    def run() -> float:
        with _reference_focal_loss():
            return step()

    return run


def _optimizer_only(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """The optimiser step alone, on gradients that stay in place."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            param.grad = torch.randn_like(param) * 1e-3
    return optimizer.step


def _variants(lever: str, batch: dict, device: torch.device) -> dict[str, Callable[[], object]]:
    """Name -> step of each variant of ``lever``; the first is the default."""
    default_layout = default_channels_last(device)
    if lever == "channels_last":
        return {
            f"channels_last={value}": step_fn(*fit_defaults(centernet_r18(), batch, device, channels_last=value))
            for value in (default_layout, not default_layout)
        }
    if lever == "adamw":
        variants: dict[str, Callable[[], object]] = {}
        for kind in ("fused", "foreach", "loop"):
            variants[f"step, {kind} AdamW"] = step_fn(*fit_defaults(centernet_r18(), batch, device, optimizer=kind))
        for kind in ("fused", "foreach", "loop"):
            _, _, optimizer = fit_defaults(centernet_r18(), batch, device, optimizer=kind)
            variants[f"optimizer alone, {kind}"] = _optimizer_only(optimizer)
        return variants
    if lever == "focal":
        return {
            "hand-written gradient": step_fn(*fit_defaults(centernet_r18(), batch, device)),
            "autograd through the formula": _with_reference_focal(
                step_fn(*fit_defaults(centernet_r18(), batch, device))
            ),
        }
    model, compiled_batch, optimizer = fit_defaults(centernet_r18(), batch, device)
    compiled = step_fn(torch.compile(model), compiled_batch, optimizer)
    print("  compiling (first call, not timed) ...", flush=True)
    compiled()
    return {"eager": step_fn(*fit_defaults(centernet_r18(), batch, device)), "torch.compile": compiled}


def _report(lever: str, times: dict[str, list[float]], batch: int) -> list[str]:
    names = list(times)
    rows = []
    for name in names:
        baseline = names[0] if not name.startswith("optimizer alone") else "optimizer alone, fused"
        ratio = "1.00x" if name == baseline else str(ratio_stats(times[name], times[baseline]))
        rows.append(f"| {lever} | {name} | {1000 * statistics.median(times[name]):.0f} | {ratio} vs {baseline} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--levers", nargs="+", choices=LEVERS, default=list(LEVERS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device(args.device)
    batch = synthetic_batch(args.batch, args.size)
    rows = ["| lever | variant | median ms | time ratio (IQR) |", "| --- | --- | ---: | --- |"]
    for lever in args.levers:
        fns = _variants(lever, batch, device)
        if device.type == "cuda":
            fns = {name: (lambda fn=fn: (fn(), torch.cuda.synchronize(device))) for name, fn in fns.items()}
        times = paired_times(fns, args.repeats, args.warmup)
        rows += _report(lever, times, args.batch)
        print("\n".join(rows[-len(fns) :]), flush=True)
        del fns
    print(f"\n{machine_header(device)}")
    print(f"CenterNet-R18, 80 classes, batch {args.batch} x {args.size} px, 8 objects per image; paired medians of "
          f"{args.repeats} interleaved repetitions after {args.warmup} warm-up rounds\n")  # fmt: skip
    print("\n".join(rows))


if __name__ == "__main__":
    main()
