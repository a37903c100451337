"""`dtvnet export` and `python -m export.trt`: what a CPU machine gets, and one clear sentence per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export import pipeline, trt
from export.trt.__main__ import main as trt_main
from runtime.console import run_cli


def _run(main, argv: list[str], capsys) -> tuple[int, str, str]:
    code = run_cli(main, argv)
    out, err = capsys.readouterr()
    return code, out, err.strip()


def test_export_trt_writes_the_onnx_artifacts_then_names_what_is_missing(realistic_tiny, tmp_path, capsys):
    if trt.probe_tensorrt().missing is None:
        pytest.skip("TensorRT and a GPU are present: the engine is built instead")
    code, out, err = _run(trt_main, [str(realistic_tiny), "--out", str(tmp_path), "--seed", "0"], capsys)
    assert code == 2
    assert err.startswith("error: Cannot build the fp16 TensorRT engine: TensorRT is not installed")
    assert "pip install 'dtvnet[gpu]'" in err and f"{tmp_path / 'onnx-fp32'}" in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ofe-fp32", "onnx-fp16", "onnx-fp32"]
    assert out.count("wrote ") == 3 and "fp16 onnx" in out
    for folder in tmp_path.iterdir():
        assert json.loads((folder / "manifest.json").read_text())["parity"]["passed"]


def test_dtvnet_export_succeeds_without_an_engine(realistic_tiny, tmp_path, capsys):
    code, out, err = _run(
        pipeline.main, [str(realistic_tiny), "--out", str(tmp_path), "--fp32", "--seed", "0"], capsys
    )
    assert code == 0 and err == ""
    assert sorted(p.name for p in tmp_path.iterdir()) in (
        ["ofe-fp32", "onnx-fp32"],
        ["ofe-fp32", "onnx-fp32", "trt-fp32"],
    )
    if trt.probe_tensorrt().missing:
        assert "note: Cannot build the fp32 TensorRT engine" in out


def _unknown_format(tmp_path: Path) -> list[tuple[Path, str]]:
    (tmp_path / "empty").mkdir()
    (tmp_path / "weights.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text('{"format": "something-else"}')
    return [
        (tmp_path / "empty", "is not a dtvnet checkpoint (no config.json)"),
        (tmp_path / "weights.pth", "convert it with `dtvnet checkpoint convert"),
        (tmp_path / "foreign", "is not a dtvnet checkpoint config"),
        (tmp_path / "missing", "does not exist; check the path"),
    ]


def test_checkpoint_errors(tmp_path, capsys):
    for checkpoint, expected in _unknown_format(tmp_path):
        code, out, err = _run(pipeline.main, [str(checkpoint), "--out", str(tmp_path / "out")], capsys)
        assert code == 2 and expected in err and "\n" not in err and out == "", err


def test_output_folder_not_writable(realistic_tiny, tmp_path, capsys):
    (tmp_path / "file").write_text("a file where a folder should be")
    code, _, err = _run(pipeline.main, [str(realistic_tiny), "--out", str(tmp_path / "file" / "out")], capsys)
    assert code == 2 and "is not writable" in err and "choose another folder" in err


def test_existing_artifacts_need_force(realistic_tiny, tiny_exports, capsys):
    code, _, err = _run(pipeline.main, [str(realistic_tiny), "--out", str(tiny_exports)], capsys)
    assert code == 2 and err.endswith("already exists; pass --force to overwrite it.")


def test_bad_batch_profile(realistic_tiny, capsys):
    with pytest.raises(SystemExit) as exit_info:
        pipeline.main([str(realistic_tiny), "--batch", "8,4,1"])
    assert exit_info.value.code == 2 and "MIN <= OPT <= MAX" in capsys.readouterr().err
