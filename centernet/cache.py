"""Where centernet keeps what it generates once and reuses: the built-in datasets and the ONNX exports of
checkpoints. ``$CENTERNET_CACHE`` when set, else ``~/.cache/centernet``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["build_once", "default_cache_root"]


def default_cache_root() -> Path:
    """``$CENTERNET_CACHE`` if set, else ``~/.cache/centernet``."""
    env = os.environ.get("CENTERNET_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "centernet"


def build_once(final: Path, build: Callable[[Path], None]) -> None:
    """Create the folder ``final`` by calling ``build(tmp)`` on a temporary folder beside it, then renaming that into
    place in one step: an interrupted run never leaves a partial cache, and when another process finishes the same
    folder first (same key, same content) its copy is used."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
