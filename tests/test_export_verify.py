"""export.parity and export.verify: metrics, bounds, the report in the manifest, failures that stop export."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export import parity, verify
from export.onnx import export_generator
from export.parity import Bound, bound_for, compare, parity_batches
from export.verify import polygraphy_command, verify_artifact
from runtime.console import run_cli
from runtime.errors import CheckpointError, ExportError, ParityError
from runtime.fsutil import sha256_file
from runtime.manifest import read_manifest, resolve_artifact, write_manifest
from tests.realistic import realistic_checkpoint


def test_compare_metrics():
    expected = np.zeros((2, 3), np.float32)
    metrics = compare(expected + 0.02, expected, peak_to_peak=2.0)
    assert metrics["max_abs"] == pytest.approx(0.02) and metrics["mean_abs"] == pytest.approx(0.02)
    assert metrics["psnr_db"] == pytest.approx(10 * math.log10(4 / 0.02**2))
    assert compare(expected, expected, 2.0)["psnr_db"] is None  # identical: infinite PSNR
    assert compare(expected + np.nan, expected, 2.0)["max_abs"] == math.inf
    with pytest.raises(ParityError, match="shape"):
        compare(expected[:1], expected, 2.0)


def test_bounds_per_engine_and_precision():
    assert bound_for("onnx", "fp32") == Bound(max_abs=1e-4)
    assert bound_for("onnx", "fp16").min_psnr == 40
    assert bound_for("onnx", "int8") == Bound(min_psnr=35.0)  # judged on landscapes (export.int8)
    with pytest.raises(ExportError, match=r"No parity bound .* int8 tensorrt"):
        bound_for("tensorrt", "int8")
    psnr_bound = Bound(min_psnr=40)
    assert psnr_bound.failures({"max_abs": 1.0, "psnr_db": 41.0}) == []
    assert psnr_bound.failures({"max_abs": 0.0, "psnr_db": 39.0}) == ["PSNR 39.00 dB is below 40 dB"]
    assert Bound(max_abs=1e-4).failures({"max_abs": math.inf, "psnr_db": None})


@pytest.mark.parametrize(
    ("profile", "expected"),
    [(None, (1, 4)), ({"min": 1, "opt": 2, "max": 2}, (1, 2)), ({"min": 2, "opt": 8, "max": 16}, (2, 4))],
)
def test_parity_batches_stay_inside_the_profile(profile, expected):
    assert parity_batches(profile) == expected
    assert parity_batches({"min": 3, "opt": 3, "max": 3}) == (3,)


def test_on_demand_verification_records_the_report(tiny_exports: Path, tmp_path: Path, capsys):
    artifact = tmp_path / "onnx-fp32"
    shutil.copytree(tiny_exports / "onnx-fp32", artifact)
    before = read_manifest(artifact / "manifest.json").parity
    assert run_cli(verify.main, [str(artifact), "--seed", "7", "--record"]) == 0
    assert "parity ok" in capsys.readouterr().out
    after = json.loads((artifact / "manifest.json").read_text())["parity"]
    assert after["seed"] == 7 and after["seed"] != before["seed"] and after["passed"]


def test_a_damaged_artifact_fails_loudly(tiny_exports: Path, tmp_path: Path, capsys):
    artifact = tmp_path / "onnx-fp32"
    shutil.copytree(tiny_exports / "onnx-fp32", artifact)
    model = onnx.load(str(artifact / "model.onnx"))
    weight = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.01, weight.name))
    onnx.save(model, str(artifact / "model.onnx"))
    manifest, _ = resolve_artifact(artifact)
    manifest.model_sha256 = sha256_file(artifact / "model.onnx")
    write_manifest(artifact, manifest)
    assert run_cli(verify.main, [str(artifact)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: fp32 onnx artifact") and "max abs error" in err and "\n" not in err


def test_verification_needs_the_source_checkpoint(tiny_exports: Path, tmp_path: Path):
    other = realistic_checkpoint(tmp_path / "other", "tiny", seed=9)
    with pytest.raises(CheckpointError, match="not the one this artifact was exported from"):
        verify_artifact(tiny_exports / "onnx-fp32", other)


def test_a_failed_check_never_lands(realistic_tiny: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setitem(parity.BOUNDS, ("onnx", "fp32"), Bound(max_abs=0.0))
    with pytest.raises(ParityError, match="nothing was written"):
        export_generator(realistic_tiny, tmp_path, seed=0)
    assert list(tmp_path.iterdir()) == []  # neither the artifact nor its temporary folder


def test_flows_are_checked_like_the_video(tiny_exports: Path):
    artifact = tiny_exports / "onnx-fp32"
    report = read_manifest(artifact / "manifest.json").parity
    flows = report["outputs"]["flows"]
    assert flows["bound"] == {"max_abs": 3e-4} and flows["max_abs"] < 3e-4 and len(flows["cases"]) == 2
    assert all(case["batch_consistency_max_abs"] < 1e-5 for case in flows["cases"][1:])
    assert bound_for("onnx", "int8", "flows") != bound_for("onnx", "int8")  # flows have their own bounds
    assert all(key in parity.FLOW_BOUNDS for key in parity.BOUNDS)  # every engine/precision bounds both
    run = parity.onnxruntime_outputs(artifact / "model.onnx")

    def moved_flows(inputs):
        video, flows = run(inputs)
        return [video, flows + 0.01]  # a video within its bound, flows a hundredth of a pixel off

    with pytest.raises(ParityError, match=r"flows: max abs error 0.01 exceeds 0.0003 at batch 1"):
        verify_artifact(artifact, runners={"moved": moved_flows}, seed=1)
    with pytest.raises(
        ParityError, match=r"video only gave 1 output\(s\) but the manifest declares video, flows"
    ):
        verify_artifact(artifact, runners={"video only": lambda inputs: run(inputs)[0]}, seed=1)
    lines = parity.summary(verify_artifact(artifact, seed=1)).splitlines()
    assert len(lines) == 2 and lines[1].startswith("onnxruntime") and " flows: max abs " in lines[1]


def test_polygraphy_command_and_missing_tool(tiny_exports: Path, monkeypatch):
    manifest, model = resolve_artifact(tiny_exports / "onnx-fp16")
    command = polygraphy_command(manifest, model, {"min": 1, "opt": 2, "max": 4})
    text = " ".join(command)
    assert text.startswith(f"polygraphy run {model} --trt --onnxrt")
    assert "--trt-outputs mark all --onnx-outputs mark all" in text and "--strongly-typed" in text
    assert "image:[4,3,32,32] motion:[4,32]" in text and "--input-shapes image:[2,3,32,32]" in text
    monkeypatch.setattr(verify.shutil, "which", lambda name: None)
    with pytest.raises(verify.BackendUnavailableError, match=r"polygraphy is not installed.*polygraphy run"):
        verify.run_polygraphy(tiny_exports / "onnx-fp16")
