"""ONNX graph utilities shared by the fp32, fp16 and int8 exports.

Torch-free: simplification with onnxslim, a consistent `value_info`, the structural search for the
instance-norm statistics that mixed precision must keep in float32, and the sub-pixel form of the
decoder's upsampling that lets it run as an ordinary (int8) convolution.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import onnx
from onnx import helper, numpy_helper

from runtime.errors import ExportError

log = logging.getLogger(__name__)


def node_count(model: onnx.ModelProto) -> int:
    """Nodes in the main graph (what "before/after simplification" counts)."""
    return len(model.graph.node)


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """op_type -> count, most frequent first."""
    return dict(collections.Counter(node.op_type for node in model.graph.node).most_common())


def dynamic_dims(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    """Shape of every graph input and output, symbolic dimensions as their names."""
    shapes = {}
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_param if d.dim_param else d.dim_value for d in dims]
    return shapes


def with_outputs(
    model: onnx.ModelProto, names: Iterable[str], types: Mapping[str, onnx.TypeProto] | None = None
) -> onnx.ModelProto:
    """A copy of `model` that also outputs the tensors `names` (typed by `types`, else float32 of any
    shape), after its own outputs: to read intermediate tensors from an engine."""
    out = onnx.ModelProto.FromString(model.SerializeToString())
    known = {o.name for o in out.graph.output}
    out.graph.output.extend(
        helper.make_value_info(name, types[name])
        if types is not None
        else helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        for name in dict.fromkeys(names)
        if name not in known
    )
    return out


def refresh_value_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop and re-infer `value_info` strictly.

    onnxslim leaves duplicate `value_info` entries, and the fp16 converter retypes only the first
    entry of a name, which leaves the model contradicting itself; a fresh inference avoids both.
    """
    del model.graph.value_info[:]
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError as exc:
        raise ExportError(f"ONNX shape inference failed on the exported graph: {exc}") from exc


@dataclass(frozen=True)
class SimplifyReport:
    tool: str
    nodes_before: int
    nodes_after: int

    def to_dict(self) -> dict[str, int | str]:
        return {"tool": self.tool, "nodes_before": self.nodes_before, "nodes_after": self.nodes_after}


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, SimplifyReport]:
    """Constant folding and pattern fusion with onnxslim, keeping the dynamic batch.

    onnxslim rather than onnx-simplifier: both give the same graph here (226 -> 220 nodes for the
    paper generator, batch kept symbolic), but onnxslim is pure Python and already a dependency.
    The input/output shapes are checked afterwards, so a tool that pins the batch fails loudly.
    """
    import onnxslim

    before = node_count(model)
    inputs = {v.name: dynamic_dims(model)[v.name] for v in model.graph.input}
    with contextlib.redirect_stdout(io.StringIO()):  # onnxslim prints a summary table
        slim = onnxslim.slim(model)
    if not isinstance(slim, onnx.ModelProto):
        raise ExportError("onnxslim returned no model; the graph could not be simplified.")
    slim = refresh_value_info(slim)
    after = dynamic_dims(slim)
    pinned = [name for name, dims in after.items() if not dims or not isinstance(dims[0], str)]
    if pinned or any(after[name] != dims for name, dims in inputs.items()):
        raise ExportError(
            f"Simplification changed the graph's input/output shapes ({after}); the dynamic batch must "
            "survive simplification."
        )
    report = SimplifyReport(f"onnxslim {metadata.version('onnxslim')}", before, node_count(slim))
    log.debug("simplified: %d -> %d nodes", report.nodes_before, report.nodes_after)
    return slim, report


class _Graph:
    """Producer/consumer index of a graph, for structural pattern search."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.nodes = list(graph.node)
        self.consumers: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                self.consumers[name].append(node)

    def children(self, node: onnx.NodeProto) -> list[onnx.NodeProto]:
        return [c for out in node.output for c in self.consumers[out]]

    def descendants(self, node: onnx.NodeProto, limit: int) -> list[onnx.NodeProto]:
        """Nodes reachable from `node` within `limit` steps, breadth first, without `node` itself."""
        seen: dict[int, onnx.NodeProto] = {}
        frontier = [node]
        for _ in range(limit):
            frontier = [c for n in frontier for c in self.children(n) if id(c) not in seen]
            for c in frontier:
                seen[id(c)] = c
        return list(seen.values())


def _path_nodes(g: _Graph, start: onnx.NodeProto, end: onnx.NodeProto, limit: int) -> list[onnx.NodeProto]:
    """Nodes on some path start -> end (both excluded), at most `limit` steps long."""
    ends = {id(end)}
    result: dict[int, onnx.NodeProto] = {}

    def walk(node: onnx.NodeProto, trail: list[onnx.NodeProto], depth: int) -> None:
        if depth > limit:
            return
        for child in g.children(node):
            if id(child) in ends:
                for n in trail:
                    result[id(n)] = n
            else:
                walk(child, [*trail, child], depth + 1)

    walk(start, [], 0)
    return list(result.values())


def instance_norm_statistics(model: onnx.ModelProto, span: int = 6) -> list[list[onnx.NodeProto]]:
    """The nodes of each instance normalization written with explicit ops, one list per norm.

    Found by structure, not by node names, so both exporters' graphs match: `m1 = ReduceMean(x)`,
    `c = Sub(x, m1)`, a second ReduceMean `m2` downstream of `c` (the variance), and the first node
    `n` that consumes `c` together with something computed from `m2` (Mul by rsqrt, or Div by sqrt).
    The chain is m1, c, everything between c and m2, m2, everything between m2 and n, and n.
    """
    g = _Graph(model.graph)
    chains = []
    for m1 in g.nodes:
        if m1.op_type != "ReduceMean":
            continue
        x = m1.input[0]
        subs = [c for c in g.children(m1) if c.op_type == "Sub" and list(c.input) == [x, m1.output[0]]]
        if len(subs) != 1:
            continue
        sub = subs[0]
        m2s = [d for d in g.descendants(sub, span) if d.op_type == "ReduceMean"]
        if not m2s:
            continue
        m2 = m2s[0]
        after_m2 = g.descendants(m2, span)
        after_ids = {id(n) for n in after_m2}
        norms = [c for c in g.children(sub) if id(c) in after_ids]
        if len(norms) != 1:
            continue
        norm = norms[0]
        middle = _path_nodes(g, sub, m2, span) + _path_nodes(g, m2, norm, span)
        chains.append(_unique([m1, sub, *middle, m2, norm]))
    return chains


def _unique(nodes: Iterable[onnx.NodeProto]) -> list[onnx.NodeProto]:
    seen: dict[int, onnx.NodeProto] = {}
    for node in nodes:
        seen.setdefault(id(node), node)
    return list(seen.values())


COPYING_PAD_MODES = ("reflect", "edge")  # pads that only copy values: they commute with rounding and scaling


def pad_mode(node: onnx.NodeProto) -> str:
    """A Pad node's mode ("constant" when unset, as ONNX defines)."""
    return next((a.s.decode() for a in node.attribute if a.name == "mode"), "constant")


