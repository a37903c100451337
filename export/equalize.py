"""Cross-layer equalization: exact per-channel rescaling that makes int8 activations fit every channel.

An int8 convolution reads its input through one uint8 scale for the whole tensor, so a tensor whose
channels span very different ranges spends its 256 levels on the few loud ones and rounds the quiet
ones coarsely. Trained generators have such tensors: in the paper model fitted to time-lapses the output
layer's loudest input channel is 5x the median, and that layer alone in int8 cost 32 dB; with the input
quantized per channel it would cost 46 dB.

Where one convolution feeds another only through ReLU / LeakyReLU and pads that copy or add zeros, and
nothing else reads the tensors in between, dividing the first's output channel i (weights and bias) by
s_i and multiplying the second's input channel i by s_i computes the same function: ReLU(x / s) =
ReLU(x) / s for s > 0, and pads copy. The quantization then sees channels of ranges r_i / s_i.

s_i = r_i^alpha / w_i^(1 - alpha) (r_i: the channel's calibrated range, w_i: the largest weight that
reads it), as in SmoothQuant: alpha = 1 would flatten the activations completely but move their spread
into the second layer's weights, which are quantized per output channel across all input channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from export.graph import COPYING_PAD_MODES, conv_groups, output_channel_axis, pad_mode, tensor_readers

ALPHA = 0.5
_POSITIVE_HOMOGENEOUS = ("Relu", "LeakyRelu")  # f(x / s) = f(x) / s for every s > 0


@dataclass(frozen=True)
class Pair:
    """A convolution (`producer`) feeding another (`consumer`) through channel-wise ops only."""

    producer: str  # node names
    consumer: str
    activation: str  # the consumer's input: the tensor whose channel ranges are equalized


def _channel_preserving(node: onnx.NodeProto, inits: Mapping[str, onnx.TensorProto]) -> bool:
    if node.op_type in _POSITIVE_HOMOGENEOUS:
        return True
    if node.op_type != "Pad":
        return False
    mode = pad_mode(node)
    if mode in COPYING_PAD_MODES:
        return True
    value = node.input[2] if len(node.input) > 2 and node.input[2] else None
    zero = value is None or (value in inits and not numpy_helper.to_array(inits[value]).any())
    return mode == "constant" and zero  # a constant pad commutes with scaling only when it adds zeros


def equalizable_pairs(model: onnx.ModelProto) -> list[Pair]:
    """Every producer -> consumer pair that `equalize` may rescale, in graph order. Both are ungrouped
    Conv / ConvTranspose with weights (and bias) of their own; every tensor between them has one reader."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    readers = tensor_readers(graph)
    consumers_of: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        for name in node.input:
            consumers_of.setdefault(name, node)

    def own_parameters(node: onnx.NodeProto) -> bool:
        params = [name for name in node.input[1:] if name]
        return conv_groups(node) == 1 and bool(params) and all(p in inits and readers[p] == 1 for p in params)

    pairs = []
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or not own_parameters(node):
            continue
        tensor = node.output[0]
        while readers[tensor] == 1 and tensor in consumers_of:
            after = consumers_of[tensor]
            if after.op_type in ("Conv", "ConvTranspose"):
                if after.input[0] == tensor and own_parameters(after):
                    pairs.append(Pair(node.name, after.name, tensor))
                break
            if not _channel_preserving(after, inits) or after.input[0] != tensor:
                break
            tensor = after.output[0]
    return pairs


def channel_scales(
    lo: np.ndarray, hi: np.ndarray, consumer_weight: np.ndarray, in_axis: int, alpha: float = ALPHA
) -> np.ndarray:
    """s_i for each input channel of the consumer (see module docstring); 1 for a channel that is always 0
    or never read, and a geometric mean of 1 (the overall size of s changes nothing)."""
    reduce = tuple(d for d in range(consumer_weight.ndim) if d != in_axis)
    w = np.abs(consumer_weight).max(axis=reduce).astype(np.float64)
    r = (np.maximum(hi, 0.0) - np.minimum(lo, 0.0)).astype(np.float64)
    live = (r > 0) & (w > 0)
    s = np.ones_like(r)
    s[live] = r[live] ** alpha / w[live] ** (1.0 - alpha)
    s[live] /= np.exp(np.log(s[live]).mean())
    return s


def equalize(
    model: onnx.ModelProto,
    pairs: list[Pair],
    ranges: Mapping[str, tuple[np.ndarray, np.ndarray]],
    alpha: float = ALPHA,
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A copy of `model` with each pair rescaled (in order: a convolution may be the consumer of one pair
    and the producer of the next), and s of each pair by its activation. `ranges`: per-channel min / max
    of each pair's activation in `model`; divided by s, they are the ranges in the copy."""
    out = onnx.ModelProto.FromString(model.SerializeToString())
    nodes = {n.name: n for n in out.graph.node}
    inits = {i.name: i for i in out.graph.initializer}

    def rescale(name: str, factor: np.ndarray, axis: int) -> None:
        array = numpy_helper.to_array(inits[name])
        shape = [-1 if d == axis else 1 for d in range(array.ndim)]
        scaled = (array.astype(np.float64) * factor.reshape(shape)).astype(array.dtype)
        inits[name].CopyFrom(numpy_helper.from_array(scaled, name))

    scales = {}
    for pair in pairs:
        producer, consumer = nodes[pair.producer], nodes[pair.consumer]
        in_axis = 1 - output_channel_axis(consumer.op_type)
        weight = numpy_helper.to_array(inits[consumer.input[1]])
        s = channel_scales(*ranges[pair.activation], weight, in_axis, alpha)
        rescale(producer.input[1], 1.0 / s, output_channel_axis(producer.op_type))
        if len(producer.input) > 2 and producer.input[2]:
            rescale(producer.input[2], 1.0 / s, 0)
        rescale(consumer.input[1], s, in_axis)
        scales[pair.activation] = s
    return out, scales


def equalized_ranges(
    ranges: Mapping[str, tuple[np.ndarray, np.ndarray]], scales: Mapping[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel ranges of the equalized model, from those of the original."""
    out = dict(ranges)
    for name, s in scales.items():
        lo, hi = ranges[name]
        out[name] = (lo / s, hi / s)
    return out
