"""Cross-layer equalization: which convolutions it pairs, that it keeps the function, and that it buys
int8 accuracy where channels differ in range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.calibration import CALIBRATION_SEEDS, check_seeds, landscape_batch
from export.equalize import channel_scales, equalizable_pairs, equalize, equalized_ranges
from export.graph import ensure_node_names
from export.int8 import channel_ranges, conv_sites, quantize_convs, tensor_ranges
from export.parity import onnxruntime_runner


@pytest.fixture(scope="module")
def tiny_model(tiny_exports: Path) -> onnx.ModelProto:
    model = onnx.load(str(tiny_exports / "onnx-fp32" / "model.onnx"))
    ensure_node_names(model)
    return model


def _weights(model: onnx.ModelProto) -> dict[str, str]:
    return {n.name: n.input[1] for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")}


def test_pairs_are_the_chains_through_relus_and_pads(tiny_model):
    weights = _weights(tiny_model)
    pairs = {(weights[p.producer], weights[p.consumer]) for p in equalizable_pairs(tiny_model)}
    prefix = "generator."
    expected = {
        ("encoder.conv1", "encoder.conv2"),
        ("encoder.conv2", "encoder.conv3"),
        ("decoder.conv1", "decoder.conv2"),
        ("decoder.conv2", "decoder.up"),  # into a ConvTranspose: its input channels are weight axis 0
        ("decoder.up", "decoder.out_conv"),  # out of it: its output channels are weight axis 1
    }
    for producer, consumer in expected:
        assert (f"{prefix}{producer}.weight", f"{prefix}{consumer}.weight") in pairs
    blocks = [w for w in weights.values() if ".blocks." in w and w.endswith("conv2.weight")]
    assert all(any(c == w for _, c in pairs) for w in blocks)  # every residual block's inner pair
    consumers = {c for _, c in pairs}
    assert not any("conv1" in c and ".blocks." in c for c in consumers)  # they read the residual stream
    assert f"{prefix}motion.image_conv.weight" not in consumers  # reads a tensor with other readers


def test_a_second_reader_or_a_nonzero_pad_breaks_a_pair():
    def two_convs(pad_value: float | None, extra_output: bool) -> onnx.ModelProto:
        rng = np.random.default_rng(0)
        inits = [
            numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(size=(2, 4, 3, 3)).astype(np.float32), "w2"),
            numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        ]
        pad_inputs = ["r", "pads"]
        if pad_value is not None:
            inits.append(numpy_helper.from_array(np.array(pad_value, np.float32), "value"))
            pad_inputs.append("value")
        nodes = [
            helper.make_node("Conv", ["x", "w1"], ["c"], name="first", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("Pad", pad_inputs, ["p"], name="pad", mode="constant"),
            helper.make_node("Conv", ["p", "w2"], ["y"], name="second"),
        ]
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
        if extra_output:
            outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
        return helper.make_model(helper.make_graph(nodes, "g", [x], outputs, inits))

    assert [(p.producer, p.consumer) for p in equalizable_pairs(two_convs(None, False))] == [
        ("first", "second")
    ]
    assert equalizable_pairs(two_convs(0.0, False))  # padding with zeros commutes with scaling
    assert not equalizable_pairs(two_convs(0.5, False))  # 0.5 would have to become 0.5 / s
    assert not equalizable_pairs(two_convs(None, True))  # the graph output would change


def test_scales_flatten_ranges_at_alpha_one_and_leave_dead_channels():
    lo = np.zeros(4)
    hi = np.array([8.0, 2.0, 0.0, 4.0])
    weight = np.ones((5, 4, 3, 3))
    s = channel_scales(lo, hi, weight, in_axis=1, alpha=1.0)
    assert s[2] == 1.0  # always zero: nothing to fit
    live = hi[[0, 1, 3]] / s[[0, 1, 3]]
    assert np.allclose(live, live[0])
    half = channel_scales(lo, hi, weight, in_axis=1, alpha=0.5)
    assert np.ptp(hi[[0, 1, 3]] / half[[0, 1, 3]]) < np.ptp(hi[[0, 1, 3]])  # flatter, not flat


def test_equalization_keeps_the_function_and_rescales_the_ranges(tiny_model):
    pairs = equalizable_pairs(tiny_model)
    acts = [p.activation for p in pairs]
    feeds = [landscape_batch(list(CALIBRATION_SEEDS)[:4], 32, 32)]
    channels = channel_ranges(tiny_model, acts, feeds)
    equalized, scales = equalize(tiny_model, pairs, channels)
    assert max(np.ptp(np.log(s)) for s in scales.values()) > 0.1  # something was rescaled
    check = landscape_batch(check_seeds(np.random.default_rng(3), 2), 32, 32)
    a, b = (onnxruntime_runner(m.SerializeToString())(check) for m in (tiny_model, equalized))
    assert np.abs(a - b).max() < 1e-5
    measured = channel_ranges(equalized, acts, feeds)
    for name, (lo, hi) in equalized_ranges(channels, scales).items():
        assert np.allclose(measured[name][1], hi, rtol=1e-4, atol=1e-6)
        assert np.allclose(measured[name][0], lo, rtol=1e-4, atol=1e-6)


def test_equalization_makes_int8_closer_when_one_channel_is_loud(tiny_model):
    """Make one input channel of the output layer 30x louder (its weights 30x smaller: same function):
    per-tensor int8 of that layer loses most of its levels to it, unless equalized first."""
    model = onnx.ModelProto.FromString(tiny_model.SerializeToString())
    pairs = equalizable_pairs(model)
    weights = _weights(model)
    last = next(p for p in pairs if weights[p.consumer].endswith("out_conv.weight"))
    nodes = {n.name: n for n in model.graph.node}
    inits = {i.name: i for i in model.graph.initializer}
    factor = np.ones(numpy_helper.to_array(inits[nodes[last.consumer].input[1]]).shape[1])
    factor[0] = 30.0
    for name, axis, f in (
        (nodes[last.producer].input[1], 1, factor),  # ConvTranspose [I, O, kh, kw]
        (nodes[last.producer].input[2], 0, factor),
        (nodes[last.consumer].input[1], 1, 1 / factor),
    ):
        array = numpy_helper.to_array(inits[name])
        shape = [-1 if d == axis else 1 for d in range(array.ndim)]
        inits[name].CopyFrom(numpy_helper.from_array((array * f.reshape(shape)).astype(np.float32), name))
    feeds = [landscape_batch(list(CALIBRATION_SEEDS)[:8], 32, 32)]
    site = next(s for s in conv_sites(model) if s.node == last.consumer)
    channels = channel_ranges(model, [site.activation], feeds)
    equalized, scales = equalize(model, [last], channels)
    check = landscape_batch(check_seeds(np.random.default_rng(4), 4), 32, 32)
    exact = onnxruntime_runner(model.SerializeToString())(check)

    def int8_error(m: onnx.ModelProto, ranges) -> float:
        quantized = quantize_convs(m, [site], tensor_ranges(ranges))
        return float(np.mean((onnxruntime_runner(quantized.SerializeToString())(check) - exact) ** 2))

    plain = int8_error(model, channels)
    better = int8_error(equalized, equalized_ranges(channels, scales))
    assert better < plain / 4, (plain, better)  # > 6 dB
