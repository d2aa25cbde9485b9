"""Throughput of the training data pipeline next to the training step it feeds.

The pipeline is what a training epoch runs: PNG decode + augmentation (the config's default pipeline, optionally
with the mosaic) + collate in the DataLoader with 0, 1 and 2 worker processes, plus rendering the targets of
each batch. The setup before it reads the annotations and checks every image (one decode each). The training step
is forward + loss + backward + AdamW on the same batches' size with the demo's model. Target: the pipeline delivers
at least 3x the training step's images/s with the workers available.
Usage:

    python benchmarks/data.py                                        # the demo's setting: 128 px, batch 16
    python benchmarks/data.py --source-size 640 --image-size 512 --batch 8 --images 64
    python benchmarks/data.py --mosaic 1.0
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from centernet.data import CenterNetDataModule, ensure_shapes_dataset
from centernet.model import CenterNet
from centernet.tasks.detection.targets import render_targets


def _pipeline_images_per_second(dm: CenterNetDataModule, workers: int, batches: int, classes: int) -> float:
    dm.num_workers = workers
    torch.manual_seed(0)
    loader = dm.train_dataloader()
    seen, start = 0, None
    for epoch in range(100):
        for i, batch in enumerate(loader):
            size = batch["image"].shape[-1] // 4
            render_targets(batch["bboxes"], batch["labels"], batch["mask"], classes, (size, size))
            if start is None and (epoch or i):  # the first batch pays for starting the workers
                start = time.perf_counter()
            elif start is not None:
                seen += len(batch["image"])
            if seen >= batches * dm.batch_size:
                return seen / (time.perf_counter() - start)
    raise RuntimeError("not enough batches")


def _train_step_images_per_second(batch: dict, classes: int, repeats: int) -> float:
    torch.manual_seed(0)
    model = CenterNet(classes, backbone="resnet18", neck={"name": "lateral", "channels": (128, 64, 64)})
    model = model.to(memory_format=torch.channels_last)
    batch = {**batch, "image": batch["image"].contiguous(memory_format=torch.channels_last)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss = model.compute_loss(model(batch), batch)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:  # the first step is a warm-up
            times.append(time.perf_counter() - start)
    return len(batch["image"]) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="generated training images (PNG, shapes dataset)")
    parser.add_argument("--source-size", type=int, default=128, help="side of the generated images")
    parser.add_argument("--image-size", type=int, default=128, help="network input side")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20, help="batches timed per worker setting")
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps")
    parser.add_argument("--mosaic", type=float, default=0.0, help="mosaic probability")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        ensure_shapes_dataset(root, num_train=args.images, num_val=1, image_size=args.source_size)
        dm = CenterNetDataModule(
            dataset="shapes",
            shapes_root=root,
            shapes_train_images=args.images,
            shapes_val_images=1,
            shapes_image_size=args.source_size,
            image_size=args.image_size,
            batch_size=args.batch,
            mosaic=args.mosaic,
        )
        start = time.perf_counter()
        dm.setup("fit")  # reads the annotations and checks (decodes) every image
        setup = (time.perf_counter() - start) / (args.images + 1)
        classes = dm.num_classes
        step = _train_step_images_per_second(next(iter(dm.train_dataloader())), classes, args.repeats)
        print(
            f"{args.images} images of {args.source_size} px -> {args.image_size} px, batch {args.batch}, "
            f"mosaic {args.mosaic}, torch threads {torch.get_num_threads()}"
        )
        print(f"setup, the image check included: {setup * 1000:.2f} ms/image")
        print(f"training step (ResNet-18, lateral neck 128/64/64, channels-last): {step:.1f} images/s")
        for workers in args.workers:
            rate = _pipeline_images_per_second(dm, workers, args.batches, classes)
            print(f"pipeline, {workers} workers: {rate:.1f} images/s ({rate / step:.1f}x the training step)")


if __name__ == "__main__":
    main()
