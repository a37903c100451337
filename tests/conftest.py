"""Shared test configuration: `gpu` tests skip cleanly where no CUDA device exists."""

from __future__ import annotations

import functools
import importlib

import pytest


@functools.cache
def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@functools.cache
def tensorrt_available() -> bool:
    """True only for a real TensorRT install (tensorrt-stubs alone leaves a `tensorrt` namespace)."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        return False
    return hasattr(trt, "Builder") and hasattr(trt, "__version__")


def require_tensorrt() -> None:
    """Skip the calling test unless TensorRT and a CUDA GPU are present."""
    if not (cuda_available() and tensorrt_available()):
        pytest.skip("needs TensorRT and an NVIDIA GPU (pip install 'dtvnet[gpu]' on a GPU machine)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def realistic_tiny(tmp_path_factory: pytest.TempPathFactory):
    """A tiny checkpoint whose generator makes frames spread over [-1, 1] (see tests/realistic.py)."""
    from tests.realistic import realistic_checkpoint

    return realistic_checkpoint(tmp_path_factory.mktemp("realistic") / "tiny", "tiny", seed=1)


@pytest.fixture(scope="session")
def tiny_exports(realistic_tiny, tmp_path_factory: pytest.TempPathFactory):
    """Every CPU artifact of `realistic_tiny`, written once by the `dtvnet export` pipeline."""
    from export.pipeline import export_all

    out = tmp_path_factory.mktemp("exports") / "tiny"
    result = export_all(realistic_tiny, out, engine="skip", seed=0)
    assert [p.name for p in result.artifacts] == ["onnx-fp32", "onnx-fp16", "ofe-fp32"]
    return out


@pytest.fixture(scope="session")
def tiny_artifacts(realistic_tiny, tiny_exports):
    """(checkpoint folder, generator artifact folder, flow encoder artifact folder) of the tiny model
    (32x32, 8 frames, motion size 32), exported once per session."""
    return realistic_tiny, tiny_exports / "onnx-fp32", tiny_exports / "ofe-fp32"
