"""Triton model repository: config.pbtxt parsed with Triton's own model-config schema and checked against
the manifests; version folders that are artifacts; reuse or export of the artifacts; refusals."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export import triton, trt
from export.triton.__main__ import export_triton
from export.triton.__main__ import main as triton_main
from runtime import Generator
from runtime.errors import DTVNetError, ExportError, OutputPathError
from runtime.fsutil import sha256_file
from runtime.manifest import resolve_artifact, write_manifest
from training import checkpoint as ckpt_io
from training.model import preset


def parse(folder: Path) -> mc.ModelConfig:
    """config.pbtxt through Triton's schema: an unknown field, a wrong type or bad syntax raises."""
    return text_format.Parse((folder / triton.CONFIG_FILE).read_text(), mc.ModelConfig())


def check_against_manifest(
    config: mc.ModelConfig, artifact: Path, max_batch: int, preferred: list[int]
) -> None:
    manifest, _ = resolve_artifact(artifact)
    types = {"float32": mc.TYPE_FP32, "float16": mc.TYPE_FP16}
    assert config.platform == {"onnx": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}[manifest.engine]
    assert config.default_model_filename == manifest.model_file
    assert config.max_batch_size == max_batch
    for declared, specs in ((config.input, manifest.inputs), (config.output, manifest.outputs)):
        assert [t.name for t in declared] == [s.name for s in specs]
        for tensor, spec in zip(declared, specs, strict=True):
            assert spec.shape[0] == "batch" and list(tensor.dims) == spec.shape[1:]
            assert tensor.data_type == types[spec.dtype]
    assert list(config.dynamic_batching.preferred_batch_size) == preferred
    assert config.dynamic_batching.max_queue_delay_microseconds == triton.DEFAULT_QUEUE_DELAY_US
    served = json.loads(config.parameters[triton.MANIFEST_PARAMETER].string_value)
    assert served == json.loads((artifact / "manifest.json").read_text())


