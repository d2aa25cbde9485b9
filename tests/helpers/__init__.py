"""Helpers shared by the tests: a tiny model and data module, quiet trainers, synthetic batches, and writers of
small datasets in every supported format (:mod:`helpers.writers`)."""

from helpers.training import (
    TINY_MODEL,
    per_image,
    quiet_trainer,
    synthetic_batch,
    tiny_module,
    tiny_network,
    tiny_shapes_data,
)

__all__ = [
    "TINY_MODEL",
    "per_image",
    "quiet_trainer",
    "synthetic_batch",
    "tiny_module",
    "tiny_network",
    "tiny_shapes_data",
]
