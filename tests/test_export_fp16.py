"""Mixed-precision ONNX: what stays float32, explicit casts, parity, and what ORT CPU really computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.fp16 import convert_to_fp16, simulate_fp16_activations
from export.graph import instance_norm_statistics
from export.parity import onnxruntime_runner
from runtime.errors import ExportError
from runtime.manifest import resolve_artifact


def _types(model: onnx.ModelProto) -> dict[str, int]:
    graph = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({i.name: i.data_type for i in graph.initializer})
    return types


@pytest.fixture(scope="module")
def fp32_model(tiny_exports: Path) -> onnx.ModelProto:
    return onnx.load(str(tiny_exports / "onnx-fp32" / "model.onnx"))


def test_every_adain_statistic_is_found(fp32_model):
    chains = instance_norm_statistics(fp32_model)
    assert len(chains) == 2  # tiny preset: motion_blocks = 2
    for chain in chains:
        ops = sorted(n.op_type for n in chain)
        assert ops.count("ReduceMean") == 2 and {"Sub", "Pow", "Sqrt"} <= set(ops)


def test_precision_islands_and_explicit_casts(fp32_model):
    model16, report = convert_to_fp16(fp32_model, expected_instance_norms=2)
    onnx.checker.check_model(model16, full_check=True)  # every op's inputs agree in type
    types = _types(model16)
    nodes = {n.name: n for n in model16.graph.node}
    for name in report.fp32_nodes:  # statistics, tanh, and the reshape to video: float32
        assert all(types[o] == TensorProto.FLOAT for o in nodes[name].output), name
    convs = [n for n in model16.graph.node if n.op_type in ("Conv", "ConvTranspose", "Gemm")]
    assert convs and all(types[n.input[1]] == TensorProto.FLOAT16 for n in convs)  # fp16 weights
    assert all(types[n.output[0]] == TensorProto.FLOAT16 for n in convs)
    io = [*model16.graph.input, *model16.graph.output]
    assert {v.type.tensor_type.elem_type for v in io} == {TensorProto.FLOAT}
    video = next(n for n in model16.graph.node if "video" in n.output)
    assert video.op_type == "Reshape"  # no float16 round trip between tanh and the output
    flows = next(n for n in model16.graph.node if "flows" in n.output)
    assert (
        flows.op_type == "Cast"
    )  # the flow head is a float16 convolution like the others; flows leave as float32
    assert report.instance_norms == 2 and report.casts > 0


def test_unexpected_graph_shape_is_an_error(fp32_model):
    with pytest.raises(ExportError, match="expected 6"):
        convert_to_fp16(fp32_model, expected_instance_norms=6)


def test_fp16_artifact_passes_both_checks(tiny_exports: Path):
    manifest, _ = resolve_artifact(tiny_exports / "onnx-fp16")
    assert manifest.precision == "fp16" and manifest.inputs[0].dtype == "float32"
    parity = manifest.parity
    assert parity["passed"] and parity["psnr_db"] >= 40 and parity["cases"][0]["reference_rms"] > 0.3
    simulated = parity["extra_checks"]["simulated_fp16_activations"]
    assert simulated["passed"] and simulated["psnr_db"] >= 40
    assert manifest.extra["source_onnx"] == "../onnx-fp32"


def _two_multiplies() -> onnx.ModelProto:
    """x (fp32) -> Cast fp16 -> * a -> * b -> Cast fp32: one float16 intermediate to round."""
    a = numpy_helper.from_array(np.array([1.0009765625], np.float16), "a")  # 1 + 2^-10
    b = numpy_helper.from_array(np.array([1.0009765625], np.float16), "b")
    nodes = [
        helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
        helper.make_node("Mul", ["x16", "a"], ["y"]),
        helper.make_node("Mul", ["y", "b"], ["z"]),
        helper.make_node("Cast", ["z"], ["out"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None])],
        initializer=[a, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_what_onnxruntime_cpu_computes_in_float16():
    """ORT CPU runs a float16 Mul in float32 and removes the Casts around it, even the model's own
    Cast of its input: nothing is rounded to float16 but the weights. The simulation rounds each step."""
    model = _two_multiplies()
    x = np.linspace(1.0, 2.0, 4097, dtype=np.float32)
    x16 = x.astype(np.float16)
    true_fp16 = ((x16 * np.float16(1.0009765625)) * np.float16(1.0009765625)).astype(np.float32)
    fp32_math = x * np.float32(1.0009765625) * np.float32(1.0009765625)
    ort_out = onnxruntime_runner(model.SerializeToString())({"x": x})
    simulated = onnxruntime_runner(simulate_fp16_activations(model).SerializeToString())({"x": x})
    assert not np.allclose(true_fp16, fp32_math, rtol=1e-4, atol=0)  # the inputs expose the difference
    assert np.array_equal(simulated, true_fp16)
    assert np.array_equal(ort_out, fp32_math)  # if ORT gains float16 Mul kernels, update fp16.ORT_CPU_NOTE


@pytest.mark.slow
def test_paper_configuration_fp16_psnr(tmp_path: Path):
    """The 40 dB bound on the paper-size generator (6 AdaINs, 32 frames at 128x128)."""
    from export.fp16 import export_fp16
    from export.onnx import export_generator
    from tests.realistic import realistic_checkpoint

    ckpt = realistic_checkpoint(tmp_path / "paper", "paper", seed=2)
    export_generator(ckpt, tmp_path / "out", seed=3)
    manifest, _ = resolve_artifact(export_fp16(ckpt, tmp_path / "out", seed=3))
    assert manifest.extra["fp16"]["instance_norms_in_fp32"] == 6
    assert manifest.parity["psnr_db"] >= 40
    assert manifest.parity["extra_checks"]["simulated_fp16_activations"]["psnr_db"] >= 40
