"""Time the generation of the built-in shapes dataset (the demo's first step).

Usage: python benchmarks/shapes_generation.py [--train 1000] [--val 200] [--size 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from centernet.data import ensure_shapes_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        ensure_shapes_dataset(root, args.train, args.val, args.size, seed=0)
        generated = time.perf_counter() - start
        start = time.perf_counter()
        ensure_shapes_dataset(root, args.train, args.val, args.size, seed=0)
        reused = time.perf_counter() - start
    images = args.train + args.val
    print(f"generate {images} images of {args.size} px: {generated:.2f} s ({images / generated:.0f} images/s)")
    print(f"reuse the cache: {reused * 1000:.2f} ms")


if __name__ == "__main__":
    main()
