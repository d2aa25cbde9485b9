"""Crash-safe checkpoint files: a kill or a power cut during a save never leaves a truncated ``last.ckpt``.

The checkpoint is written to a temporary file in the destination folder, flushed to disk (``fsync``) and moved
over the destination with ``os.replace``, which is atomic on POSIX and Windows within one file system; the
folder is then synced so the rename itself is durable. A reader sees either the previous complete file or the
new complete file. Remote paths (``s3://...``) go through Lightning's default writer.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.plugins.io.checkpoint_plugin import CheckpointIO

from centernet.model.checkpoint import read_checkpoint

__all__ = ["AtomicCheckpointIO", "atomic_torch_save", "has_checkpoint_io"]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` through a synced temporary file and an atomic rename.

    The file gets the permissions the umask gives a new file (a temporary file would otherwise keep 0600).

    Raises:
        OSError: naming ``path`` when the checkpoint cannot be written (a full disk, no permission); the temporary
            file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, path)
    except (OSError, RuntimeError) as error:  # torch reports a failed write as RuntimeError
        Path(tmp_name).unlink(missing_ok=True)
        raise OSError(f"{path}: could not save the checkpoint ({error}); is the disk full?") from error
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _umask() -> int:
    """The process's umask (reading it means setting it; it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` that saves local checkpoints with :func:`atomic_torch_save` and reads them as data
    only, in any format version (:func:`centernet.model.checkpoint.read_checkpoint`).

    ``centernet fit`` installs it by default (``trainer.plugins``); with a plain ``Trainer`` pass
    ``plugins=[AtomicCheckpointIO()]``. Resuming (``--ckpt_path``) therefore never unpickles code, whatever
    ``weights_only`` asks for.
    """

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        if "://" in str(path) and not str(path).startswith("file://"):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return read_checkpoint(str(path).removeprefix("file://"))

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        if "://" in str(path) and not str(path).startswith("file://"):
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, path)


def has_checkpoint_io(plugins: Any) -> bool:
    """Whether a ``Trainer(plugins=...)`` value already contains a ``CheckpointIO``."""
    items = plugins if isinstance(plugins, (list, tuple)) else [plugins]
    return any(isinstance(item, CheckpointIO) for item in items if item is not None)
