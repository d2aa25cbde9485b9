"""Train, validate or test a CenterNet from a YAML config: ``python train.py fit --config configs/demo.yaml``.

The same as ``centernet fit --config ...``; kept as the project's original entry point.
"""

from centernet.cli import main

if __name__ == "__main__":
    main()
