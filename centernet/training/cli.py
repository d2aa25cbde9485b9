"""Lightning's ``fit`` driven by YAML: the ``LightningCLI`` of centernet.

Every config is read on top of ``configs/base.yaml`` (a default config file), so a config such as
``configs/demo.yaml`` only lists what it changes. The number of classes, the class names, the category ids,
the input size and what the task needs to know about the data (a pose dataset's joints) flow from the data module
into the model (linked, never typed twice).

The data module is :class:`~centernet.data.CenterNetDataModule` (images: detection, pose) unless a config names
another with ``data.class_path`` (LightningCLI's subclass mode), e.g. ``centernet.data.TrackingDataModule`` (video
frame pairs) in the shipped ``tracking`` config. A plain ``data:`` section sets the options of the module already
chosen, so every detection and pose config reads as before; the module must serve ``model.task``.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from centernet.configs import config_path
from centernet.model.checkpoint import FORMAT_1_OPTIONS, read_checkpoint
from centernet.training.checkpoint_io import AtomicCheckpointIO, has_checkpoint_io
from centernet.training.module import CenterNetModule

__all__ = ["DEFAULT_DATA_CLASS", "LIGHTNING_COMMANDS", "CenterNetCLI", "find_last_checkpoint", "next_run_dir"]

# `validate` is our own command (centernet/validate.py) on top of the inference API.
LIGHTNING_COMMANDS = ("fit",)

# The data module of a config that names none (``data.class_path``); base.yaml's ``data:`` section sets its options.
DEFAULT_DATA_CLASS = "centernet.data.CenterNetDataModule"


def next_run_dir(root: str | Path) -> tuple[Path, int]:
    """The first unused ``<root>/version_<n>`` and its ``n``: every run gets a directory of its own."""
    root = Path(root)
    taken = [int(p.name.split("_", 1)[1]) for p in root.glob("version_*") if p.name.split("_", 1)[1].isdigit()]
    version = max(taken, default=-1) + 1
    return root / f"version_{version}", version


def find_last_checkpoint(root: str | Path) -> Path:
    """The ``last.ckpt`` of the newest run under ``root`` (highest ``version_<n>`` that has one).

    Raises:
        FileNotFoundError: if no run under ``root`` has a ``checkpoints/last.ckpt``.
    """
    root = Path(root)
    found = [
        (int(p.parent.parent.name.split("_", 1)[1]), p)
        for p in root.glob("version_*/checkpoints/last.ckpt")
        if p.parent.parent.name.split("_", 1)[1].isdigit()
    ]
    if not found:
        raise FileNotFoundError(
            f"--ckpt_path last: no {root}/version_*/checkpoints/last.ckpt to resume from; "
            "check trainer.default_root_dir or pass the checkpoint's path"
        )
    return max(found)[1]


def _shipped_config_names(args: list[str]) -> list[str]:
    """``--config demo`` (a config shipped with the package, by name) -> the path of that file, as ``info`` and
    ``validate`` accept it; an existing file of that name wins."""
    resolved = list(args)
    for i, arg in enumerate(resolved):
        if arg in ("--config", "-c") and i + 1 < len(resolved):
            name = resolved[i + 1]
            if not Path(name).exists() and "/" not in name and config_path(name).is_file():
                resolved[i + 1] = str(config_path(name))
    return resolved


def _reject_format_1_options(args: list[str]) -> None:
    """Name the new place of a model option of centernet 0.1 (``model.lr`` -> ``model.optimizer.lr``) found in the
    config files or ``--model.*`` flags of ``args``, instead of the parser's bare "unknown key"."""
    found: list[tuple[str, str]] = []
    for i, arg in enumerate(args):
        path = args[i + 1] if arg in ("--config", "-c") and i + 1 < len(args) else None
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        if path and Path(path).is_file():
            try:
                loaded = yaml.safe_load(Path(path).read_text())
            except yaml.YAMLError:
                continue  # the parser reports it
            model = loaded.get("model") if isinstance(loaded, dict) else None
            if isinstance(model, dict):
                found += [(path, key) for key, value in model.items() if _is_format_1(key, value)]
        elif arg.startswith("--model."):
            key, _, value = arg[len("--model.") :].partition("=")
            if _is_format_1(key, value if value or i + 1 >= len(args) else args[i + 1]):
                found.append(("the command line", key))
    if found:
        where, key = found[0]
        group, option = FORMAT_1_OPTIONS[key]
        moves = ", ".join(f"model.{k} -> model.{'.'.join(FORMAT_1_OPTIONS[k])}" for _, k in found)
        raise ValueError(
            f"{where}: model.{key} is now model.{group}.{option} (model options are grouped since centernet 0.2: "
            f"{moves}; see configs/base.yaml)"
        )


