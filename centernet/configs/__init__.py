"""The YAML configs shipped with the package (``base.yaml``, the demos, the architecture presets, ``tracking.yaml``)
and the coercion of option groups, which the command line passes as dataclasses and checkpoints store as plain
dicts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["as_options", "config_path", "preset_names"]

T = TypeVar("T")


def config_path(name: str) -> Path:
    """Path of a config shipped with the package, e.g. ``config_path("demo")`` -> ``.../configs/demo.yaml``."""
    return Path(str(files("centernet") / "configs" / f"{name}.yaml"))


def preset_names() -> list[str]:
    """Names of the shipped configs (``base``, the demos, the architecture presets, ``tracking``), sorted."""
    return sorted(path.stem for path in config_path("base").parent.glob("*.yaml"))


def as_options(value: Any, cls: type[T], shorthand: str | None = None) -> T:
    """An option group as its dataclass ``cls``: given as one, as a mapping of its fields, or (when ``shorthand``
    names a field) as that field's value alone, e.g. ``"resnet18"`` for ``BackboneConfig(name="resnet18")``.

    Raises:
        ValueError: naming the unknown fields or the wrong type.
    """
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    if isinstance(value, Mapping):
        known = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} options {unknown}; valid: {sorted(known)}")
        fields = {key: tuple(v) if isinstance(v, list) else v for key, v in value.items()}
        return cls(**fields)
    if shorthand is not None and isinstance(value, str):
        return cls(**{shorthand: value})
    raise ValueError(f"expected {cls.__name__} (or a mapping of its options), got {value!r}")
