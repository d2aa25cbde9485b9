"""The ``centernet`` command: demo, fit (Lightning), validate, predict, export, info and data check."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from centernet.errors import InputError

__all__ = ["console_main", "main"]

_USAGE = """usage: centernet COMMAND [options]

commands:
  demo       train a small CenterNet on a built-in dataset (--task detection|pose), evaluate and draw
  fit        train from a YAML config:      centernet fit --config configs/demo.yaml
  validate   evaluate a model (COCO AP):    centernet validate --checkpoint CKPT_OR_ONNX [--config FILE]
  predict    detect objects:                centernet predict --checkpoint CKPT_OR_ONNX --source IMAGES_OR_VIDEO
  export     ONNX / TorchScript with decoding inside: centernet export --checkpoint CKPT --format onnx
  track      follow objects in videos:      centernet track --checkpoint CKPT --source clip.mp4|frames/
  info       parameters and GFLOPs:         centernet info --config dla34_dcn --image-size 512
  data       check a dataset, no training:  centernet data check --config FILE

Run `centernet COMMAND --help` for the options of a command.
"""


def main(argv: Sequence[str] | None = None) -> Any:
    """Entry point of the ``centernet`` console script; returns what the command returns (e.g. validate's
    metrics, predict's ``predictions.json`` path)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    if command in (None, "-h", "--help", "help"):
        print(_USAGE)
        return None
    if command == "data":
        if argv[1:2] != ["check"]:
            print("usage: centernet data check --config FILE [--output DIR] [--data.KEY=VALUE ...]", file=sys.stderr)
            raise SystemExit(2)
        from centernet.cli.data_check import run_data_check

        raise SystemExit(run_data_check(argv[2:]))
    if command == "fit":
        from centernet.training.cli import CenterNetCLI

        return CenterNetCLI(args=argv)
    if command not in _COMMANDS:
        print(f"centernet: unknown command {command!r}\n\n{_USAGE}", file=sys.stderr)
        raise SystemExit(2)
    module, function = _COMMANDS[command]
    return getattr(importlib.import_module(module), function)(argv[1:])


# One module per command, imported only when it runs (``centernet predict --help`` starts without Lightning).
_COMMANDS = {
    "demo": ("centernet.cli.demo", "run_demo"),
    "predict": ("centernet.cli.predict", "run_predict"),
    "info": ("centernet.cli.info", "run_info"),
    "validate": ("centernet.cli.validate", "run_validate"),
    "export": ("centernet.cli.export", "run_export"),
    "track": ("centernet.cli.track", "run_track"),
}


def console_main() -> None:
    """The console script: ``main`` with bad input reported as one line instead of a traceback.

    Input errors (a bad config value, an unreadable or inconsistent data file or checkpoint, a missing path) raise
    :class:`~centernet.errors.InputError` (or ``ValueError`` / ``OSError``) with a message that names the file and
    what is wrong; that message is what the user needs. Set ``CENTERNET_TRACEBACK=1`` to see the traceback too.
    Other exceptions keep their traceback.
    """
    try:
        main()
    except (InputError, ValueError, OSError) as error:
        if os.environ.get("CENTERNET_TRACEBACK"):
            raise
        command = sys.argv[1] if len(sys.argv) > 1 else ""
        print(f"centernet {command}: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    console_main()
