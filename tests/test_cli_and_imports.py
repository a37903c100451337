"""The `dtvnet` dispatcher, and which modules may import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TORCH_FREE = [
    "runtime.errors",
    "runtime.fsutil",
    "runtime.seeded_normal",
    "runtime.imaging",
    "runtime.flow",
    "training.flow.estimator",
    "training.flow.cache",
    "training.data.clips",
    "training.data.synth",
    "training.demo",
    "runtime.console",
    "dtvnet.cli",
    "runtime.manifest",
    "export.graph",
    "export.fp16",
    "export.verify",
    "export.trt",
    "runtime",
    "runtime.generator",
    "runtime.backends.onnxruntime",
    "runtime.backends.openvino",
    "export.calibration",
    "export.int8",
    "export.suffix",
    "runtime.backends.tensorrt",
    "runtime.backends.tensorrt_checks",
    "runtime.generate",
    "dtvnet.demo",
    "training.data.demo_scenes",
    "runtime.writers",
    "runtime.batch",
    "runtime.backends.triton",
    "export.triton",
    "benchmarks.worker",  # every line's process imports it: ONNX Runtime and OpenVINO lines stay torch-free
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_does_not_import_torch(module: str):
    code = f"import sys, {module}; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, f"{module} imported torch"


def test_model_imports_without_gpu_packages():
    code = (
        "import sys; from training.model import Generator, FlowEncoder, Discriminator, DTVNetConfig; "
        "bad = [m for m in ('tensorrt', 'pycuda', 'cuda', 'onnxruntime') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _dtvnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvnet.cli", *args], capture_output=True, text=True)


def test_help_lists_commands():
    result = _dtvnet("--help")
    assert result.returncode == 0 and "checkpoint" in result.stdout and "export" in result.stdout


def test_unknown_command():
    result = _dtvnet("frobnicate")
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("dtvnet")  # installed beside the interpreter running the tests
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: dtvnet" in result.stdout
