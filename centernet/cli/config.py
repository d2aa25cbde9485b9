"""One config reader for every command: the parser of ``centernet fit`` (LightningCLI, on top of ``base.yaml``).

``validate``, ``info`` and ``data check`` read the same YAML files as ``fit`` through the same parser, so every
command accepts the same keys, with the same types, and rejects an unknown key the same way (naming it). Nothing
is instantiated: the result is the parsed configuration, as plain dicts, with the ``data:`` section as the options of
its data module and ``data_class`` naming that module (``centernet.data.CenterNetDataModule`` unless the config sets
``data.class_path``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from centernet.configs import config_path, preset_names

__all__ = ["image_data", "read_config", "resolve_config_file"]


def resolve_config_file(entry: str) -> str:
    """A config file path, or the name of a config shipped with the package (``dla34_dcn``, ``demo``, ...).

    Raises:
        FileNotFoundError: naming the entry and the shipped configs.
    """
    if Path(entry).is_file():
        return entry
    if config_path(entry).is_file():
        return str(config_path(entry))
    raise FileNotFoundError(f"{entry}: no such config file, nor a shipped config ({', '.join(preset_names())})")


def read_config(
    configs: Sequence[str] = (),
    overrides: Sequence[str] = (),
    sections: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Parse ``base.yaml``, then each of ``configs`` (files or shipped names), then whole ``sections`` (e.g. a
    checkpoint's saved data settings), then ``--key=value`` ``overrides``, exactly as ``centernet fit`` would.

    Returns:
        The ``fit`` configuration as nested plain dicts (``model``, ``data``, ``trainer``, ...): ``data`` holds the
        data module's options, ``data_class`` its class path.

    Raises:
        ValueError: the parser's message (an unknown key, a wrong type, unreadable YAML), naming the key.
    """
    from jsonargparse import ArgumentError

    from centernet.training.cli import CenterNetCLI

    class ParseOnly(CenterNetCLI):
        """The fit command line, parsed but neither seeded, instantiated nor run."""

        parser_options = {"exit_on_error": False}

        def _set_seed(self) -> None:
            pass

        def instantiate_classes(self) -> None:
            self.subcommand = None

    args = ["fit"]
    for entry in configs:
        args += ["--config", resolve_config_file(entry)]
    for name, values in (sections or {}).items():
        args += [f"--{name}", json.dumps({key: value for key, value in values.items() if not key.startswith("_")})]
    args += list(overrides)
    try:
        cli = ParseOnly(args=args)
    except ArgumentError as error:
        sources = ", ".join(configs) if configs else "the options"
        raise ValueError(f"invalid config ({sources}): {_one_line(error)}") from error
    config = cli.config["fit"].as_dict()
    data = config.pop("data")
    return {**config, "data": dict(data.get("init_args") or {}), "data_class": data["class_path"]}


def image_data(config: Mapping[str, Any], command: str, instead: str) -> dict[str, Any]:
    """The options of :class:`~centernet.data.CenterNetDataModule` (image data) that ``config`` (from
    :func:`read_config`) holds, for a ``command`` that reads image data.

    Raises:
        ValueError: if the config selects another data module (tracking videos), naming it and ``instead``.
    """
    from centernet.data.datamodule import CenterNetDataModule

    module, _, name = config["data_class"].rpartition(".")
    if getattr(importlib.import_module(module), name) is not CenterNetDataModule:
        raise ValueError(
            f"{command} reads image data (centernet.data.CenterNetDataModule) but the config's data.class_path is "
            f"{config['data_class']}; {instead}"
        )
    return dict(config["data"])


def _one_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines[:3])
