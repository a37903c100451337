"""Mixed-precision (fp16) ONNX: weights and most ops in float16, precision-critical parts in float32.

Kept in float32, with explicit Cast nodes at every boundary so a strongly typed TensorRT parser (the
only kind TensorRT 11 has) builds exactly these precisions:
- the instance-norm statistics of every AdaIN (mean, centred input, variance, rsqrt, the
  normalization itself): x^2 overflows float16 above 256 and the variance of a nearly constant
  channel underflows;
- tanh and everything after it, so frames leave the graph as float32 without a float16 round trip;
- the graph inputs and outputs (`image`, `motion` -> `video` stay float32, so hosts feed the same
  arrays to every artifact).

What ONNX Runtime's CPU provider does with this model (ORT 1.32 on x86-64; tested in
tests/test_export_fp16.py): it has float16 kernels only for data-movement ops (Reshape, Split,
Unsqueeze...), so it inserts Casts to float32 around every other node and then removes back-to-back
Cast pairs, including the model's own Casts of its inputs. The arithmetic is float32 on
float16-rounded weights, and activations are rounded to float16 only around the data-movement ops.
Verifying on ORT CPU therefore measures weight rounding, not float16 arithmetic.
`simulate_fp16_activations` builds the stricter check: a float32 graph that rounds every activation
the fp16 model stores in float16 (float32 math inside each op, like GPU kernels that accumulate in
float32), i.e. what a GPU running the fp16 model stores between layers. Both must reach 40 dB.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.graph import ensure_node_names, instance_norm_statistics, refresh_value_info
from runtime.errors import ExportError

if TYPE_CHECKING:
    from export.parity import ParityRunner
    from export.progress import Steps
    from runtime.manifest import Manifest

log = logging.getLogger(__name__)

FP32_TAIL_OPS = ("Tanh",)  # this op and everything downstream of it stays float32
DATA_MOVEMENT_OPS = frozenset(
    {"Reshape", "Unsqueeze", "Squeeze", "Split", "Transpose", "Identity", "Flatten", "Concat", "Pad", "Slice"}
)
ORT_CPU_NOTE = (
    "ONNX Runtime's CPU provider (x86-64) has no float16 kernels for Conv, Gemm, elementwise or "
    "reduction ops: it runs them in float32 and removes the Casts between them, even the model's own "
    "input Casts, so its check measures float16 weight rounding only; the 'simulated_fp16_activations' "
    "check also rounds every activation the model keeps in float16."
)


@dataclass(frozen=True)
class Fp16Report:
    """What the conversion kept in float32, for the manifest."""

    converter: str
    instance_norms: int
    fp32_nodes: list[str]
    casts: int

    def to_dict(self) -> dict[str, object]:
        return {
            "converter": self.converter,
            "instance_norms_in_fp32": self.instance_norms,
            "fp32_nodes": self.fp32_nodes,
            "casts": self.casts,
            "ort_cpu": ORT_CPU_NOTE,
        }


def fp32_tail(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes of FP32_TAIL_OPS (tanh) and all their descendants."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    tail: dict[int, onnx.NodeProto] = {}
    stack = [n for n in model.graph.node if n.op_type in FP32_TAIL_OPS]
    while stack:
        node = stack.pop()
        if id(node) in tail:
            continue
        tail[id(node)] = node
        stack += [c for out in node.output for c in consumers.get(out, [])]
    return list(tail.values())


def convert_to_fp16(
    model: onnx.ModelProto, expected_instance_norms: int | None = None
) -> tuple[onnx.ModelProto, Fp16Report]:
    """float32 ONNX -> mixed precision (see module docstring) with onnxconverter-common.

    `expected_instance_norms`: how many AdaIN statistics chains the model must contain (the
    generator's motion_blocks); a different count means the exporter changed the graph's shape and
    the float32 islands would be incomplete, so it is an error rather than a silent precision loss.
    """
    from onnxconverter_common import float16

    model = refresh_value_info(onnx.ModelProto.FromString(model.SerializeToString()))
    ensure_node_names(model)
    norms = instance_norm_statistics(model)
    if expected_instance_norms is not None and len(norms) != expected_instance_norms:
        raise ExportError(
            f"Found {len(norms)} instance-norm statistics chains in the graph, expected "
            f"{expected_instance_norms}; the exported graph changed shape, so export/fp16.py cannot keep "
            "them in float32 (update graph.instance_norm_statistics)."
        )
    tail = fp32_tail(model)
    # The converter keeps the outputs of blocked nodes in float32 by casting after each; a blocked
    # node feeding the graph output trips its cast clean-up, so the tail below tanh is handled after.
    blocked = [n.name for chain in norms for n in chain] + [
        n.name for n in tail if n.op_type in FP32_TAIL_OPS
    ]
    tail_rest = [n.name for n in tail if n.op_type not in FP32_TAIL_OPS]
    _unshare_initializers(model, set(blocked))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the float32 number ... will be truncated" for tiny weights
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=blocked, disable_shape_infer=True
        )
    _float32_tail(converted, tail_rest)
    converted = refresh_value_info(converted)
    try:
        onnx.checker.check_model(converted, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"The fp16 graph is not valid ONNX: {exc}") from exc
    report = Fp16Report(
        converter=f"onnxconverter-common {metadata.version('onnxconverter-common')}",
        instance_norms=len(norms),
        fp32_nodes=sorted([*blocked, *tail_rest]),
        casts=sum(n.op_type == "Cast" for n in converted.graph.node),
    )
    log.debug("fp16: %d instance norms and %d tail nodes kept in float32", len(norms), len(tail))
    return converted, report


def _unshare_initializers(model: onnx.ModelProto, blocked: set[str]) -> None:
    """Give blocked (float32) nodes their own copy of any initializer they share with float16 nodes.

    The converter leaves an initializer in float32 if any blocked node reads it, which would feed a
    float32 constant to a float16 node (e.g. one deduplicated epsilon used on both sides).
    """
    inits = {init.name: init for init in model.graph.initializer}
    readers: dict[str, set[bool]] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in inits:
                readers.setdefault(name, set()).add(node.name in blocked)
    for name, sides in readers.items():
        if sides != {True, False}:
            continue
        copy = onnx.TensorProto()
        copy.CopyFrom(inits[name])
        copy.name = f"{name}__fp32"
        model.graph.initializer.append(copy)
        for node in model.graph.node:
            if node.name in blocked:
                node.input[:] = [copy.name if i == name else i for i in node.input]


def _float32_tail(model: onnx.ModelProto, tail: list[str]) -> None:
    """Run the data-movement nodes after tanh in float32: drop the Cast-to-fp16 before them and the
    Cast-to-fp32 the converter put before each graph output."""
    nodes = {n.name: n for n in model.graph.node}
    outputs = {o.name for o in model.graph.output}
    for name in tail:
        node = nodes[name]
        if node.op_type not in DATA_MOVEMENT_OPS:
            raise ExportError(f"Cannot keep {node.op_type} node {name!r} after tanh in float32.")
        producers = {out: n for n in model.graph.node for out in n.output}
        for i, src in enumerate(node.input):
            cast = producers.get(src)
            if cast is not None and cast.op_type == "Cast" and _cast_to(cast) == TensorProto.FLOAT16:
                node.input[i] = cast.input[0]
                _remove_if_unused(model, cast)
        for j, out in enumerate(node.output):
            readers = [n for n in model.graph.node if out in n.input]
            if len(readers) != 1 or readers[0].op_type != "Cast" or readers[0].output[0] not in outputs:
                continue
            if _cast_to(readers[0]) == TensorProto.FLOAT:
                node.output[j] = readers[0].output[0]
                model.graph.node.remove(readers[0])


def _remove_if_unused(model: onnx.ModelProto, node: onnx.NodeProto) -> None:
    used = {name for n in model.graph.node for name in n.input} | {o.name for o in model.graph.output}
    if not any(out in used for out in node.output):
        model.graph.node.remove(node)


def _cast_to(node: onnx.NodeProto) -> int:
    return next(a.i for a in node.attribute if a.name == "to")


def simulate_fp16_activations(model16: onnx.ModelProto) -> onnx.ModelProto:
    """A float32 graph that rounds to float16 every activation `model16` stores in float16.

    Weights keep their float16 values (exactly representable in float32). Each op computes in
    float32 and its float16 output is rounded by an explicit Cast pair, which ONNX Runtime keeps
    (it drops only the Casts it inserted itself). Data-movement ops need no rounding of their own.
    """
    model = refresh_value_info(onnx.ModelProto.FromString(model16.SerializeToString()))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output]}
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT16:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        nodes.append(node)
        rounds_itself = node.op_type == "Cast" and _cast_to(node) == TensorProto.FLOAT16
        if node.op_type in DATA_MOVEMENT_OPS or (node.op_type == "Cast" and not rounds_itself):
            continue
        for i, out in enumerate(node.output):
            if types.get(out) != TensorProto.FLOAT16:
                continue
            raw = f"{out}__unrounded"
            node.output[i] = raw
            nodes += [
                helper.make_node("Cast", [raw], [f"{out}__f16"], to=TensorProto.FLOAT16, name=f"{out}__to16"),
                helper.make_node("Cast", [f"{out}__f16"], [out], to=TensorProto.FLOAT, name=f"{out}__to32"),
            ]
    del graph.node[:]
    graph.node.extend(nodes)
    return refresh_value_info(model)


def fp16_runners(manifest: Manifest, model_path: Path) -> dict[str, ParityRunner]:
    """An fp16 ONNX artifact's parity runners: ONNX Runtime, and the stricter simulation of float16
    activations in float32 (`simulate_fp16_activations`)."""
    from export.parity import onnx_runners, onnxruntime_outputs

    runners = onnx_runners(manifest, model_path)
    simulated = simulate_fp16_activations(onnx.load(str(model_path)))
    runners["simulated_fp16_activations"] = onnxruntime_outputs(simulated.SerializeToString())
    return runners


FP16_DIR = "onnx-fp16"
STEPS = 2  # convert, verify


def export_fp16(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    force: bool = False,
    steps: Steps | None = None,
    seed: int | None = None,
) -> Path:
    """Write `out_dir/onnx-fp16/` from the verified `out_dir/onnx-fp32/` artifact of the same checkpoint.

    The fp16 model is checked against the float32 PyTorch model on ONNX Runtime CPU and with the
    float16-activation simulation (PSNR >= 40 dB each) before it is moved into place.
    """
    from dataclasses import replace

    from export.onnx import GENERATOR_DIR, MODEL_FILE, derived_source, reference_module
    from export.parity import module_runner, write_verified
    from export.progress import steps_or_new
    from runtime.fsutil import atomic_dir, ensure_writable_dir, refuse_overwrite, sha256_file
    from training import checkpoint as ckpt_io

    source = ckpt_io.load(checkpoint, components=["generator"])
    fp32_manifest, fp32_model = derived_source(source, out_dir, GENERATOR_DIR)
    folder = Path(out_dir) / FP16_DIR
    refuse_overwrite(folder, force, "artifact folder")
    ensure_writable_dir(out_dir)
    timings: dict[str, float] = {}
    with steps_or_new(steps, STEPS, FP16_DIR) as bar, atomic_dir(folder) as tmp:
        with bar.step("convert", timings, FP16_DIR):
            model16, report = convert_to_fp16(
                onnx.load(str(fp32_model)), expected_instance_norms=source.config.motion_blocks
            )
            onnx.save(model16, str(tmp / MODEL_FILE))
        manifest = replace(
            fp32_manifest,
            precision="fp16",
            model_sha256=sha256_file(tmp / MODEL_FILE),
            parity=None,
            extra={"source_onnx": f"../{GENERATOR_DIR}", "fp16": report.to_dict()},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        module = reference_module(source, "generator")
        write_verified(
            tmp, manifest, module_runner(module), bar, timings, FP16_DIR, runners_for=fp16_runners, seed=seed
        )
    log.debug("wrote %s", folder)
    return folder
