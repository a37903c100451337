"""Measuring a changed model by re-running only the part its changes reach.

The int8 selection measures ~40 models that each differ from the float32 one in one layer (or a few):
everything upstream of the changed layers, and every branch that never meets them, computes exactly
what the float32 model computes. So `FloatCut` runs the float32 model once per feed and keeps the
tensors at which the candidates' changes begin; each measured model is then cut down to the nodes its
changes reach (`downstream_model`) and fed from those tensors. On the paper generator that is about
half the work of running each model whole: a decoder layer re-runs a fifth of the clip, a content
block 30-80%, a motion block a third. Same engine, same float precision, same arithmetic.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper

from export.graph import refresh_value_info, with_outputs

if TYPE_CHECKING:
    from export.parity import TensorsRunner

log = logging.getLogger(__name__)

Feeds = Mapping[str, np.ndarray]


def reached_nodes(graph: onnx.GraphProto, changed: Collection[str]) -> list[onnx.NodeProto]:
    """The nodes named in `changed` and every node that reads what they compute, in graph order."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    reached: set[str] = set()
    stack = [node for node in graph.node if node.name in changed]
    while stack:
        node = stack.pop()
        if node.name in reached:
            continue
        reached.add(node.name)
        stack.extend(reader for output in node.output for reader in readers.get(output, ()))
    return [node for node in graph.node if node.name in reached]


def cut_tensors(graph: onnx.GraphProto, nodes: Iterable[onnx.NodeProto]) -> list[str]:
    """The tensors `nodes` read from outside themselves (constants aside): what feeds them."""
    nodes = list(nodes)
    made = {name for node in nodes for name in node.output}
    constants = {init.name for init in graph.initializer}
    cut = [n for node in nodes for n in node.input if n and n not in made and n not in constants]
    return list(dict.fromkeys(cut))


def downstream_model(
    model: onnx.ModelProto, changed: Collection[str], types: Mapping[str, onnx.TypeProto]
) -> tuple[onnx.ModelProto, list[str]]:
    """`model` cut down to what the `changed` nodes reach, as a model whose inputs are the tensors that
    part reads from the rest (returned too; `types` gives their types) and whose outputs are the graph
    outputs it computes."""
    graph = model.graph
    nodes = reached_nodes(graph, changed)
    cut = cut_tensors(graph, nodes)
    made = {name for node in nodes for name in node.output}
    used = {name for node in nodes for name in node.input}
    sub = helper.make_graph(
        nodes,
        f"{graph.name}_downstream",
        [helper.make_value_info(name, types[name]) for name in cut],
        [output for output in graph.output if output.name in made],
        [init for init in graph.initializer if init.name in used],
    )
    out = helper.make_model(sub, opset_imports=model.opset_import, ir_version=model.ir_version)
    return out, cut


def tensor_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """The type of every tensor of `model` (shape inference on a copy)."""
    inferred = refresh_value_info(onnx.ModelProto.FromString(model.SerializeToString()))
    graph = inferred.graph
    return {value.name: value.type for value in [*graph.input, *graph.value_info, *graph.output]}


def default_max_bytes() -> int:
    """An eighth of this machine's memory (2 GiB where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 8
    except (AttributeError, ValueError, OSError):
        return 2 << 30


def _within(names: Sequence[str], sizes: Mapping[str, int], budget: int) -> list[str]:
    """`names` less the largest ones, until their sizes sum to at most `budget`."""
    kept, total = set(names), sum(sizes[n] for n in names)
    for name in sorted(names, key=lambda n: sizes[n], reverse=True):
        if total <= budget:
            break
        kept.discard(name)
        total -= sizes[name]
    if len(kept) < len(names):
        log.info("float cut: %d of %d tensors kept within %.0f MB", len(kept), len(names), budget / 1e6)
    return [name for name in names if name in kept]


class FloatCut:
    """The float32 model's tensors where changes begin, per feed, and models cut down to be fed them.

    `starts`: the nodes at which any measured change may begin; every tensor a change's downstream part
    may read is computed once here (one run of the float32 model per feed, with those tensors as extra
    outputs). A change whose downstream part reads anything else runs whole. At most `max_bytes` are
    held (default: an eighth of this machine's memory): past it the largest tensors are let go, and the
    changes that read them run whole.
    """

    def __init__(
        self,
        model: onnx.ModelProto,
        starts: Iterable[str],
        feeds: Sequence[Feeds],
        make_tensors_runner: Callable[[bytes], TensorsRunner],
        max_bytes: int | None = None,
    ) -> None:
        budget = default_max_bytes() if max_bytes is None else max_bytes
        self.types = tensor_types(model)
        graph = model.graph
        self.nodes = {node.name for node in graph.node}
        wanted = list(dict.fromkeys(t for s in starts for t in cut_tensors(graph, reached_nodes(graph, {s}))))
        inputs = {value.name for value in graph.input}
        computed = [name for name in wanted if name not in inputs]
        probe = with_outputs(model, computed, self.types)
        names = [output.name for output in probe.graph.output]
        run = make_tensors_runner(probe.SerializeToString())
        self.values: list[dict[str, np.ndarray]] = []
        for feed in feeds:
            outputs = {**dict(zip(names, run(feed), strict=True)), **feed}
            if not self.values:  # the first feed tells the size of them all
                wanted = _within(wanted, {n: outputs[n].nbytes * len(feeds) for n in wanted}, budget)
            self.values.append({name: np.asarray(outputs[name]) for name in wanted})
        log.debug("float cut: %d tensors, %.0f MB", len(wanted), self.nbytes / 1e6)

    @property
    def nbytes(self) -> int:
        return sum(value.nbytes for values in self.values for value in values.values())

    def downstream(
        self, model: onnx.ModelProto
    ) -> tuple[onnx.ModelProto, list[dict[str, np.ndarray]]] | None:
        """(`model` cut down to what its changes reach, its feeds), or None if that part reads a tensor this
        cut does not hold (run `model` whole then). `model` is the float32 one with nodes added (a node
        rewired in place reads an added one): the changes are the nodes the float32 model lacks."""
        changed = {node.name for node in model.graph.node} - self.nodes
        try:
            sub, cut = downstream_model(model, changed, self.types)
        except KeyError:  # a tensor the float model does not have: not one this cut can feed
            return None
        if not all(name in self.values[0] for name in cut):
            return None
        return sub, [{name: values[name] for name in cut} for values in self.values]
