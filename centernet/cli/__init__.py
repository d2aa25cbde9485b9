"""The ``centernet`` command line: one entry point (:mod:`centernet.cli.main`) and one module per command."""
