"""The ``centernet`` command: Lightning's ``fit`` / ``validate`` / ``test`` driven by YAML, plus ``demo`` and
``predict``.

Every config is read on top of ``configs/base.yaml`` (a default config file), so a config such as
``configs/demo.yaml`` only lists what it changes. The number of classes, the class names, the category ids and
the input size flow from the data module into the model (linked, never typed twice).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from .data import CenterNetDataModule
from .lightning_module import CenterNetModule

__all__ = ["CenterNetCLI", "config_path", "main", "next_run_dir"]

_LIGHTNING_COMMANDS = ("fit", "validate", "test")
_USAGE = """usage: centernet COMMAND [options]

commands:
  demo       build the built-in shapes dataset, train a small CenterNet on it, evaluate and draw predictions
  fit        train from a YAML config:      centernet fit --config configs/demo.yaml
  validate   evaluate a checkpoint:         centernet validate --config FILE --ckpt_path CKPT
  test       run the test loop:             centernet test --config FILE --ckpt_path CKPT
  predict    detect objects in images:      centernet predict --checkpoint CKPT --source IMAGE_OR_FOLDER

Run `centernet COMMAND --help` for the options of a command.
"""


def config_path(name: str) -> Path:
    """Path of a config shipped with the package, e.g. ``config_path("demo")`` -> ``.../configs/demo.yaml``."""
    return Path(str(files("centernet") / "configs" / f"{name}.yaml"))


def next_run_dir(root: str | Path) -> tuple[Path, int]:
    """The first unused ``<root>/version_<n>`` and its ``n``: every run gets a directory of its own."""
    root = Path(root)
    taken = [int(p.name.split("_", 1)[1]) for p in root.glob("version_*") if p.name.split("_", 1)[1].isdigit()]
    version = max(taken, default=-1) + 1
    return root / f"version_{version}", version


class CenterNetCLI(LightningCLI):
    """LightningCLI with the data -> model links, run directories and the base config as defaults."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True, **kwargs: Any) -> None:
        base = str(config_path("base"))
        defaults = {"default_config_files": [base]}
        # With subcommands (run=True) parser options are given per subcommand; without, for the one parser.
        parser_kwargs = {command: defaults for command in _LIGHTNING_COMMANDS} if run else defaults
        super().__init__(
            CenterNetModule,
            CenterNetDataModule,
            args=list(args) if args is not None else None,
            run=run,
            parser_kwargs=parser_kwargs,
            save_config_kwargs={"overwrite": True},
            **kwargs,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # `predict` is our own command (images in, drawings and COCO json out), not Lightning's predict loop.
        return {k: v for k, v in LightningCLI.subcommands().items() if k in _LIGHTNING_COMMANDS}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for attribute in ("num_classes", "class_names", "category_ids", "image_size"):
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
            kwargs["logger"] = [
                TensorBoardLogger(save_dir=str(root), name="", version=version, default_hp_metric=False),
                CSVLogger(save_dir=str(root), name="", version=version),
            ]
        return super().instantiate_trainer(**kwargs)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``centernet`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    if command in (None, "-h", "--help", "help"):
        print(_USAGE)
        return
    if command == "demo":
        from .demo import run_demo

        run_demo(argv[1:])
    elif command == "predict":
        from .predict import run_predict

        run_predict(argv[1:])
    elif command in _LIGHTNING_COMMANDS:
        CenterNetCLI(args=argv)
    else:
        print(f"centernet: unknown command {command!r}\n\n{_USAGE}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
