"""What a pose dataset says about its joints: their names, the skeleton's edges, the left/right pairs that a
mirror swaps and the OKS sigmas of the evaluation.

It travels with the data (linked into the model and stored in checkpoints as a plain dict), so that flip
test-time augmentation, drawing and evaluation never rely on a hard-coded joint list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from centernet.data.keypoints import COCO_JOINTS, flip_pairs_from_names

__all__ = ["COCO_JOINTS", "COCO_SIGMAS", "DEFAULT_SIGMA", "Skeleton", "flip_pairs_from_names"]

# COCO's per-joint OKS sigmas (cocoapi, ``Params.kpt_oks_sigmas``), in the order of COCO_JOINTS.
COCO_SIGMAS: tuple[float, ...] = tuple(
    v / 10.0
    for v in (0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89)
)
# The sigma of every joint of a dataset whose joints are not COCO's 17: the mean of COCO's sigmas (0.067), the
# localisation tolerance of an average COCO joint, rather than a guess per joint.
DEFAULT_SIGMA = round(sum(COCO_SIGMAS) / len(COCO_SIGMAS), 4)


@dataclass(frozen=True)
class Skeleton:
    """The joints of a pose dataset.

    Attributes:
        joint_names: K joint names, index = joint.
        edges: Skeleton edges as 0-based joint index pairs (drawing only).
        flip_pairs: Left/right joint pairs that a horizontal mirror swaps (0-based).
        sigmas: K OKS sigmas (COCO's for COCO's 17 joints, :data:`DEFAULT_SIGMA` each otherwise).
    """

    joint_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        k = len(self.joint_names)
        if k < 1:
            raise ValueError("a skeleton needs at least one joint")
        object.__setattr__(self, "edges", tuple((int(a), int(b)) for a, b in self.edges))
        object.__setattr__(self, "flip_pairs", tuple((int(a), int(b)) for a, b in self.flip_pairs))
        if not self.sigmas:
            sigmas = COCO_SIGMAS if tuple(self.joint_names) == COCO_JOINTS else (DEFAULT_SIGMA,) * k
            object.__setattr__(self, "sigmas", sigmas)
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        if len(self.sigmas) != k:
            raise ValueError(f"{len(self.sigmas)} OKS sigmas for {k} joints")
        for what, pairs in (("edge", self.edges), ("flip pair", self.flip_pairs)):
            for a, b in pairs:
                if not (0 <= a < k and 0 <= b < k) or a == b:
                    raise ValueError(f"{what} ({a}, {b}) does not join two of the {k} joints")
        used = [i for pair in self.flip_pairs for i in pair]
        if len(used) != len(set(used)):
            raise ValueError(f"a joint appears in more than one flip pair: {self.flip_pairs}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @classmethod
    def from_names(cls, names: Sequence[str], edges: Sequence[Sequence[int]] = ()) -> Skeleton:
        """The skeleton of joints named ``names``; the flip pairs follow from the names' left/right prefixes."""
        pairs = tuple(tuple(pair) for pair in flip_pairs_from_names(names))
        return cls(tuple(str(n) for n in names), tuple(tuple(e) for e in edges), pairs)

    @classmethod
    def from_dict(cls, value: Skeleton | Mapping[str, Any]) -> Skeleton:
        """From :meth:`to_dict`'s plain dict (a checkpoint's, a config's)."""
        if isinstance(value, Skeleton):
            return value
        known = {"joint_names", "edges", "flip_pairs", "sigmas"}
        unknown = sorted(set(value) - known)
        if unknown or "joint_names" not in value:
            raise ValueError(f"a skeleton is a mapping of {sorted(known)} with joint_names; got keys {sorted(value)}")
        return cls(
            tuple(value["joint_names"]),
            tuple(tuple(e) for e in value.get("edges", ())),
            tuple(tuple(p) for p in value.get("flip_pairs", ())),
            tuple(value.get("sigmas", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain lists (a checkpoint must load with ``torch.load(weights_only=True)``)."""
        return {key: [list(v) if isinstance(v, tuple) else v for v in values] for key, values in asdict(self).items()}

    def flip_permutation(self) -> list[int]:
        """Joint index -> the index of its mirror image's joint (itself for unpaired joints)."""
        permutation = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            permutation[a], permutation[b] = b, a
        return permutation
