"""The command line: `fit` from YAML writes a complete run directory; `predict` uses its checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from centernet.cli.config import read_config
from centernet.cli.main import main
from centernet.configs import config_path
from centernet.errors import PretrainedWeightsError
from centernet.model.checkpoint import CheckpointError
from centernet.training.cli import CenterNetCLI

FIXTURES = Path(__file__).parent / "fixtures"

REPO = Path(__file__).resolve().parents[1]


def _tiny_overrides(shapes_root: str, root_dir: Path) -> list[str]:
    return [
        f"--trainer.default_root_dir={root_dir}",
        "--trainer.max_epochs=2",
        "--trainer.check_val_every_n_epoch=1",
        "--trainer.enable_progress_bar=false",
        "--model.neck.channels=[32, 32, 32]",
        "--model.head.channels=32",
        "--data.shapes_train_images=16",
        "--data.shapes_val_images=8",
        "--data.shapes_image_size=64",
        "--data.image_size=64",
        "--data.batch_size=8",
        "--data.num_workers=0",
        f"--data.shapes_root={shapes_root}",
    ]


def test_fit_writes_a_complete_run_directory_and_predict_uses_it(shapes_root, tmp_path):
    cli = CenterNetCLI(args=["fit", "--config", str(config_path("demo")), *_tiny_overrides(shapes_root, tmp_path)])
    run_dir = Path(cli.trainer.log_dir)
    assert run_dir == tmp_path / "version_0"
    assert (run_dir / "config.yaml").is_file() and (run_dir / "hparams.yaml").is_file()
    assert (run_dir / "metrics.csv").is_file() and list(run_dir.glob("events.out.tfevents.*"))
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(name.startswith("best-epoch") for name in checkpoints)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    names = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large"]
    names += ["mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]
    assert all(isinstance(metrics[name], float) for name in names) and metrics["epoch"] == 1

    # Values derived from the data flow into the model and travel with the checkpoint.
    hparams = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)[
        "hyper_parameters"
    ]
    assert hparams["num_classes"] == 5 and hparams["image_size"] == 64
    assert hparams["class_names"] == ["circle", "square", "triangle", "diamond", "cross"]
    assert hparams["category_ids"] == [1, 2, 3, 4, 5]
    # The resolved config records the demo's overrides on top of the base file.
    resolved = (run_dir / "config.yaml").read_text()
    assert "dataset: shapes" in resolved and "name: resnet18" in resolved and "name: lateral" in resolved

    # One number per checkpoint: validate scores the checkpoint fit validated last to the same 12 numbers (same
    # letterbox, same evaluator, same ground truth: the annotations as the validation policy left them).
    last = run_dir / "checkpoints" / "last.ckpt"
    validated = main(["validate", "--checkpoint", str(last), "--backend", "eager", "--output", str(tmp_path / "v")])
    # (fit logs float32 values: equal to about 1e-7)
    assert {name: validated[name] for name in names} == pytest.approx({name: metrics[name] for name in names}, abs=1e-6)
    assert metrics["map"] > 0 or metrics["mar_100"] > 0  # a comparison of numbers that are not all zero

    images = Path(shapes_root) / "shapes-v1-seed0-train16-val8-64px" / "val" / "images"
    out = tmp_path / "predict"
    main(
        [
            "predict",
            "--checkpoint",
            str(run_dir / "checkpoints" / "last.ckpt"),
            "--source",
            str(images),
            "--output",
            str(out),
            "--score-threshold",
            "0.0",
        ]
    )
    drawn = sorted(p.name for p in out.glob("*.png"))
    assert drawn == sorted(p.name for p in images.glob("*.png"))
    results = json.loads((out / "predictions.json").read_text())
    assert results and {r["category_id"] for r in results} <= {1, 2, 3, 4, 5}
    assert {r["file_name"] for r in results} <= set(drawn)
    assert all(len(r["bbox"]) == 4 and r["bbox"][2] >= 0 and r["bbox"][3] >= 0 for r in results)


def test_fit_trains_a_tracker_from_the_shipped_tracking_config(tmp_path):
    """``--config tracking`` selects the tracking data module; its classes flow into the model, and when fit ends the
    validation videos are tracked into metrics.json beside the last validation's per-frame COCO numbers."""
    overrides = [
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=2",
        "--trainer.check_val_every_n_epoch=1",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
        "--model.neck.channels=[32, 32, 32]",
        "--model.head.channels=32",
        "--data.image_size=64",
        "--data.batch_size=4",
        "--data.num_workers=0",
        f"--data.shapes_root={tmp_path / 'cache'}",
        "--data.shapes_train=1",
        "--data.shapes_val=1",
        "--data.shapes_frames=8",
    ]
    cli = CenterNetCLI(args=["fit", "--config", "tracking", *overrides])
    run_dir = Path(cli.trainer.log_dir)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert hparams["task"] == "tracking" and hparams["image_size"] == 64
    assert hparams["num_classes"] == 1 and hparams["class_names"] == ["shape"] and hparams["category_ids"] == [1]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert all(isinstance(metrics[name], float) for name in ("HOTA", "MOTA", "IDF1", "AssA", "IDSW"))
    assert metrics["tracking"] == {"videos": 1, "frames": 8, "global_step": 2}
    assert isinstance(metrics["map"], float) and metrics["epoch"] == 0  # CocoMetricsWriter's numbers are kept
    assert "val/HOTA" in (run_dir / "metrics.csv").read_text().splitlines()[0]  # logged too
    assert "class_path: centernet.data.TrackingDataModule" in (run_dir / "config.yaml").read_text()


