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
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory):
    """A tiny checkpoint (32x32, 8 frames, motion size 32) and its ONNX exports, made once per session.

    Returns (checkpoint folder, generator artifact folder, flow encoder artifact folder).
    """
    from export.onnx import export_flow_encoder, export_generator
    from training.checkpoint import init_checkpoint
    from training.model import preset

    root = tmp_path_factory.mktemp("tiny")
    ckpt = init_checkpoint(root / "ckpt", preset("tiny"), seed=0)
    generator = export_generator(ckpt, root / "exports")
    flow_encoder = export_flow_encoder(ckpt, root / "exports")
    return ckpt, generator, flow_encoder
