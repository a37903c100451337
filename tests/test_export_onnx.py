"""ONNX export of the generator and flow encoder: files, manifest, dynamic batch, parity with PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.graph import dynamic_dims, node_count
from export.onnx import export_flow_encoder, export_generator, to_onnx
from runtime.errors import CheckpointError, OutputPathError
from runtime.manifest import resolve_artifact, verify_integrity
from training import checkpoint
from training.model import build_models, preset
from training.model.deployed import GeneratorGraph


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("export")
    g, o, d = build_models(preset("tiny"), seed=5)
    ckpt = checkpoint.save(root / "ckpt", preset("tiny"), generator=g, flow_encoder=o, discriminator=d)
    out = root / "exports"
    export_generator(ckpt, out, seed=0)
    export_flow_encoder(ckpt, out, seed=0)
    return ckpt, out


def test_generator_artifact_matches_pytorch_at_several_batches(tiny_export):
    ckpt, out = tiny_export
    manifest, model = resolve_artifact(out / "onnx-fp32")
    verify_integrity(manifest, model)
    assert manifest.kind == "generator" and manifest.opset == 18
    assert manifest.companions == {"flow_encoder": "../ofe-fp32"}
    assert not list(model.parent.glob("*.data"))  # one self-contained file
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    generator = checkpoint.load(ckpt).generator()
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        image = rng.uniform(-1, 1, (batch, 3, 32, 32)).astype(np.float32)
        motion = rng.standard_normal((batch, 32)).astype(np.float32)
        video, flows = session.run(None, {"image": image, "motion": motion})
        with torch.no_grad():
            expected = generator(torch.from_numpy(image), torch.from_numpy(motion))
        assert video.shape == (batch, 3, 8, 32, 32) and flows.shape == (batch, 2, 8, 16, 16)
        assert np.abs(video - expected.video.numpy()).max() < 1e-4
        assert np.abs(flows - expected.flows.numpy()).max() < 3e-4  # pixels (export.parity.FLOW_BOUNDS)


def test_generator_artifact_lists_its_flows(tiny_export):
    _, out = tiny_export
    manifest, _ = resolve_artifact(out / "onnx-fp32")
    assert [spec.name for spec in manifest.outputs] == ["video", "flows"] and manifest.has_flows
    flows = manifest.output("flows")
    assert flows.shape == ["batch", 2, 8, 16, 16] and flows.dtype == "float32" and flows.value_range is None
    assert "t-1 -> t" in flows.description and "half" in flows.description
    assert manifest.parity["outputs"]["flows"]["bound"] == {"max_abs": 3e-4} and manifest.parity["passed"]


def test_export_is_simplified_and_records_its_parity(tiny_export):
    _, out = tiny_export
    manifest, model = resolve_artifact(out / "onnx-fp32")
    simplify = manifest.extra["simplify"]
    graph = onnx.load(str(model))
    assert simplify["nodes_after"] == node_count(graph) < simplify["nodes_before"]
    assert "BatchNormalization" not in {n.op_type for n in graph.graph.node}  # folded into the convs
    assert dynamic_dims(graph)["video"] == ["batch", 3, 8, 32, 32]
    assert dynamic_dims(graph)["flows"] == ["batch", 2, 8, 16, 16]
    parity = manifest.parity
    assert parity["passed"] and parity["batches"] == [1, 4] and parity["seed"] == 0
    assert parity["max_abs"] < 1e-4 and parity["bound"] == {"max_abs": 1e-4}
    assert set(manifest.extra["export_seconds"]) == {"export", "simplify", "verify"}


def test_flow_encoder_artifact_outputs_the_normalized_vector(tiny_export):
    ckpt, out = tiny_export
    manifest, model = resolve_artifact(out / "ofe-fp32")
    assert manifest.kind == "flow_encoder" and manifest.output("motion").shape == ["batch", 32]
    assert manifest.parity["passed"]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    flows = np.random.default_rng(1).standard_normal((3, 2, 8, 32, 32)).astype(np.float32)
    (motion,) = session.run(None, {"flows": flows})
    with torch.no_grad():
        expected = checkpoint.load(ckpt).flow_encoder().encode(torch.from_numpy(flows)).numpy()
    assert np.abs(motion - expected).max() < 1e-4


def test_legacy_exporter_is_a_working_fallback(tiny_export, tmp_path: Path):
    ckpt, _ = tiny_export
    folder = export_generator(ckpt, tmp_path, exporter="legacy", seed=1)
    manifest, _ = resolve_artifact(folder)
    assert manifest.extra["exporter"] == "legacy" and manifest.parity["max_abs"] < 1e-4
    # the TorchScript exporter's raw graph is several times larger; onnxslim brings it down
    assert manifest.extra["simplify"]["nodes_before"] > 3 * manifest.extra["simplify"]["nodes_after"]


def test_export_leaves_the_module_in_eval_mode(tiny_export, tmp_path: Path):
    ckpt, _ = tiny_export
    graph = GeneratorGraph(checkpoint.load(ckpt).generator())
    example = (torch.zeros(2, 3, 32, 32), torch.zeros(2, 32))
    to_onnx(graph, example, ["image", "motion"], ["video"], tmp_path / "m.onnx", exporter="legacy")
    assert not any(m.training for m in graph.modules())


def test_existing_artifact_needs_force(tiny_export):
    ckpt, out = tiny_export
    with pytest.raises(OutputPathError, match="already exists; pass --force"):
        export_generator(ckpt, out)


def test_missing_checkpoint(tmp_path: Path):
    with pytest.raises(CheckpointError, match="does not exist"):
        export_generator(tmp_path / "none", tmp_path / "out")
