"""The OpenVINO backend: when `auto` picks it, numerics that follow the manifest, and its errors."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from export.calibration import landscape_batch
from runtime.backends import choose_backend, load_checked
from runtime.errors import ArtifactError, BackendUnavailableError
from runtime.manifest import resolve_artifact
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


def _vnni() -> bool | None:
    """Whether this CPU has VNNI (int8 dot products into 32 bits); None where /proc/cpuinfo is missing."""
    from benchmarks.machine import cpu_flags

    if not Path("/proc/cpuinfo").is_file():
        return None
    return any(flag in cpu_flags() for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def _int8_conv_model(weights: np.ndarray) -> bytes:
    """A QDQ 3x3 convolution whose input scale is 1: uint8 inputs in, their integer sums out."""
    from onnx import TensorProto, helper, numpy_helper

    k = weights.shape[0]
    inits = [
        numpy_helper.from_array(weights, "w_q"),
        numpy_helper.from_array(np.ones(k, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(k, np.int8), "w_zero"),
        numpy_helper.from_array(np.array(1.0, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(0, np.uint8), "x_zero"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w_dq"], axis=0),
        helper.make_node("Conv", ["x_dq", "w_dq"], ["y"], pads=[1, 1, 1, 1]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weights.shape[1], 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "int8_conv", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def test_openvino_int8_convolution_saturates_pairs_without_vnni():
    """What export.int8's docstring says of OpenVINO's int8 arithmetic: without VNNI each pair of
    adjacent input channels' u8 x s8 products is summed in saturating 16 bits (vpmaddubsw), so full-range
    inputs and weights come out wrong; with VNNI the sums are exact. ONNX Runtime's are exact on both."""
    vnni = _vnni()
    if vnni is None:
        pytest.skip("no /proc/cpuinfo to tell whether this CPU has VNNI")
    from export.parity import onnxruntime_runner, openvino_runner

    rng = np.random.default_rng(0)
    weights = rng.integers(-127, 128, size=(16, 32, 3, 3)).astype(np.int8)
    x = rng.integers(0, 256, size=(1, 32, 8, 8)).astype(np.float32)
    cols = np.pad(x[0].astype(np.int64), ((0, 0), (1, 1), (1, 1)))
    taps = np.stack([cols[:, i : i + 8, j : j + 8] for i in range(3) for j in range(3)], 1)  # C, 9, H, W
    products = np.einsum("cthw,kct->kcthw", taps, weights.astype(np.int64).reshape(16, 32, 9))
    exact = products.sum(axis=(1, 2))
    pairs = products[:, 0::2] + products[:, 1::2]
    assert (np.abs(pairs) > 2**15 - 1).any()  # the inputs do reach saturation
    saturated = np.clip(pairs, -(2**15), 2**15 - 1).sum(axis=(1, 2))
    model = _int8_conv_model(weights)
    openvino = openvino_runner(model, "f32")({"x": x})[0]  # batch of one
    onnxruntime = onnxruntime_runner(model)({"x": x})[0]
    np.testing.assert_array_equal(onnxruntime, exact)
    np.testing.assert_array_equal(openvino, exact if vnni else saturated)
