"""The GPU check's logic that needs no GPU: arguments, exit 3 without CUDA, the report files, the peak
arithmetic, time boxes and the partial-results path (a failing, slow or interrupted section leaves the
earlier ones on disk), and the sections' plumbing on the CPU with the tiny model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.gpu_check import cli, generator_lines, peak, runtime_check, system, training_check
from benchmarks.gpu_check.report import Report, markdown, results_name
from benchmarks.gpu_check.sections import (
    FAILED,
    INTERRUPTED,
    OK,
    TIMED_OUT,
    Section,
    run_section,
    sigterm_as_interrupt,
)
from benchmarks.report import PAPER_CLAIM

ROOT = Path(__file__).resolve().parents[1]


def _step(key: str, run, limit: float = 30.0) -> cli.Step:
    return cli.Step(key, f"{key} title", limit, limit, run)


def _read(report: Report) -> dict:
    return json.loads(report.paths[0].read_text())


# ------------------------------------------------------------------ arguments and exit status


def test_arguments(tmp_path: Path):
    args = cli.parse_args(["--out", str(tmp_path), "--quick", "--sections", "environment,tests"])
    assert args.out == tmp_path and args.quick and args.sections == ("environment", "tests")
    assert cli.parse_args(["--out", "x"]).sections is None


@pytest.mark.parametrize(
    "argv", [[], ["--out", "x", "--sections", "environment,gpus"], ["--out", "x", "--bogus"]]
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if "--sections" in argv:
        assert "unknown section(s) gpus" in err and "environment" in err


def test_no_cuda_exits_3_with_one_sentence(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    assert cli.main(["--out", str(out)]) == cli.EXIT_NO_CUDA
    err = capsys.readouterr().err.strip()
    assert err.startswith("No CUDA GPU is visible to PyTorch here") and err.count("\n") == 0
    assert not out.exists()  # nothing measured, nothing written


# ------------------------------------------------------------------ report files


def test_results_name():
    assert results_name("NVIDIA H100 80GB HBM3", False) == "nvidia-h100-80gb-hbm3"
    assert results_name("NVIDIA H100 80GB HBM3", True) == "nvidia-h100-80gb-hbm3-quick"


def test_report_written_with_fake_sections(tmp_path: Path):
    report = Report(tmp_path, "fake-gpu", {"gpu": "Fake GPU", "command": "python -m benchmarks.gpu_check"})

    def fine(section: Section) -> None:
        section.result.update(
            {"peak_fp16_tflops": 123.4, "lines": [{"line": "fp32", "batch": 1, "frames_per_s": 456.7}]}
        )

    def broken(section: Section) -> None:
        section.result["before"] = 1
        raise RuntimeError("cuDNN said\nno")

    assert run_section(report, "one", "1. One", 10, fine) == OK
    assert run_section(report, "two", "2. Two", 10, broken) == FAILED
    data = _read(report)
    assert data["gpu"] == "Fake GPU" and data["finished"] is False
    one, two = data["sections"]["one"], data["sections"]["two"]
    assert one["status"] == OK and one["result"]["lines"][0]["frames_per_s"] == 456.7
    assert two["status"] == FAILED and two["error"] == "RuntimeError: cuDNN said no"
    assert two["result"] == {"before": 1} and "RuntimeError" in two["traceback"]
    md = report.paths[1].read_text()
    assert "# dtvnet GPU check: Fake GPU" in md and "## 1. One" in md and "## 2. Two" in md
    assert "| line | batch | frames_per_s |" in md and "| fp32 | 1 | 456.7 |" in md
    assert "error: `RuntimeError: cuDNN said no`" in md and "- peak_fp16_tflops: 123.4" in md
    assert md == markdown(data)


def test_markdown_cells():
    data = {
        "gpu": "G",
        "sections": {
            "s": {
                "title": "S",
                "status": OK,
                "limit_s": 5,
                "seconds": 1.0,
                "result": {"x": None, "y": True, "z": float("inf"), "w": {"a": 1}, "t": [{"k": "a|b"}]},
            }
        },
    }
    md = markdown(data)
    assert "- x: -" in md and "- y: yes" in md and "- z: inf" in md and "- w: a 1" in md
    assert "| a\\|b |" in md  # a pipe in a cell does not split the table


# ------------------------------------------------------------------ peak arithmetic


def test_peak_arithmetic():
    assert peak.matmul_flop(8192) == 2 * 8192**3
    assert peak.tflops(2e12, 0.5) == pytest.approx(4.0)
    # 10 clips/s of 38.5 GFLOP = 0.385 TFLOP/s, half of a 0.77 TFLOP/s peak
    assert peak.pct_of_peak(10, 38.5, 0.77) == pytest.approx(50.0)
    assert peak.pct_of_peak(10, 38.5, None) is None
    r = peak.rates(batch=8, p50_s=0.1, frames=32, gflop_per_clip=38.5, peak_tflops=100.0)
    assert r["clips_per_s"] == pytest.approx(80) and r["frames_per_s"] == pytest.approx(2560)
    assert r["tflops"] == pytest.approx(80 * 38.5 / 1e3)
    assert r["pct_fp16_peak"] == pytest.approx(100 * 80 * 38.5 / 1e3 / 100.0)
    assert r["x_paper_31_frames_per_s"] == pytest.approx(2560 / PAPER_CLAIM)
    assert r["x_paper_31_clips_per_s"] == pytest.approx(80 / PAPER_CLAIM)


def test_latency_summary():
    s = peak.latency_summary([i / 1e3 for i in range(1, 101)])
    assert s["p50_ms"] == pytest.approx(50.5) and s["p99_ms"] == pytest.approx(99.01)
    assert s["mean_ms"] == pytest.approx(50.5)


# ------------------------------------------------------------------ time boxes and partial results


def test_a_failing_section_does_not_stop_the_run(tmp_path: Path):
    report = Report(tmp_path, "g", {"gpu": "G"})

    def boom(section: Section) -> None:
        raise ValueError("bad")

    steps = [
        _step("a", lambda s, q: s.result.update(v=1)),
        _step("b", lambda s, q: boom(s)),
        _step("c", lambda s, q: None),
    ]
    assert cli.run_steps(report, steps, quick=False) == [OK, FAILED, OK]
    data = _read(report)
    assert data["finished"] is True and list(data["sections"]) == ["a", "b", "c"]
    assert data["sections"]["b"]["error"] == "ValueError: bad"


def test_time_box_keeps_what_the_section_measured(tmp_path: Path):
    report = Report(tmp_path, "g", {"gpu": "G"})

    def slow(section: Section, quick: bool) -> None:
        section.result["first"] = 1
        section.flush()
        time.sleep(5)
        section.result["never"] = 1

    start = time.perf_counter()
    statuses = cli.run_steps(
        report, [_step("slow", slow, limit=0.3), _step("next", lambda s, q: None)], False
    )
    assert time.perf_counter() - start < 3
    assert statuses == [TIMED_OUT, OK]
    entry = _read(report)["sections"]["slow"]
    assert entry["result"] == {"first": 1} and "time box of 0 s spent" in entry["error"]


def test_a_time_box_is_not_swallowed_by_except_exception(tmp_path: Path):
    report = Report(tmp_path, "g", {"gpu": "G"})

    def careless(section: Section) -> None:
        try:
            time.sleep(5)
        except Exception:  # as library code may do around a compile
            section.result["swallowed"] = True

    assert run_section(report, "s", "S", 0.2, careless) == TIMED_OUT
    assert "swallowed" not in _read(report)["sections"]["s"]["result"]


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_the_earlier_sections(tmp_path: Path, how: str):
    report = Report(tmp_path, "g", {"gpu": "G"})

    def interrupted(section: Section, quick: bool) -> None:
        section.result["partial"] = 2
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        raise KeyboardInterrupt

    steps = [
        _step("a", lambda s, q: s.result.update(v=1)),
        _step("b", interrupted),
        _step("c", lambda s, q: None),
    ]
    with pytest.raises(KeyboardInterrupt):
        cli.run_steps(report, steps, quick=False)
    data = _read(report)
    assert data["finished"] is False and data["stopped"] == "interrupted"
    assert data["sections"]["a"] == {**data["sections"]["a"], "status": OK, "result": {"v": 1}}
    assert data["sections"]["b"]["status"] == INTERRUPTED and data["sections"]["b"]["result"] == {
        "partial": 2
    }
    assert "c" not in data["sections"]
    assert "not finished (interrupted)" in report.paths[1].read_text()
    assert signal.getsignal(signal.SIGTERM) is not None  # restored
    with sigterm_as_interrupt():
        pass


def test_main_with_fake_gpu(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "cuda_problem", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA Fake 80GB")
    calls = []

    def check(section: Section, quick: bool) -> None:
        calls.append(quick)
        section.result["check"] = {"passed": False}

    fake = (_step("environment", lambda s, q: calls.append(q)), _step("tests", check))
    monkeypatch.setattr(cli, "STEPS", fake)
    assert cli.main(["--out", str(tmp_path), "--quick"]) == cli.EXIT_FAILED  # a check did not pass
    assert calls == [True, True]
    data = json.loads((tmp_path / "nvidia-fake-80gb-quick.json").read_text())
    assert data["finished"] and data["quick"] and "--quick" in data["command"]
    assert "checks that did not pass: tests" in capsys.readouterr().err
    assert cli.main(["--out", str(tmp_path), "--sections", "environment"]) == 0
    assert json.loads((tmp_path / "nvidia-fake-80gb.json").read_text())["sections"].keys() == {"environment"}


def test_failed_checks():
    data = {
        "sections": {
            "a": {"result": {"x": [{"passed": True}, {"y": {"passed": False}}]}},
            "b": {"result": {}},
        }
    }
    assert cli.failed_checks(data) == ["a"]


def test_time_boxes_fit_the_issue():
    assert sum(s.limit_s for s in cli.STEPS) < 8 * 60
    assert sum(s.quick_limit_s for s in cli.STEPS) < 2 * 60


# ------------------------------------------------------------------ the sections' plumbing, on the CPU


@pytest.fixture(scope="module")
def tiny_generator():
    from training.model import build_models, preset
    from training.model.deployed import GeneratorGraph
    from training.realistic import calibrate

    cfg = preset("tiny")
    generator = build_models(cfg, seed=0)[0]
    calibrate(generator, cfg.image_size, cfg.motion_dim)  # frames over [-1, 1], so PSNR means something
    return GeneratorGraph(generator).eval(), cfg


@pytest.mark.slow
def test_generator_lines_on_cpu(tiny_generator):
    model, cfg = tiny_generator
    variants = (
        generator_lines.VARIANTS[0],
        generator_lines.Variant("half-bf16", "bf16", dtype="bf16"),
        generator_lines.Variant("graphs", "CUDA graph", graphs=True),  # no CUDA here: fails, then skipped
    )
    section = Section("generator", 60, {})
    protocol = generator_lines.Protocol(min_runs=2, min_seconds=0.0, warmup_runs=0)
    generator_lines.time_lines(
        section, model, cfg, 1.0, 10.0, variants, (1, 2), protocol, "cpu", psnr_batch=2
    )
    rows = {(r["line"], r["batch"]): r for r in section.result["lines"]}
    assert rows[("fp32", 2)]["status"] == "ok" and rows[("fp32", 2)]["runs"] == 2
    assert rows[("fp32", 2)]["frames_per_s"] == pytest.approx(
        2 / rows[("fp32", 2)]["p50_ms"] * 1e3 * cfg.frames
    )
    assert rows[("half-bf16", 1)]["status"] == "ok"
    assert rows[("graphs", 1)]["status"].startswith("failed: ")
    assert rows[("graphs", 2)]["status"] == "skipped: batch 1 failed"
    (bf16,) = [p for p in section.result["psnr_vs_fp32"] if p["line"] == "half-bf16"]
    assert bf16["finite"] and 15 < bf16["psnr_db"] < 90


def test_generator_lines_stop_when_the_time_box_is_spent(tiny_generator):
    model, cfg = tiny_generator
    section = Section("generator", 0.0, {})
    generator_lines.time_lines(
        section, model, cfg, 1.0, None, generator_lines.VARIANTS[:2], (1,), generator_lines.QUICK, "cpu"
    )
    assert [r["status"].split(":")[0] for r in section.result["lines"]] == ["skipped", "skipped"]


def test_plan_cells_runs_fp32_first_and_compile_last():
    cells = generator_lines.plan_cells(generator_lines.VARIANTS, (1, 8))
    assert cells[0] == (generator_lines.VARIANTS[0], 1)
    assert [v.key for v, _ in cells[-2:]] == ["compile-fp16", "compile-fp16"]
    assert [b for v, b in cells if v.key == "fp32"] == [1, 8]


def test_psnr_entry():
    ref = np.linspace(-1, 1, 100, dtype=np.float32)
    entry = generator_lines.psnr_entry("x", ref + 0.02, ref)
    assert entry["psnr_db"] == pytest.approx(20 * np.log10(2 / 0.02), abs=1e-3)
    assert generator_lines.psnr_entry("x", ref, None)["psnr_db"] is None


def test_frame_parity():
    assert runtime_check.frame_bound(1e-3) == 1
    a = [np.zeros((4, 4, 3), np.uint8)] * 2
    b = [np.ones((4, 4, 3), np.uint8)] * 2
    assert runtime_check.frame_parity(a, b, 1)["passed"]
    assert not runtime_check.frame_parity(a, [x * 2 for x in b], 1)["passed"]


def test_training_helpers():
    rows = [{"step": "1", "wall_s": "nan", "loss_g": "1.5"}, {"step": "2", "wall_s": "1", "loss_g": "inf"}]
    assert training_check.finite_losses(rows) == (False, ["loss_g"])
    assert training_check.finite_losses(rows[:1]) == (True, [])
    before = {"g": {"w": torch.zeros(3), "n": torch.tensor(1)}}
    after = {"g": {"w": torch.tensor([0.0, 0.5, -1.0]), "n": torch.tensor(2)}}
    assert training_check.moved(before, after) == {"g": 1.0}
    out = "noise\n" + training_check.NCCL_MARK + '{"all_reduce_ok": true}\n'
    assert training_check.nccl_result(out) == {"all_reduce_ok": True}
    assert training_check.nccl_result("nothing") is None


def test_tensorrt_section_without_tensorrt(monkeypatch):
    import importlib

    real = importlib.import_module

    def no_tensorrt(name, *args, **kwargs):
        if name == "tensorrt":
            raise ImportError("No module named 'tensorrt'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", no_tensorrt)
    section = Section("tensorrt", 10, {})
    system.tensorrt(section, quick=True)
    assert section.result == {"tensorrt": "TensorRT not installed"}


LENT_IMAGE = """# Import as the lent GPU image does: these packages are not installed there.
import importlib.abc, sys
MISSING = {"av", "openvino", "tritonclient", "tensorrt", "onnxslim", "onnxconverter_common", "importlinter"}
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in MISSING:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
"""


def test_gpu_tests_run_where_optional_packages_are_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Section 6 on the lent image: modules that import PyAV, tritonclient or OpenVINO at the top cannot
    be collected there; the gpu tests must still run (here, without a GPU, they skip cleanly)."""
    files = system.gpu_test_files()
    assert "tests/test_runtime_tensorrt_gpu.py" in files and "tests/test_gpu_check.py" not in files
    (tmp_path / "lent_image.py").write_text(LENT_IMAGE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p lent_image")
    section = Section("tests", 120, {})
    system.gpu_tests(section, quick=True)
    result = section.result
    assert result["exit_status"] == 0 and not result["errors"], result
    assert "skipped" in result["summary"] and "error" not in result["summary"], result["summary"]


def test_pytest_summary_line():
    out = "....\n=========== 3 passed, 120 deselected in 4.20s ===========\n"
    assert system.summary_line(out) == "3 passed, 120 deselected in 4.20s"
    assert system.summary_line("ERROR: usage\n") == "ERROR: usage"
    assert system.summary_line("") is None


@pytest.mark.slow
def test_train_and_resume_on_cpu(tmp_path: Path):
    data = training_check.make_data(tmp_path / "data", "tiny", 2)
    result = training_check.train_and_resume(data, tmp_path / "run", "tiny", 2, "cpu", amp="off")
    assert result["passed"], result
    assert result["checkpoint_written"] == "step_00000001" and result["resumed_to"] == "step_00000002"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.checkpoint import init_checkpoint
    from training.model import preset

    return init_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", preset("tiny"), seed=0)


@pytest.mark.slow
def test_parity_on_cpu(tiny_checkpoint: Path):
    """The parity plumbing, CPU against CPU: identical, so within every bound."""
    result = runtime_check.parity(tiny_checkpoint, device="cpu")
    assert result["video_parity"]["passed"] and result["video_parity"]["bound_max_abs"] == 1e-3
    assert result["frame_parity"] == {**result["frame_parity"], "max_level_diff": 0, "passed": True}
    assert "video_parity_tf32_off" not in result


@pytest.mark.slow
def test_end_to_end_on_cpu(tiny_checkpoint: Path):
    from training.model import preset

    result = runtime_check.end_to_end(tiny_checkpoint, clips=4, distinct=1, device="cpu")
    assert result["photos"] == 4 and result["frames"] == 4 * preset("tiny").frames
    assert result["frames_per_s"] > 0 and result["share_of_engine"] > 0


@pytest.mark.slow
def test_torchrun_worker_on_cpu(tmp_path: Path):
    """The worker torchrun starts (gloo on the CPU here, NCCL on a GPU) trains 2 steps inside its group."""
    data = training_check.make_data(tmp_path / "data", "tiny", 2)
    result = training_check.torchrun(data, tmp_path / "run", 240, preset_name="tiny", device="cpu")
    assert result["passed"], result
    assert result["nccl"] == {**result["nccl"], "backend": "gloo", "world_size": 1, "all_reduce_ok": True}


BLOCKED = ("av", "openvino", "tensorrt", "onnxslim", "onnxconverter_common", "tritonclient", "polygraphy")


def test_imports_nothing_the_lent_machines_lack(tmp_path: Path):
    """Every module the check loads, lazily or not, imports with PyAV, OpenVINO, TensorRT, onnxslim,
    onnxconverter-common and tritonclient missing (the lent GPU machines have none of them); then the
    command line, with no GPU visible, exits 3 with one sentence and no traceback."""
    modules = [
        *(f"benchmarks.gpu_check.{m}" for m in ("cli", "generator_lines", "runtime_check", "training_check")),
        *("benchmarks.gpu_check.system", "benchmarks.gpu_check.nccl_worker", "benchmarks.artifacts"),
        *("benchmarks.e2e", "export.onnx", "export.verify", "export.trt", "export.calibration"),
        *("training.train", "training.data.synth", "training.realistic", "runtime.generator"),
        "training.torch_backend",
    ]
    script = (
        "import importlib, importlib.abc, sys\n"
        f"BLOCKED = {BLOCKED!r}\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "import runpy\n"
        f"sys.argv = ['gpu_check', '--out', {str(tmp_path / 'out')!r}]\n"
        "runpy.run_module('benchmarks.gpu_check', run_name='__main__')\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == cli.EXIT_NO_CUDA, done.stderr[-3000:]
    assert done.stderr.startswith("No CUDA GPU") and done.stderr.strip().count("\n") == 0, done.stderr
    assert not (tmp_path / "out").exists()
