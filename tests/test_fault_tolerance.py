"""Surviving faults: SIGKILL + resume gives the uninterrupted run's weights; checkpoints are written atomically."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from centernet.configs import config_path
from centernet.training.checkpoint_io import AtomicCheckpointIO, atomic_torch_save
from centernet.training.cli import find_last_checkpoint

SCRIPTS = Path(__file__).parent / "scripts"
REPO = Path(__file__).parent.parent


def _fit_args(shapes_root: str, root: Path) -> list[str]:
    return [
        "fit",
        "--config",
        str(config_path("demo")),
        f"--trainer.default_root_dir={root}",
        "--trainer.max_epochs=2",
        "--trainer.check_val_every_n_epoch=2",  # no validation after epoch 0: last.ckpt must come from LastCheckpoint
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--model.neck.channels=[32, 32, 32]",
        "--model.head.channels=32",
        "--model.optimizer.warmup_steps=2",
        "--data.shapes_train_images=16",
        "--data.shapes_val_images=8",
        "--data.shapes_image_size=64",
        "--data.image_size=64",
        "--data.batch_size=4",
        "--data.num_workers=1",  # augmentations must not depend on worker processes that die with the run
        f"--data.shapes_root={shapes_root}",
        "--trainer.callbacks+=centernet.training.EMA",  # resuming must restore the weight average too
        "--trainer.callbacks.decay=0.9",
        "--trainer.callbacks.warmup_steps=2",
    ]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("PL_GLOBAL_SEED", None)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # three training processes: about 80 s of CPU time
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(shapes_root, tmp_path):
    straight = _run(["-m", "centernet", *_fit_args(shapes_root, tmp_path / "straight")])
    assert straight.returncode == 0, straight.stderr[-4000:]

    # Killed at the third batch of the second epoch: only the end of the first epoch was checkpointed.
    killed = _run([str(SCRIPTS / "fit_and_kill.py"), "1", "2", *_fit_args(shapes_root, tmp_path / "resumed")])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
    interrupted = torch.load(tmp_path / "resumed/version_0/checkpoints/last.ckpt", weights_only=True)
    assert interrupted["epoch"] == 0 and interrupted["global_step"] == 4

    resumed = _run(["-m", "centernet", *_fit_args(shapes_root, tmp_path / "resumed"), "--ckpt_path", "last"])
    assert resumed.returncode == 0, resumed.stderr[-4000:]

    a = torch.load(tmp_path / "straight/version_0/checkpoints/last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "resumed/version_1/checkpoints/last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 8 and a["epoch"] == b["epoch"] == 1
    for key in ("state_dict", "ema_state_dict"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    states_a, states_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert states_a.keys() == states_b.keys()
    for index, state in states_a.items():
        assert all(torch.equal(state[k], states_b[index][k]) for k in state), index
    assert a["lr_schedulers"] == b["lr_schedulers"]
    assert torch.equal(a["rng_states"]["torch"], b["rng_states"]["torch"])


def test_atomic_save_leaves_the_previous_file_when_the_writer_is_killed(tmp_path):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1, "w": torch.ones(3)}, target)
    # A second save is SIGKILLed half way through writing its bytes.
    code = f"""
import os, signal, torch
from centernet.training.checkpoint_io import atomic_torch_save
real_save = torch.save
def dying_save(obj, f):
    real_save(obj, f)
    f.flush()
    f.truncate(f.tell() // 2)
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
atomic_torch_save({{"step": 2, "w": torch.zeros(100_000)}}, {str(target)!r})
"""
    result = _run(["-c", code])
    assert result.returncode == -signal.SIGKILL, result.stderr
    loaded = torch.load(target, weights_only=True)
    assert loaded["step"] == 1 and torch.equal(loaded["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"]  # the dead writer's partial file, not last.ckpt


def test_atomic_save_failure_keeps_the_previous_file_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "ckpt" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, target)

    def failing_save(obj, f):
        f.write(b"partial")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")  # torch's full disk

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match=r"last.ckpt: could not save the checkpoint .*file write failed.*disk full"):
        io.save_checkpoint({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_checkpoints_get_the_permissions_of_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_torch_save({"step": 1}, tmp_path / "a.ckpt")
        os.umask(0o077)
        atomic_torch_save({"step": 1}, tmp_path / "b.ckpt")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.ckpt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.ckpt").stat().st_mode & 0o777 == 0o600


def test_find_last_checkpoint_picks_the_newest_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .*last.ckpt"):
        find_last_checkpoint(tmp_path)
    for version in (0, 2, 10):
        (tmp_path / f"version_{version}/checkpoints").mkdir(parents=True)
        (tmp_path / f"version_{version}/checkpoints/last.ckpt").write_bytes(b"")
    (tmp_path / "version_11").mkdir()  # a run that died before its first checkpoint
    assert find_last_checkpoint(tmp_path) == tmp_path / "version_10/checkpoints/last.ckpt"
