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


def test_run_each_keeps_every_stream_busy_and_returns_outputs_in_order(tiny_exports: Path):
    m, model_path = resolve_artifact(tiny_exports / "onnx-fp32")
    backend = load_checked(m, model_path, "generator", "openvino", "cpu")
    if not backend.streams:
        pytest.skip("one core: no parallel streams")
    feeds = landscape_batch(list(range(7)), m.image_size, m.motion_dim)
    expected = backend.run(feeds)["video"]
    one_at_a_time = ({k: v[i : i + 1] for k, v in feeds.items()} for i in range(7))
    outputs = list(backend.run_each(one_at_a_time))
    assert len(outputs) == 7 and backend.busy.seconds > 0
    np.testing.assert_allclose(np.concatenate([o["video"] for o in outputs]), expected, atol=1e-5)
    # Left early: the requests still in flight finish before run_each returns; a later call starts afresh.
    early = backend.run_each({k: v[i : i + 1] for k, v in feeds.items()} for i in range(7))
    next(early)
    early.close()
    again = list(backend.run_each({k: v[i : i + 1] for k, v in feeds.items()} for i in (5, 6)))
    np.testing.assert_allclose(np.concatenate([o["video"] for o in again]), expected[5:], atol=1e-5)
    backend.close()


def test_run_many_on_parallel_streams_matches_batched_engine_calls(tiny_exports: Path):
    from runtime import Generator

    with Generator(tiny_exports / "onnx-fp32", backend="openvino", device="cpu", batch_size=4) as generator:
        if not generator.backend.streams:
            pytest.skip("one core: no parallel streams")
        size = generator.image_size
        images = [landscape_batch([i], size, generator.motion_dim)["image"][0] for i in range(5)]
        images = [((im.transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8) for im in images]
        clips = list(generator.run_many(images, seed=3))
        assert [c.index for c in clips] == list(range(5))
        assert generator.stats.frames_generated == 5 * generator.frames
        assert 0 < generator.stats.engine_seconds == pytest.approx(generator.backend.busy.seconds)  # streamed
        streamed = np.stack([c.frames for c in clips])
        generator.batch_size = 1  # below the stream count: one batched call per clip
        batched = np.stack([c.frames for c in generator.run_many(images, seed=3)])
    assert np.abs(streamed.astype(int) - batched.astype(int)).max() <= 1
