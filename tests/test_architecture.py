"""The house stays healthy: packages import only the floors below them, and inference stays light."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("lightning", "pytorch_lightning", "torchmetrics", "albumentations")


def test_import_contracts_hold():
    """``lint-imports`` checks the layers declared in pyproject.toml ([tool.importlinter])."""
    executable = shutil.which("lint-imports")
    if executable is None:
        pytest.fail("lint-imports is missing: install the test extras, pip install -e '.[test]'")
    result = subprocess.run([executable], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "statement",
    [
        "import centernet",
        "import centernet.inference",
        "import centernet.model",
        "from centernet.inference import Detector",
        "from centernet.model.checkpoint import load_model",
        "import centernet.data.imagefile",
    ],
)
def test_inference_and_the_model_do_not_load_lightning_or_albumentations(statement):
    code = f"import sys; {statement}; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"{statement} loads {result.stdout.strip()}"


def test_lazy_names_of_the_package_face():
    import centernet

    assert centernet.Detector.__module__ == "centernet.inference.detector"
    assert centernet.CenterNet.__name__ == "CenterNet"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        centernet.Nope  # noqa: B018


def test_predict_help_loads_neither_torch_nor_the_model():
    code = "import sys; import centernet.cli.predict as p; p.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_no_network_call_on_import_or_inference(tmp_path):
    """With sockets refused, importing the package, building the training transforms and opening an ONNX Runtime
    session neither tries the network nor warns (albumentations' update check is off; ORT telemetry is off)."""
    code = """
import socket, sys, warnings
attempts = []
class NoNetwork(socket.socket):
    def connect(self, *args):
        attempts.append(args)
        raise OSError("network disabled")
socket.socket = NoNetwork
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import centernet
    from centernet.data.transforms import build_train_transform
    build_train_transform(64)
    import onnxruntime
    from centernet.inference.backends import OnnxRuntimeBackend
print(len(attempts), [str(w.message)[:80] for w in caught])
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 []", result.stdout + result.stderr
    assert "albumentations" not in result.stderr.lower()
