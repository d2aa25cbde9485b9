"""Training throughput of a CenterNet configuration on synthetic batches (no data loading).

Prints the median time of forward + loss + backward + AdamW step, the images/s, and the share of the step spent
rendering the targets. Usage:

    python benchmarks/train_step.py --neck lateral --neck-channels 128 64 64 --size 128 --batch 16
    python benchmarks/train_step.py --neck upsampling --neck-channels 256 128 64 --size 512 --batch 8
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from centernet.model import CenterNet
from centernet.tasks.detection.targets import render_targets


def _batch(batch: int, size: int, boxes: int, classes: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    centres = torch.rand(batch, boxes, 2, generator=generator) * 0.8 + 0.1
    sizes = torch.rand(batch, boxes, 2, generator=generator) * 0.4 + 0.05
    return {
        "image": torch.rand(batch, 3, size, size, generator=generator),
        "bboxes": torch.cat([centres, sizes], dim=-1),
        "labels": torch.randint(0, classes, (batch, boxes), generator=generator),
        "mask": torch.ones(batch, boxes),
    }


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--neck", default="lateral", choices=["upsampling", "lateral"])
    parser.add_argument("--neck-channels", type=int, nargs=3, default=[128, 64, 64])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--boxes", type=int, default=8, help="objects per image")
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = CenterNet(
        args.classes, backbone=args.backbone, neck={"name": args.neck, "channels": tuple(args.neck_channels)}
    )
    batch = _batch(args.batch, args.size, args.boxes, args.classes)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = model.compute_loss(model(batch), batch)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def targets() -> None:
        out = args.size // 4
        render_targets(batch["bboxes"], batch["labels"], batch["mask"], args.classes, (out, out))

    step()  # warm-up
    step_s = _median_seconds(step, args.repeats)
    target_s = _median_seconds(targets, args.repeats)
    print(
        f"{args.backbone} neck={args.neck}{args.neck_channels} {args.size}px batch {args.batch} "
        f"threads {torch.get_num_threads()}: step {step_s * 1000:.0f} ms, {args.batch / step_s:.1f} images/s, "
        f"targets {target_s * 1000:.2f} ms ({100 * target_s / step_s:.1f}% of the step)"
    )


if __name__ == "__main__":
    main()