@pytest.fixture(scope="module")
def repo(tiny_exports: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton") / "models"
    batching = triton.Batching.from_profile(trt.parse_batch_profile("1,2,6").to_dict())
    triton.write_repository(tiny_exports, out, batching=batching)
    return out


def test_configs_parse_with_triton_schema_and_follow_the_manifests(repo: Path, tiny_exports: Path):
    assert sorted(p.name for p in repo.iterdir()) == ["dtvnet", "dtvnet_ofe"]
    generator = parse(repo / "dtvnet")
    assert generator.name == "dtvnet"
    assert [(t.name, list(t.dims)) for t in generator.output] == [
        ("video", [3, 8, 32, 32]),
        ("flows", [2, 8, 16, 16]),
    ]
    check_against_manifest(generator, tiny_exports / "onnx-fp16", 6, [2, 6])
    assert generator.parameters[triton.FLOW_ENCODER_PARAMETER].string_value == "dtvnet_ofe"
    assert [(g.count, g.kind) for g in generator.instance_group] == [(1, mc.ModelInstanceGroup.KIND_GPU)]
    check_against_manifest(parse(repo / "dtvnet_ofe"), tiny_exports / "ofe-fp32", 6, [2, 6])


def test_version_folder_is_the_artifact_and_runs_locally(repo: Path, tiny_exports: Path):
    served = repo / "dtvnet" / "1"
    assert sorted(p.name for p in served.iterdir()) == ["manifest.json", "model.onnx"]
    assert sha256_file(served / "model.onnx") == sha256_file(tiny_exports / "onnx-fp16" / "model.onnx")
    image = np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    with Generator(served) as local, Generator(tiny_exports / "onnx-fp16") as original:
        assert np.array_equal(
            np.stack(list(local.run(image, seed=2))), np.stack(list(original.run(image, seed=2)))
        )


def test_tensorrt_plan_model_batches_within_its_engine_profile(tiny_exports: Path, tmp_path: Path):
    """No TensorRT here: a stand-in engine artifact (plan bytes + the manifest export.trt writes)."""
    exports = tmp_path / "exports"
    shutil.copytree(tiny_exports, exports)
    onnx_manifest, _ = resolve_artifact(exports / "onnx-fp16")
    engine = exports / "trt-fp16"
    engine.mkdir()
    (engine / trt.ENGINE_FILE).write_bytes(b"not really an engine")
    status = trt.TensorRTStatus("10.13.0.35", "NVIDIA H100", "9.0", None)
    plan = trt.plan_build("10.13.0.35", "fp16")
    manifest = trt.engine_manifest(
        onnx_manifest,
        plan,
        trt.parse_batch_profile("1,3,5"),
        status,
        model_sha256=sha256_file(engine / trt.ENGINE_FILE),
        workspace_bytes=1 << 30,
        timing_cache=None,
    )
    write_manifest(engine, manifest)
    repo = tmp_path / "models"
    models = triton.write_repository(exports, repo, kind="cpu")
    assert [m.name for m in models] == ["dtvnet", "dtvnet_trt", "dtvnet_ofe"]
    config = parse(repo / "dtvnet_trt")
    check_against_manifest(config, engine, 5, [3, 5])
    assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]  # plans need a GPU
    assert [g.kind for g in parse(repo / "dtvnet").instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert (repo / "dtvnet_trt" / "1" / "model.plan").read_bytes() == b"not really an engine"

    write_manifest(engine, replace(manifest, batch={"min": 2, "opt": 3, "max": 5}))
    with pytest.raises(ExportError, match="rebuild it with --batch 1,OPT,MAX"):
        triton.write_repository(exports, tmp_path / "other", kind="cpu")
    assert triton.write_repository(exports, tmp_path / "onnx-only", engine=False)[1].name == "dtvnet_ofe"


def test_versions_are_kept_and_not_overwritten(tiny_exports: Path, tmp_path: Path):
    repo = tmp_path / "models"
    triton.write_repository(tiny_exports, repo, name="sky")
    with pytest.raises(OutputPathError, match="--force"):
        triton.write_repository(tiny_exports, repo, name="sky")
    triton.write_repository(tiny_exports, repo, name="sky", version=2, instances=3)
    assert sorted(p.name for p in (repo / "sky").iterdir()) == ["1", "2", "config.pbtxt"]
    assert parse(repo / "sky").instance_group[0].count == 3
    with pytest.raises(ExportError, match="choose another --name"):
        triton.write_repository(tiny_exports, repo, name="../escape")


def test_export_triton_reuses_fresh_artifacts_and_refuses_stale_ones(
    realistic_tiny: Path, tiny_exports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("the artifacts are fresh; nothing should be exported")

    monkeypatch.setattr("export.pipeline.export_all", no_export)
    result = export_triton(realistic_tiny, tmp_path / "models", exports=tiny_exports)
    assert [m.name for m in result.models] == ["dtvnet", "dtvnet_ofe"]
    assert result.engine_skipped is not None and "TensorRT" in result.engine_skipped  # no GPU here
    other = ckpt_io.init_checkpoint(tmp_path / "other", preset("tiny"), seed=5)
    with pytest.raises(ExportError, match=r"were not exported from .* pass --force"):
        export_triton(other, tmp_path / "models2", exports=tiny_exports)


@pytest.mark.slow
def test_cli_exports_missing_artifacts_then_writes_the_repository(
    realistic_tiny: Path, tiny_exports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    exports = tmp_path / "exports"
    shutil.copytree(tiny_exports, exports)
    shutil.rmtree(exports / "onnx-fp16")
    repo = tmp_path / "models"
    args = [str(realistic_tiny), "--repo", str(repo), "--exports", str(exports), "--batch", "1,4,4"]
    assert triton_main([*args, "--cpu", "--max-queue-delay-us", "500"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {repo / 'dtvnet'}" in printed and "note: Cannot build the TensorRT plan model" in printed
    assert f"-v {repo.resolve()}:/models nvcr.io/nvidia/tritonserver" in printed
    config = parse(repo / "dtvnet")
    assert config.max_batch_size == 4 and list(config.dynamic_batching.preferred_batch_size) == [4]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert (
        resolve_artifact(exports / "onnx-fp16")[0].source_sha256
        == ckpt_io.read_info(realistic_tiny)["weights_sha256"]
    )


def test_errors_are_one_sentence(tmp_path: Path):
    with pytest.raises(DTVNetError, match="does not exist"):
        triton.write_repository(tmp_path / "nothing", tmp_path / "models")
    assert "\n" not in triton.to_pbtxt({"s": 'a "quoted"\nline'}).split(": ", 1)[1]
    parsed = text_format.Parse(
        triton.to_pbtxt({"name": 'odd "name"\\\n'}), mc.ModelConfig()
    )  # escaping round-trips through Triton's parser
    assert parsed.name == 'odd "name"\\\n'