def _is_format_1(key: str, value: Any) -> bool:
    """A model option of centernet 0.1: a flat key, or a group's name given as a plain value (``neck: lateral``)."""
    if key not in FORMAT_1_OPTIONS:
        return False
    group_given_whole = key in ("backbone", "neck", "head") and (
        isinstance(value, dict) or (isinstance(value, str) and value.lstrip().startswith("{"))
    )
    return not group_given_whole


def _check_data_serves_task(data_class_path: str, task: str) -> None:
    """A data module that declares the tasks it trains (``tasks``, e.g. tracking's video frame pairs) must serve
    ``model.task``: a tracker fed single images, or a detector fed frame pairs, would fail deep inside a step.

    Raises:
        ValueError: naming ``model.task``, ``data.class_path`` and how to make them agree.
    """
    module, _, name = data_class_path.rpartition(".")
    tasks = getattr(getattr(importlib.import_module(module), name), "tasks", None)
    if tasks is None or task in tasks:
        return
    served = " or ".join(repr(t) for t in tasks)
    if task == "tracking":
        hint = "a tracker trains on videos: data.class_path: centernet.data.TrackingDataModule"
    else:
        hint = f"set model.task: {tasks[0]}" if len(tasks) == 1 else f"set model.task to {served}"
    if "tracking" in (task, *tasks):
        hint += ", as the shipped `tracking` config does"
    raise ValueError(
        f"model.task {task!r} does not match the data: data.class_path {data_class_path} serves model.task "
        f"{served}; {hint}"
    )


_DATA_CLASS_PROBLEM = re.compile(
    r"Problem with given class_path '([^']+)':\n(.*?)\n\s*- Expected a <class 'NoneType'>", re.DOTALL
)
_DATA_ARGUMENT = re.compile(r"Given value: NestedArg\(key='([^']*)', val='([^']*)'\)")


def _plain_data_error(message: str) -> str:
    """jsonargparse reports a bad option of the data module (chosen by ``data.class_path``) as a failed match of
    every type the section may take; keep what a user needs: the key, the value given and the data module."""
    found = _DATA_CLASS_PROBLEM.search(message) if message.startswith('Parser key "data":') else None
    if found is None:
        return message
    class_path, problem = found[1], textwrap.dedent(found[2]).strip()
    unknown = re.fullmatch(r"Option '([^']+)' is not accepted", problem)
    if unknown:
        given = _DATA_ARGUMENT.search(message)
        typed = f" (--data.{given[1]}={given[2]})" if given and given[1] == unknown[1] else ""
        return f"option 'data.{unknown[1]}'{typed} is not accepted by the data module {class_path}"
    if problem.startswith('Parser key "'):
        return 'Parser key "data.' + problem[len('Parser key "') :]
    return f"data.class_path {class_path}: {problem}"


class _DropNoise(logging.Filter):
    """Drops Lightning's messages that ask nothing of the user: advertising tips, its note on checkpoints'
    ``weights_only`` (centernet always saves the full training state and loads as data only) and on estimating the
    number of steps (the learning-rate schedule asks for it)."""

    NOISE = ("💡 Tip:", "`weights_only` was not set", "Loading `train_dataloader` to estimate")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


def quiet_lightning() -> None:
    """Keep the console to what a user can act on: no tips, no deprecation warnings of Lightning's own calls."""
    for name in ("lightning.pytorch", "lightning"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _DropNoise) for f in handler.filters):
                handler.addFilter(_DropNoise())
    # Lightning's pytree helper calls a torch API that torch now deprecates; nothing a user can change.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


