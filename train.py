"""Train a CenterNet from a YAML config: ``python train.py fit --config configs/demo.yaml``.

The same command line as ``centernet`` (``fit``, ``validate``, ``predict``, ...); kept as the original entry point.
"""

from centernet.cli.main import console_main

if __name__ == "__main__":
    console_main()