def test_the_data_module_must_serve_the_model_task(tmp_path):
    with pytest.raises(ValueError, match=r"model.task 'detection' .*data.class_path centernet.data.TrackingDataModule"):
        CenterNetCLI(args=["fit", "--config", "tracking", "--model.task=detection"])
    with pytest.raises(ValueError, match=r"model.task 'tracking' .*data.class_path centernet.CenterNetDataModule"):
        CenterNetCLI(args=["fit", "--config", "demo", "--model.task=tracking"])
    with pytest.raises(ValueError, match=r"validate reads image data .*validate --task track"):
        main(["validate", "--config", "tracking", "--checkpoint", str(FIXTURES / "v1" / "tiny_size_head.ckpt")])
    # A data config on top of `tracking` lists the tracking data's options directly under `data:`.
    mot = tmp_path / "mot.yaml"
    mot.write_text("data:\n  dataset: mot\n  train: MOT17/train\n  val: MOT17/val\n  class_names: [pedestrian]\n")
    config = read_config(["tracking", str(mot)])
    assert config["data_class"] == "centernet.data.TrackingDataModule" and config["model"]["task"] == "tracking"
    assert config["data"]["dataset"] == "mot" and config["data"]["class_names"] == ["pedestrian"]
    assert read_config(["demo"])["data"]["dataset"] == "shapes"  # image configs read as before
    unknown = r"option 'data.shapes_train_images' \(--data.shapes_train_images=3\) is not accepted by the data module"
    with pytest.raises(ValueError, match=unknown + " centernet.data.TrackingDataModule"):
        read_config(["tracking"], ["--data.shapes_train_images=3"])  # the detection data's option