class CenterNetCLI(LightningCLI):
    """LightningCLI with the data -> model links, run directories and the base config as defaults."""

    parser_options: dict[str, Any] = {}  # extra jsonargparse parser settings (the config reader's exit_on_error)

    def __init__(self, args: Sequence[str] | None = None, run: bool = True, **kwargs: Any) -> None:
        quiet_lightning()
        args = _shipped_config_names(list(args) if args is not None else sys.argv[1:])
        _reject_format_1_options(args)
        base = str(config_path("base"))
        defaults = {"default_config_files": [base], **self.parser_options}
        # With subcommands (run=True) parser options are given per subcommand; without, for the one parser.
        parser_kwargs = {command: defaults for command in LIGHTNING_COMMANDS} | self.parser_options if run else defaults
        with warnings.catch_warnings():
            # The `centernet` dispatcher passes its own argv on purpose; Lightning warns about that case.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
            super().__init__(
                CenterNetModule,
                LightningDataModule,
                subclass_mode_data=True,  # data.class_path picks the module; CenterNetDataModule by default
                args=args,
                run=run,
                parser_kwargs=parser_kwargs,
                save_config_kwargs={"overwrite": True},
                # The optimiser is the module's (AdamW with parameter groups and its schedule, model.optimizer);
                # Lightning's generic --optimizer/--lr_scheduler options would be ignored by it.
                auto_configure_optimizers=False,
                **kwargs,
            )

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """The parser of each command, with a one-line usage: on an error (a YAML syntax error, an unknown key)
        the message is what a user needs, not the hundred option names that ``--help`` lists, nor every type the
        data section might have taken."""
        parser = super().init_parser(**kwargs)
        parser.format_usage = lambda: f"usage: {parser.prog} [--config CONFIG] [options]\n"
        error = parser.error
        parser.error = lambda message, ex=None: error(_plain_data_error(message), ex)
        return parser

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # `predict` is our own command (images in, drawings and COCO json out), not Lightning's predict loop.
        return {k: v for k, v in LightningCLI.subcommands().items() if k in LIGHTNING_COMMANDS}

    def _parse_ckpt_path(self) -> None:
        """Resuming from a checkpoint file takes its model options, as Lightning does, but reads the file as data
        only and in any format version (:mod:`centernet.model.checkpoint`); the backbone is not downloaded again,
        its weights come from the checkpoint."""
        if not self.config.get("subcommand"):
            return
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        saved = read_checkpoint(ckpt_path).get("hyper_parameters") or {}
        hparams = {key: value for key, value in saved.items() if not key.startswith("_")}
        if not hparams:
            return
        hparams["backbone"] = {**(hparams.get("backbone") or {}), "pretrained": False}
        self.config = self.parser.parse_object({self.config.subcommand: {"model": hparams}}, self.config)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Set before the default config file is read, so that base.yaml's plain `data:` keys are its options.
        parser.set_defaults({"data": {"class_path": DEFAULT_DATA_CLASS}})
        for attribute in ("num_classes", "class_names", "category_ids", "image_size", "task_data"):
            parser.link_arguments(f"data.{attribute}", f"model.{attribute}", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any):
        """Give the run one directory, ``<default_root_dir>/version_<n>``, shared by TensorBoard and CSV logs.

        The checkpoints, the resolved ``config.yaml`` and ``metrics.json`` land there too. A config that sets
        ``trainer.logger`` itself keeps its loggers.
        """
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True) and "logger" not in kwargs:
            root = Path(trainer_config.get("default_root_dir") or "runs")
            _, version = next_run_dir(root)
            # Both loggers share the version folder, so the CSV logger finds TensorBoard's file there and warns that
            # "previous log files" will be deleted; it only ever rewrites its own metrics.csv.
            warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
            kwargs["logger"] = [
                TensorBoardLogger(save_dir=str(root), name="", version=version, default_hp_metric=False),
                CSVLogger(save_dir=str(root), name="", version=version),
            ]
        # Checkpoints are written atomically (temporary file, fsync, rename) unless the config brings its own IO.
        plugins = kwargs.get("plugins", trainer_config.get("plugins"))
        if not has_checkpoint_io(plugins):
            listed = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins] if plugins is not None else []
            kwargs["plugins"] = [*listed, AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)

    def before_instantiate_classes(self) -> None:
        """The data module must serve ``model.task`` (tracking data for a tracker, images for the others), named in
        one error before anything is built. Checkpoints are read as data only: ``--weights_only false``
        (LightningCLI's) would ask for unpickling code, which centernet never does, so it is refused rather than
        ignored."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("data") is not None:
            _check_data_serves_task(config["data"]["class_path"], config["model"]["task"])
        if config.get("weights_only") is False:
            raise ValueError(
                "--weights_only false is not supported: centernet loads checkpoints as data only (tensors and plain "
                "containers) and never runs code from a checkpoint file"
            )

    def before_fit(self) -> None:
        """``--ckpt_path last`` resumes the newest run under ``trainer.default_root_dir``.

        Each run writes to a new ``version_<n>``, where Lightning's own ``last`` lookup would find nothing and
        silently start from scratch; here it resolves to the previous run's ``last.ckpt`` or fails clearly.
        """
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        if config.get("ckpt_path") == "last":
            root = self._get(self.config_init, "trainer", default={}).get("default_root_dir") or "runs"
            config["ckpt_path"] = str(find_last_checkpoint(root))
