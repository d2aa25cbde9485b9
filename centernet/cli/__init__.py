"""The ``centernet`` command line: one entry point (:mod:`centernet.cli.main`), one config reader
(:mod:`centernet.cli.config`) and one module per command."""

from centernet.cli.main import console_main

__all__ = ["console_main"]
