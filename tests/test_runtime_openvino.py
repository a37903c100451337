"""The OpenVINO backend: when `auto` picks it, numerics that follow the manifest, and its errors."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from export.calibration import landscape_batch
from export.manifest import resolve_artifact
from runtime.backends import choose_backend, load_checked
from runtime.errors import ArtifactError, BackendUnavailableError
from tests.test_runtime_backends import manifest

pytest.importorskip("openvino")


def test_auto_sends_int8_on_the_cpu_to_openvino(monkeypatch):
    int8 = manifest(precision="int8")
    onnx_path = Path("a/model.onnx")
    assert choose_backend(int8, onnx_path) == "openvino"
    assert choose_backend(int8, onnx_path, device="cpu") == "openvino"
    assert choose_backend(int8, onnx_path, device="cuda") == "onnxruntime"
    assert choose_backend(int8, onnx_path, "onnxruntime") == "onnxruntime"
    assert choose_backend(manifest(), onnx_path) == "onnxruntime"  # fp32 stays on ONNX Runtime
    assert choose_backend(manifest(), onnx_path, "openvino") == "openvino"  # unless asked
    with pytest.raises(BackendUnavailableError, match="the openvino backend cannot run"):
        choose_backend(manifest("tensorrt", "model.plan"), Path("a/model.plan"), "openvino")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real_find_spec(name, *a)
    )
    assert choose_backend(int8, onnx_path) == "onnxruntime"  # not installed: ONNX Runtime runs it


def test_fp32_on_openvino_matches_onnxruntime(tiny_exports: Path):
    m, model_path = resolve_artifact(tiny_exports / "onnx-fp32")
    feeds = landscape_batch([1, 2, 3], m.image_size, m.motion_dim)
    ov = load_checked(m, model_path, "generator", "openvino", "cpu")
    ort = load_checked(m, model_path, "generator", "onnxruntime", "cpu")
    assert ov.name == "openvino" and ov.device.endswith("f32)")
    first = ov.run(feeds)["video"]
    second = ov.run({k: v[:1] for k, v in feeds.items()})["video"]
    assert first.shape == (3, 3, 8, 32, 32) and first.dtype == np.float32
    np.testing.assert_allclose(first, ort.run(feeds)["video"], atol=1e-4)
    np.testing.assert_allclose(second[0], first[0], atol=1e-5)  # outputs are copies, not reused buffers
    bf16 = dataclasses.replace(m, extra={"openvino": {"inference_precision": "bf16"}})
    low_backend = load_checked(bf16, model_path, "generator", "openvino", "cpu")
    low = low_backend.run(feeds)["video"]
    if low_backend.device.endswith("bf16)"):  # CPUs with bfloat16 instructions
        assert np.abs(low - first).max() > 1e-4
        assert 10 * np.log10(4 / np.mean((low - first) ** 2)) > 30  # dB, frames in [-1, 1]
    else:
        assert np.abs(low - first).max() < 1e-4
    for backend in (ov, ort, low_backend):
        backend.close()


def test_openvino_errors(tiny_exports: Path):
    m, model_path = resolve_artifact(tiny_exports / "onnx-fp32")
    with pytest.raises(BackendUnavailableError, match="runs on the CPU, not on 'cuda'"):
        load_checked(m, model_path, "generator", "openvino", "cuda")
    odd = dataclasses.replace(m, extra={"openvino": {"inference_precision": "int4"}})
    with pytest.raises(ArtifactError, match="inference precision 'int4'"):
        load_checked(odd, model_path, "generator", "openvino", "cpu")
