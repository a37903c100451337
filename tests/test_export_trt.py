"""TensorRT export: every decision on CPU; building and running an engine where a GPU and TensorRT exist."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from export import trt
from export.trt import (
    BatchProfile,
    ParserErrorInfo,
    TensorRTStatus,
    describe_missing,
    engine_manifest,
    format_parser_errors,
    missing_backend_message,
    parse_batch_profile,
    plan_build,
    timing_cache_path,
)
from runtime.errors import BackendUnavailableError, EngineMismatchError, ExportError
from runtime.manifest import Manifest, resolve_artifact
from tests.conftest import require_tensorrt
from tests.trt_api import declared_api, patched_stubs, stub_dirs

GPU_STATUS = TensorRTStatus("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0", None)


def test_batch_profile_parsing():
    assert parse_batch_profile("1,4,8") == BatchProfile(1, 4, 8)
    assert parse_batch_profile(" 2, 2 ,2") == BatchProfile(2, 2, 2)
    for bad in ("1,4", "a,b,c", "0,1,2", "4,2,8", "1,2,999999", "-1,2,3"):
        with pytest.raises(ValueError, match="--batch"):
            parse_batch_profile(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="MIN <= OPT <= MAX"):
        trt.batch_argument("8,4,1")


def test_profile_shapes_follow_the_manifest(tiny_exports: Path):
    manifest, _ = resolve_artifact(tiny_exports / "onnx-fp16")
    low, opt, high = BatchProfile(1, 4, 8).shapes(manifest.input("image"))
    assert (low, opt, high) == ((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))


@pytest.mark.parametrize("version", ["10.13.0.35", "11.4.0.7"])
def test_fp16_is_strongly_typed_from_the_mixed_precision_onnx(version: str):
    plan = plan_build(version, "fp16")
    assert plan.source_dir == "onnx-fp16" and plan.strongly_typed and plan.set_flags == ()


def test_weak_typing_uses_the_fp16_flag_on_tensorrt_10_only():
    plan = plan_build("10.8.0.43", "fp16", weak_typing=True)
    assert plan.source_dir == "onnx-fp32" and not plan.strongly_typed and plan.set_flags == ("FP16",)
    with pytest.raises(ExportError, match="only strongly typed networks"):
        plan_build("11.0.0.1", "fp16", weak_typing=True)
    with pytest.raises(ExportError, match="only applies to fp16"):
        plan_build("10.8.0.43", "fp32", weak_typing=True)


def test_fp32_engines_turn_tf32_off_and_old_tensorrt_is_refused():
    plan = plan_build("11.4.0.7", "fp32")
    assert plan.source_dir == "onnx-fp32" and plan.clear_flags == ("TF32",)
    with pytest.raises(BackendUnavailableError, match=r"TensorRT 8\.6\.1 is too old.*dtvnet\[gpu\]"):
        plan_build("8.6.1", "fp16")
    with pytest.raises(ExportError, match="precision"):
        plan_build("10.0.1", "int8")


def test_every_builder_flag_we_set_exists(tmp_path: Path):
    if not stub_dirs():
        pytest.skip("tensorrt-stubs is not installed")
    flags = declared_api(patched_stubs(tmp_path)).members("BuilderFlag")
    plans = [plan_build("10.13.0", "fp16", weak_typing=True), plan_build("10.13.0", "fp32")]
    assert {f for p in plans for f in (*p.set_flags, *p.clear_flags)} <= flags


def test_timing_cache_is_per_version_and_architecture(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert timing_cache_path("10.13.0.35", "8.9") == tmp_path / "dtvnet/tensorrt/trt10.13.0.35-sm89.cache"
    assert timing_cache_path("11.0", "12.0", tmp_path / "c") == tmp_path / "c/trt11.0-sm120.cache"


def test_missing_backend_is_one_sentence_with_the_fix():
    missing = describe_missing(None, True, False, "2.13.0+cpu")
    assert missing == (
        "TensorRT is not installed (only its type stubs, tensorrt-stubs, are) and no NVIDIA GPU is visible "
        "to PyTorch (PyTorch 2.13.0+cpu is a CPU-only build)"
    )
    assert describe_missing("10.1.0", False, False, "2.13.0") == "no NVIDIA GPU is visible to PyTorch"
    assert describe_missing("8.6.1", False, True, "2.13.0").startswith("TensorRT 8.6.1 is installed but")
    assert describe_missing("10.1.0", False, True, "2.13.0") is None
    message = missing_backend_message(missing, "build the fp16 TensorRT engine", Path("out/onnx-fp32"))
    assert message.count(". ") == 0 and message.endswith(".")
    assert "pip install 'dtvnet[gpu]'" in message and "'out/onnx-fp32'" in message


def test_this_machine_reports_what_is_missing():
    status = trt.probe_tensorrt()
    if status.missing is None:
        pytest.skip("TensorRT and a GPU are present")
    with pytest.raises(BackendUnavailableError, match="Cannot build"):
        status.require("build", "out/onnx-fp32")


def _engine_manifest(tiny_exports: Path, timing_cache: Path | None = None) -> Manifest:
    onnx_manifest, _ = resolve_artifact(tiny_exports / "onnx-fp16")
    plan = plan_build(GPU_STATUS.version, "fp16")
    return engine_manifest(
        onnx_manifest,
        plan,
        BatchProfile(1, 4, 8),
        GPU_STATUS,
        model_sha256="ab" * 32,
        workspace_bytes=1 << 30,
        timing_cache=timing_cache,
    )


def test_engine_manifest_records_tensorrt_gpu_and_profile(tiny_exports: Path, tmp_path: Path):
    manifest = _engine_manifest(tiny_exports, tmp_path / "t.cache")
    assert (manifest.engine, manifest.precision, manifest.model_file) == ("tensorrt", "fp16", "model.plan")
    assert manifest.batch == {"min": 1, "opt": 4, "max": 8} and manifest.parity is None
    info = manifest.tensorrt
    assert (info["version"], info["gpu"], info["compute_capability"]) == ("10.13.0.35", GPU_STATUS.gpu, "9.0")
    assert info["precision"] == "fp16" and info["strongly_typed"] and info["profile"] == manifest.batch
    assert info["timing_cache"] == str(tmp_path / "t.cache") and info["workspace_bytes"] == 1 << 30
    assert manifest.companions == {"flow_encoder": "../ofe-fp32", "onnx": "../onnx-fp16"}
    assert manifest.versions["tensorrt"] == "10.13.0.35"
    assert manifest.has_flows and manifest.output("flows").shape == ["batch", 2, 8, 16, 16]
    assert Manifest.from_dict(json.loads(manifest.to_json())) == manifest


def test_engines_from_another_setup_are_refused(tiny_exports: Path):
    manifest = _engine_manifest(tiny_exports)
    trt.check_engine(manifest, GPU_STATUS, "e/model.plan")
    other = TensorRTStatus("10.14.1.48", "NVIDIA L4", "8.9", None)
    with pytest.raises(EngineMismatchError, match=r"version 10\.13\.0\.35 \(this machine: 10\.14\.1\.48\)"):
        trt.check_engine(manifest, other, "e/model.plan")


def test_parser_errors_are_reported_in_full():
    errors = [
        ParserErrorInfo(
            "Unsupported operator", "UNSUPPORTED_NODE", 12, "node_mul", "Mul", "parser.cpp", 42, "f"
        ),
        ParserErrorInfo("Invalid graph"),
    ]
    message = format_parser_errors("x/model.onnx", "10.13.0", errors)
    assert message.startswith("TensorRT 10.13.0 could not parse 'x/model.onnx' (2 error(s)): [1] node 12")
    assert (
        "'node_mul' (Mul): Unsupported operator (code UNSUPPORTED_NODE, parser parser.cpp:42 in f)" in message
    )
    assert "[2] model: Invalid graph" in message and "\n" not in message


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_engine_builds_and_matches_pytorch(precision: str, realistic_tiny: Path, tmp_path: Path):
    require_tensorrt()
    from export.pipeline import export_all

    result = export_all(
        realistic_tiny,
        tmp_path,
        precision=precision,
        profile=BatchProfile(1, 2, 4),
        seed=0,
        timing_cache=tmp_path / "timing.cache",
    )
    assert result.engine_skipped is None and result.artifacts[-1].name == f"trt-{precision}"
    manifest, plan_file = resolve_artifact(result.artifacts[-1])
    assert manifest.parity["passed"] and manifest.parity["batches"] == [1, 4]
    flows = manifest.parity["outputs"]["flows"]  # checked like the video, against its own bound
    assert flows["bound"] == ({"max_abs": 1e-3} if precision == "fp32" else {"min_psnr": 40.0})
    assert manifest.tensorrt["gpu"] and manifest.tensorrt["compute_capability"]
    assert (tmp_path / "timing.cache").stat().st_size > 0
    assert plan_file.stat().st_size > 0
