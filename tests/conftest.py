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
