"""Where ``centernet predict`` writes, decided before anything is written, so that no input is ever overwritten.

- Every source keeps its path relative to the source folder (a folder, the fixed part of a glob pattern, or a
  single file's folder) under ``--output``: ``a/x.png`` and ``b/x.png`` from ``photos/**/*.png`` give
  ``out/a/x.png`` and ``out/b/x.png``, and ``predictions.json`` names them ``a/x.png`` and ``b/x.png``.
- An annotated image keeps its source's name (``photo.jpg`` and ``photo.png`` stay two files); YOLO txt files
  take the stem, and the whole name where two sources of one folder share a stem (``photo.jpg.txt``).
- An output that is a source file (``--output`` equal to ``--source``), or a video written over the video it
  reads, is refused before the first write. Every write is checked and a failure names the file.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ImageOutputs", "plan_image_outputs", "refuse_overwriting", "source_root", "write_text_checked"]


@dataclass(frozen=True)
class ImageOutputs:
    """The outputs of one source image.

    Attributes:
        source: The image file read.
        relative: Its path relative to the source root (POSIX), the ``file_name`` of its COCO results.
        drawing: Where its annotated copy goes.
        labels: Where its YOLO txt goes (under ``<output>/labels``).
    """

    source: Path
    relative: str
    drawing: Path
    labels: Path


def source_root(source: str) -> Path:
    """The folder that source paths are relative to: the folder itself, a glob pattern's fixed leading folders,
    or a single file's folder."""
    path = Path(source)
    if glob.has_magic(source) and not path.exists():
        fixed = []
        for part in path.parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        return Path(*fixed) if fixed else Path(".")
    return path if path.is_dir() else path.parent


def plan_image_outputs(paths: Sequence[Path], source: str, output: Path) -> list[ImageOutputs]:
    """The outputs of every source image (see the module docstring).

    Raises:
        ValueError: an output would overwrite a source image.
    """
    root = source_root(source)
    relatives = [_relative(path, root) for path in paths]
    stems = Counter((str(Path(r).parent), Path(r).stem) for r in relatives)
    plans = []
    for path, relative in zip(paths, relatives, strict=True):
        shared_stem = stems[(str(Path(relative).parent), Path(relative).stem)] > 1
        label_name = Path(relative).name + ".txt" if shared_stem else Path(relative).stem + ".txt"
        plans.append(
            ImageOutputs(
                source=path,
                relative=relative,
                drawing=output / relative,
                labels=output / "labels" / Path(relative).parent / label_name,
            )
        )
    refuse_overwriting(paths, [plan.drawing for plan in plans])
    return plans


def refuse_overwriting(sources: Sequence[Path], outputs: Sequence[Path]) -> None:
    """Raise ``ValueError`` naming the first output that is one of the sources (compared as resolved paths)."""
    resolved = {_resolved(path): path for path in sources}
    for output in outputs:
        source = resolved.get(_resolved(output))
        if source is not None:
            raise ValueError(
                f"--output would overwrite the source {source} with its annotated copy ({output}); choose an output "
                "folder that holds no source image"
            )


def write_text_checked(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (creating its folder); an ``OSError`` names the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as error:
        raise OSError(f"{path}: could not write ({error.strerror or error})") from error


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix() if not _outside(path, root) else path.name
    except ValueError:  # another drive (Windows)
        return path.name


def _outside(path: Path, root: Path) -> bool:
    return os.path.relpath(path, root).startswith("..")


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))
