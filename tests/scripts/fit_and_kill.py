"""``centernet fit`` that SIGKILLs itself at a given training batch, run by tests/test_fault_tolerance.py.

usage: python fit_and_kill.py EPOCH BATCH fit --config ... (the remaining arguments go to ``centernet fit``)
"""

from __future__ import annotations

import os
import signal
import sys

import lightning as L

from centernet.training.cli import CenterNetCLI


class KillAt(L.Callback):
    """Kills the process (SIGKILL: no cleanup, no final checkpoint) when batch ``batch`` of ``epoch`` starts."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    epoch, batch = int(sys.argv[1]), int(sys.argv[2])
    CenterNetCLI(args=sys.argv[3:], trainer_defaults={"callbacks": [KillAt(epoch, batch)]})
