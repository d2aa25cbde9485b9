"""ONNX exports of checkpoints made on demand and kept in a cache, so that ``predict`` and ``validate`` run a
``.ckpt`` on ONNX Runtime, the fastest CPU backend (see ``benchmarks/compare.py``), without a separate
``centernet export`` step.

An export takes about a second for CenterNet-ResNet18; the cache makes it a one-off. The cache key covers
everything the exported graph depends on: the checkpoint's bytes, the input size, the opset, the torch version
and the source of this package (so a new decoding never runs from a stale file). Files are written to a temporary
name and renamed, so concurrent runs never read a half-written export.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch

from centernet.cache import default_cache_root
from centernet.inference.export import export_onnx
from centernet.model.checkpoint import load_model

__all__ = ["cached_onnx_export", "onnx_cache_dir"]

_OPSET = 19  # the first with DeformConv, so DCN models export too
_HASH_CHUNK = 1 << 20


def onnx_cache_dir() -> Path:
    """``$CENTERNET_CACHE/onnx`` (``~/.cache/centernet/onnx`` when the variable is unset)."""
    return default_cache_root() / "onnx"


def cached_onnx_export(
    checkpoint: str | Path,
    image_size: int | None = None,
    max_detections: int | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """The path of a dynamic-shape ONNX export (decoding inside) of ``checkpoint``, exporting it on a cache miss.

    Args:
        checkpoint: A ``centernet fit`` checkpoint (``.ckpt``).
        image_size: Side of the example input of the export; ``None`` uses the training size.
        max_detections: K of the graph; ``None`` uses the checkpoint's (``max_detections`` of its model).
        cache_dir: Where exports are kept; ``None`` uses :func:`onnx_cache_dir`.

    Returns:
        The ``.onnx`` file, with class names, ids and the image size in its metadata.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: checkpoint not found")
    folder = cache_dir or onnx_cache_dir()
    key = _cache_key(checkpoint, image_size, max_detections)
    path = folder / f"{checkpoint.stem}-{key}.onnx"
    if path.is_file():
        return path
    loaded = load_model(checkpoint)
    size = image_size or loaded.image_size
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=folder)
    os.close(handle)
    try:
        export_onnx(
            loaded.model,
            temporary,
            loaded.class_names,
            loaded.category_ids,
            size,
            dynamic=True,
            opset=_OPSET,
            max_detections=max_detections,
        )
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def _cache_key(checkpoint: Path, image_size: int | None, max_detections: int | None) -> str:
    digest = hashlib.sha256()
    with checkpoint.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    digest.update(f"|size={image_size}|k={max_detections}|opset={_OPSET}|torch={torch.__version__}|".encode())
    digest.update(_source_fingerprint())
    return digest.hexdigest()[:20]


def _source_fingerprint() -> bytes:
    """A digest of this package's Python sources: any change to the model or the decoding changes the key."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.digest()
