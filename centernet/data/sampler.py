"""Reproducible training order and augmentation: a function of (seed, epoch, sample), never of process history.

A resumed run must see exactly the batches and augmentations that an uninterrupted run would have seen. With a
``RandomSampler`` the order depends on the global RNG at the moment the epoch starts, and albumentations keeps
its own random state inside each worker process; neither survives a restart. Here the sampler derives the
permutation of each epoch from ``(seed, epoch)``, like ``DistributedSampler``, and hands every sample its own
augmentation seed, so the result is the same with 0 or 8 workers, after a resume, and on any number of ranks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler

__all__ = ["SeededEpochSampler", "SeededSamples"]


class SeededEpochSampler(DistributedSampler):
    """A ``DistributedSampler`` that yields ``(index, augmentation_seed)`` pairs.

    The permutation is ``DistributedSampler``'s (seeded by ``seed + epoch``, padded by repetition so that all
    ranks get the same number of samples); the augmentation seed of index ``i`` in epoch ``e`` is drawn from a
    generator seeded with ``(seed, e)``. Lightning calls ``set_epoch`` before each training epoch and leaves a
    ``DistributedSampler`` in place under DDP.

    Args:
        dataset: The map-style dataset (only its length is used).
        num_replicas: Number of ranks.
        rank: This process's rank.
        seed: Shared by all ranks (Lightning's ``PL_GLOBAL_SEED``).
        drop_last: Drop the tail instead of padding to a multiple of ``num_replicas``.
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0, drop_last: bool = False
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=drop_last)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator()
        generator.manual_seed(self.seed * 1_000_003 + self.epoch)  # distinct from the permutation's seed + epoch
        seeds = torch.randint(0, 2**31 - 1, (len(self.dataset),), generator=generator)  # (len(dataset),)
        for index in super().__iter__():
            yield index, int(seeds[index])


class SeededSamples(Dataset):
    """Wraps a dataset that has ``set_random_seed``: item ``(i, seed)`` is sample ``i`` augmented
    with that seed. Plain integer indices fall through unchanged (e.g. for inspection)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if isinstance(key, tuple):
            index, seed = key
            self.dataset.set_random_seed(seed)  # the transform's random state and the mosaic's
            return self.dataset[index]
        return self.dataset[key]
