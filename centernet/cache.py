"""Where centernet keeps what it generates once and reuses: the built-in datasets and the ONNX exports of
checkpoints. ``$CENTERNET_CACHE`` when set, else ``~/.cache/centernet``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_root"]


def default_cache_root() -> Path:
    """``$CENTERNET_CACHE`` if set, else ``~/.cache/centernet``."""
    env = os.environ.get("CENTERNET_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "centernet"
