"""``python -m centernet`` runs the same command line as the ``centernet`` console script."""

from centernet.cli.main import console_main

if __name__ == "__main__":
    console_main()