def test_unknown_config_keys_are_errors(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  backbone_name: resnet18\n")
    with pytest.raises(SystemExit):
        CenterNetCLI(args=["fit", "--config", str(config)])
    captured = capsys.readouterr()
    assert "backbone_name" in captured.err + captured.out


@pytest.mark.parametrize("command", ["fit", "validate", "info", "data check"])
def test_a_yaml_syntax_error_is_a_short_message_naming_the_line(command, tmp_path, capsys, monkeypatch):
    from centernet.cli.main import console_main

    config = tmp_path / "broken.yaml"
    config.write_text("data:\n  dataset: [coco\n")
    argv = ["centernet", *command.split(), "--config", str(config)]
    if command == "validate":
        argv += ["--checkpoint", str(FIXTURES / "v1" / "tiny_size_head.ckpt")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        console_main()
    assert exit_info.value.code in (1, 2)
    err = capsys.readouterr().err
    assert "did not find expected ',' or ']'" in err and "line 2, column 12" in err
    assert "Traceback" not in err and len(err.splitlines()) <= 6, err


def test_cli_without_subcommand_reads_the_base_config(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["centernet"])
    cli = CenterNetCLI(args=["--config", str(config_path("demo")), "--data.shapes_root=/nonexistent"], run=False)
    assert cli.config["model"]["loss"]["min_overlap"] == 0.7 and cli.config["data"]["init_args"]["dataset"] == "shapes"
    assert cli.model.model.num_classes == 5


def test_train_py_is_the_same_cli():
    result = subprocess.run(
        [sys.executable, "train.py", "fit", "--config", "configs/demo.yaml", "--print_config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "dataset: shapes" in result.stdout  # from demo.yaml
    assert "min_overlap: 0.7" in result.stdout  # from base.yaml, read first


def test_help_lists_the_commands(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(command in out for command in ("demo", "fit", "validate", "predict"))


def test_console_script_reports_bad_input_in_one_line(monkeypatch, capsys):
    from centernet.cli.main import console_main

    monkeypatch.setattr(sys, "argv", ["centernet", "info", "--config", "no_such_config.yaml"])
    monkeypatch.delenv("CENTERNET_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        console_main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("centernet info: error: no_such_config.yaml: no such config file") and "\n" not in err
    monkeypatch.setenv("CENTERNET_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError, match="no_such_config.yaml"):
        console_main()


def test_model_options_of_centernet_0_1_name_their_new_place(tmp_path):
    config = tmp_path / "old.yaml"
    config.write_text("model:\n  neck: lateral\n  neck_channels: [32, 32, 32]\n  lr: 0.01\n  alpha: 0.5\n")
    moved = r"old.yaml: model.neck is now model.neck.name .*model.lr -> model.optimizer.lr"
    with pytest.raises(ValueError, match=moved):
        CenterNetCLI(args=["fit", "--config", str(config)])
    with pytest.raises(ValueError, match=r"model.alpha is now model.loss.gaussian_extent"):
        CenterNetCLI(args=["fit", "--model.alpha=0.5"])
    grouped = tmp_path / "new.yaml"  # a group given whole is the current format
    grouped.write_text("model:\n  neck: {name: lateral, channels: [32, 32, 32]}\n")
    config_values = CenterNetCLI(args=["--config", str(grouped), "--data.dataset=shapes"], run=False).config
    assert config_values["model"]["neck"]["name"] == "lateral"


def test_a_default_fit_prints_nothing_a_user_cannot_act_on(shapes_root, tmp_path):
    """No tips, no deprecation warnings, no "FLOPs: 0", no logging-interval warning on a small epoch."""
    overrides = _tiny_overrides(shapes_root, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "centernet", "fit", "--config", "demo", *overrides, "--trainer.max_epochs=1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    for noise in ("Tip:", "Warning", "warn", "deprecated", "FLOPs: 0", "logging interval", "weights_only"):
        assert noise not in printed, (noise, printed[-3000:])
    assert "Total FLOPs" in printed  # the summary counts them


@pytest.mark.parametrize(
    "error",
    [
        PretrainedWeightsError("Could not load the pretrained weights ... or set `pretrained: false`"),
        CheckpointError("model.ckpt: not a readable checkpoint"),
        OSError("last.ckpt: could not save the checkpoint (file write failed); is the disk full?"),
    ],
)
def test_input_errors_end_in_one_line(error, monkeypatch, capsys):
    import centernet.cli.main as cli_main

    def fail(argv=None):
        raise error

    monkeypatch.setattr(cli_main, "main", fail)
    monkeypatch.setattr(sys, "argv", ["centernet", "fit"])
    monkeypatch.delenv("CENTERNET_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli_main.console_main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == f"centernet fit: error: {error}"