def conv_groups(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def output_channel_axis(op_type: str) -> int:
    """The weight axis of a convolution's output channels: Conv [O, I, ...], ConvTranspose [I, O, ...]."""
    return 0 if op_type == "Conv" else 1


def tensor_readers(graph: onnx.GraphProto) -> collections.Counter[str]:
    """How many nodes read each tensor, a graph output counting as one more: a rewrite may change a
    tensor's values, or replace an initializer, only where it is the one reader."""
    readers = collections.Counter(name for node in graph.node for name in node.input)
    readers.update(output.name for output in graph.output)
    return readers


def ensure_node_names(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name (block lists and error messages refer to names)."""
    taken = {node.name for node in model.graph.node if node.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


# ConvTranspose k3 s2 p1 output_padding 1: output pixel 2i + phase reads input i + offset through this tap
_SUBPIXEL_TAPS = {(0, 0): 1, (1, 0): 2, (1, 1): 0}  # (phase, offset) -> kernel index; (0, 1) reads none
_SUBPIXEL_FORM = {"strides": [2, 2], "kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}


def conv_transpose_to_subpixel(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with every 2x upsampling ConvTranspose (k3 s2 p1 output_padding 1, the decoder's)
    as a 2x2 Conv to 4x the channels, one group per output phase, then DepthToSpace; and how many.

    Same arithmetic up to summation order (the 7 taps in 16 that no phase reads are zero weights).
    Why: CPU engines run a ConvTranspose in float even when its input and weight are quantized (OpenVINO
    on AVX2 took 19 ms a paper clip for it, at a third of a convolution's rate), while the Conv runs in
    int8 like the other layers.
    """
    out = onnx.ModelProto.FromString(model.SerializeToString())
    ensure_node_names(out)  # the Conv keeps its ConvTranspose's name: profiles and int8 reports use it
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    readers = tensor_readers(graph)
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        matches = all(list(attrs.get(k, [])) == v for k, v in _SUBPIXEL_FORM.items())
        own = [name for name in node.input[1:] if name]  # weight (and bias): replaced under their names
        constant = len(own) >= 1 and all(name in inits and readers[name] == 1 for name in own)
        if node.op_type != "ConvTranspose" or not (matches and constant and attrs.get("group", 1) == 1):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])  # [Cin, Cout, 3, 3]
        c_in, c_out = weight.shape[:2]
        # [row phase, col phase, Cout, Cin, dy, dx]: output pixel (2i + row, 2j + col) reads (i + dy, j + dx)
        kernel = np.zeros((2, 2, c_out, c_in, 2, 2), weight.dtype)
        for (row_phase, dy), kh in _SUBPIXEL_TAPS.items():
            for (col_phase, dx), kw in _SUBPIXEL_TAPS.items():
                kernel[row_phase, col_phase, :, :, dy, dx] = weight[:, :, kh, kw].T
        inits[own[0]].CopyFrom(numpy_helper.from_array(kernel.reshape(4 * c_out, c_in, 2, 2), own[0]))
        if len(own) > 1:
            bias = numpy_helper.to_array(inits[own[1]])
            inits[own[1]].CopyFrom(numpy_helper.from_array(np.tile(bias, 4), own[1]))
        inputs = [node.input[0], *own]
        phases = f"{node.output[0]}.phases"
        nodes += [  # DCR: channel (row phase * 2 + col phase) * Cout + c -> pixel (2i + row, 2j + col)
            helper.make_node(
                "Conv", inputs, [phases], name=node.name, kernel_shape=[2, 2], pads=[0, 0, 1, 1]
            ),
            helper.make_node(
                "DepthToSpace",
                [phases],
                [node.output[0]],
                name=f"{node.name}.depth_to_space",
                blocksize=2,
                mode="DCR",
            ),
        ]
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return out, count
