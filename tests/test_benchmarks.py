"""The benchmark: `--quick` end to end (what CI runs), and the arithmetic behind every ratio it reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import fps, lines, report
from benchmarks.machine import bf16_matmul_peak, int8_conv_peak, machine_name, matmul_peaks
from benchmarks.timing import Protocol, measure_interleaved, run_block


def timing(p50_ms: float) -> dict:
    return {
        "runs": 3,
        "latency_ms": {"p50": p50_ms, "p90": p50_ms, "p99": p50_ms, "mean": p50_ms, "min": p50_ms},
    }


def test_rates_and_ratios_come_from_the_median_latency():
    timings = {("reference", 1): timing(100.0), ("ov-int8", 1): timing(25.0), ("ov-int8", 4): timing(80.0)}
    devices = {"reference": "torch", "ov-int8": "openvino"}
    entries = {
        (e["key"], e["batch"]): e for e in fps.line_entries(timings, devices, 38.5, 32, {"fp32": 500.0})
    }
    ref, fast, batched = entries["reference", 1], entries["ov-int8", 1], entries["ov-int8", 4]
    assert ref["clips_per_s"] == pytest.approx(10.0) and ref["frames_per_s"] == pytest.approx(320.0)
    assert ref["vs_reference"] == pytest.approx(1.0) and fast["vs_reference"] == pytest.approx(4.0)
    assert batched["clips_per_s"] == pytest.approx(50.0) and batched["vs_reference"] is None  # no ref at 4
    assert fast["gflops"] == pytest.approx(40 * 38.5) and fast["pct_fp32_peak"] == pytest.approx(308.0)
    assert fast["vs_paper_frames"] == pytest.approx(1280 / 31) and fast["vs_paper_clips"] == pytest.approx(
        40 / 31
    )
    summary = fps.summarize(list(entries.values()), {"lines": {"ov-int8": {"psnr_db_min": 36.5}}})
    assert summary["best_key"] == "ov-int8" and summary["best_batch"] == 4
    assert summary["best_vs_reference_best"] == pytest.approx(5.0) and summary["best_psnr_db_min"] == 36.5
    passive = fps.line_entries(
        {("reference-passive", 4): timing(200.0)}, {"reference-passive": "torch"}, 38.5, 32, {}
    )
    conservative = fps.summarize([*entries.values(), *passive], None)
    assert conservative["best_key"] == "ov-int8"  # a reference layout is never the best path
    assert conservative["best_vs_fastest_reference"] == pytest.approx(2.5)  # 50 clips/s vs 20


def test_each_line_is_measured_against_the_ceiling_of_its_precisions():
    # 10 GFLOP a clip; int8 at 400, fp32 at 100: 80% int8 + 20% fp32 takes 20 + 20 ms at best
    peaks = {"fp32": 100.0, "int8": 400.0, "bf16": None}
    mixes = {"reference": {"fp32": 1.0}, "ov-int8": {"int8": 0.8, "fp32": 0.2}, "ov-bf16": {"bf16": 1.0}}
    timings = {("reference", 1): timing(200.0), ("ov-int8", 1): timing(100.0), ("ov-bf16", 1): timing(50.0)}
    devices = dict.fromkeys(mixes, "cpu")
    entries = {e["key"]: e for e in fps.line_entries(timings, devices, 10.0, 32, peaks, mixes)}
    assert fps.ceiling_clips(10.0, mixes["ov-int8"], peaks) == pytest.approx(25.0)
    assert entries["ov-int8"]["ceiling_frames_per_s"] == pytest.approx(800.0)
    assert entries["ov-int8"]["pct_ceiling"] == pytest.approx(40.0)  # 10 clips/s of 25
    assert entries["reference"]["pct_ceiling"] == pytest.approx(50.0)  # 5 clips/s of 10
    assert entries["ov-bf16"]["ceiling_frames_per_s"] is None  # no bf16 peak measured: no ceiling
    assert fps.ceiling_clips(10.0, None, peaks) is None
    assert fps.ceiling_clips(10.0, {"int8": 1.0, "fp32": 0.0}, {"int8": 400.0}) == pytest.approx(40.0)
    summary = fps.summarize(list(entries.values()), None)
    assert summary["best_key"] == "ov-bf16" and "best_ceiling_fps" not in summary
    del entries["ov-bf16"]
    summary = fps.summarize(list(entries.values()), None)
    assert summary["best_ceiling_vs_reference_best"] == pytest.approx(5.0)  # 800 frames/s vs 160
    assert summary["best_pct_ceiling"] == pytest.approx(40.0)
    machine = {"load_before": [], "load_after": [], "cores": 2, "threads": 2, "libraries": {}}
    results = {"machine": machine, "summary": summary, "lines": list(entries.values()), "model": {}}
    results |= {"peak_fp32_gflops": 100.0, "matmul_fp32_gflops": {}, "peaks_by_precision": peaks}
    assert not any("ceiling of the" in note for note in report.footnotes(results))  # no other peak: none
    results["int8_conv_gops"] = {"OpenVINO int8 Convolution (jit)": 400.0}
    notes = report.footnotes(results)
    assert any("int8 Convolution (jit) 400 GOP/s (int8 4.00x fp32, bf16 -)" in note for note in notes)
    assert any(
        "best CPU path: 800.0 frames/s = 5.00x the reference's best" in n and "at 40%" in n for n in notes
    )
    assert "| 40 |" in report.best_batch_table(results)


def test_an_int8_artifacts_flop_mix_comes_from_its_manifest(
    tiny_artifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import shutil
    from dataclasses import replace

    from runtime.backends import open_artifact
    from runtime.manifest import write_manifest

    checkpoint, generator, _ = tiny_artifacts
    manifest, _ = open_artifact(generator)
    shutil.copytree(generator, tmp_path / "onnx-int8")
    extra = {"int8": {"int8_flop_share": 0.75}, "openvino": {"inference_precision": "bf16"}}
    write_manifest(tmp_path / "onnx-int8", replace(manifest, precision="int8", extra=extra))
    context = lines.Context(checkpoint, tmp_path)
    for native, rest in ((True, "bf16"), (False, "fp32")):  # bf16 where the CPU computes it, else float32
        monkeypatch.setattr(lines, "_openvino_bf16", lambda native=native: native)
        assert lines.flop_mix(lines.line("ov-int8"), context) == {"int8": 0.75, rest: 0.25}
    assert lines.flop_mix(lines.line("ort-int8"), context) is None  # ORT convolves in float32
    assert lines.flop_mix(lines.line("ov-fp32"), context) == {"fp32": 1.0}
    assert lines.flop_mix(lines.line("trt-fp16"), context) is None


def test_round_by_round_ratios_pair_each_round_with_the_reference():
    ref = fps.line_entries({("reference", 1): timing(100.0)}, {"reference": "t"}, 38.5, 32, {})[0]
    fast = fps.line_entries({("ov-int8", 4): timing(200.0)}, {"ov-int8": "o"}, 38.5, 32, {})[0]
    ref["round_medians_ms"], fast["round_medians_ms"] = [100.0, 125.0, 100.0], [200.0, 200.0, 160.0]
    assert fps.ratio_by_round(fast, ref) == pytest.approx([2.0, 2.5, 2.5])
    summary = fps.summarize([ref, fast], None)
    assert summary["best_vs_reference_best"] == pytest.approx(2.0)  # medians of all runs: 100 and 200 ms
    assert summary["best_vs_reference_best_by_round"] == pytest.approx([2.0, 2.5, 2.5])
    machine = {"load_before": [], "load_after": [], "cores": 2, "threads": 2, "libraries": {}}
    results = {"machine": machine, "summary": summary, "lines": [ref, fast], "model": {}}
    results |= {"peak_fp32_gflops": 1.0, "matmul_fp32_gflops": {}}
    assert any(
        "2.00x the reference's best" in n and "(2.00-2.50x round by round)" in n
        for n in report.footnotes(results)
    )
    assert fps.ratio_by_round(fast, timing(1.0) | {"batch": 1}) == []  # no per-round medians, no ratios


def test_rounds_interleave_every_configuration():
    calls: list[str] = []

    def block(name: str):
        return lambda runs, seconds: run_block(lambda: calls.append(name), runs, seconds)

    protocol = Protocol(warmup_runs=1, rounds=2, min_runs=2, min_seconds=0.0)
    samples = measure_interleaved([block("a"), block("b")], protocol)
    assert calls == ["a", "b", "a", "a", "b", "b", "a", "a", "b", "b"]  # warm-up, then round by round
    assert [len(r) for r in samples[0].rounds] == [2, 2] and samples[1].summary()["runs"] == 4
    assert len(run_block(lambda: None, min_runs=5, min_seconds=0.0)) == 5


def test_no_benchmark_module_shadows_the_standard_library():
    # `python benchmarks/fps.py` puts benchmarks/ first on sys.path: a benchmarks/profile.py once took
    # the place of the standard library's profile module and broke torch's import of cProfile
    names = {path.stem for path in Path(fps.__file__).parent.glob("*.py")}
    assert not names & sys.stdlib_module_names


def test_a_run_that_leaves_part_out_never_takes_the_full_runs_results_name():
    def name(*argv: str) -> str:
        return fps.results_name("amd-epyc-avx2-2c", fps.parse_args(list(argv)))

    assert name() == "amd-epyc-avx2-2c"  # the full default run
    assert name("--quick") == "amd-epyc-avx2-2c-quick"
    assert name("--quick", "--preset", "tiny") == "amd-epyc-avx2-2c-quick-tiny"
    assert name("--checkpoint", "runs/exp1/checkpoints/step_1000") == "amd-epyc-avx2-2c-step_1000"
    assert name("--preset", "small", "--batch", "1") == "amd-epyc-avx2-2c-small-partial"
    assert name("--lines", "reference,ov-int8") == "amd-epyc-avx2-2c-partial"


def test_machine_name_and_peaks():
    assert machine_name("AMD EPYC 9R45 (x86)", 2, None) == "amd-epyc-9r45-x86-2c"
    assert machine_name("Xeon", 8, "NVIDIA H100 80GB HBM3") == "xeon-8c-nvidia-h100-80gb-hbm3"
    assert machine_name("AMD EPYC", 2, None, ["avx2", "fma"]) == "amd-epyc-avx2-2c"
    assert machine_name("AMD EPYC", 2, None, ["avx2", "avx512f", "avx512_bf16"]) == "amd-epyc-avx512-2c"
    peaks = matmul_peaks(threads=1, size=64, repeats=1)
    assert "numpy (OpenBLAS)" in peaks and all(v > 0 for v in peaks.values())
    (name, rate), *rest = int8_conv_peak(threads=1, repeats=1, shape=(1, 16, 8, 3)).items()
    assert not rest and name.startswith("OpenVINO int8 Convolution (") and rate > 0
    assert "I8" in name  # OpenVINO names a kernel by its precision: an int8 one ran, not a float fallback
    bf16 = bf16_matmul_peak(threads=1, size=64, repeats=1)
    assert bool(bf16) == lines._openvino_bf16() and all(v > 0 for v in bf16.values())


def test_gpu_lines_say_why_they_cannot_run(tmp_path: Path):
    from tests.conftest import cuda_available

    if cuda_available():
        pytest.skip("this machine has a GPU")
    context = lines.Context(tmp_path, tmp_path)
    for item in lines.LINES:
        if item.device != "cpu":
            assert lines.unavailable(item, context) == "no CUDA GPU"
    assert lines.unavailable(lines.line("ort-int8"), context) == "no onnx-int8 artifact was exported"


@pytest.mark.parametrize("native", [True, False])
def test_bf16_lines_need_bf16_arithmetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool):
    monkeypatch.setattr(lines, "_torch_bf16", lambda: native)
    monkeypatch.setattr(lines, "_openvino_bf16", lambda: native)
    (tmp_path / "onnx-fp32").mkdir()
    context = lines.Context(tmp_path, tmp_path)
    for key, says in (("torch-bf16", "PyTorch would emulate it"), ("ov-bf16", "OpenVINO would compute")):
        reason = lines.unavailable(lines.line(key), context)
        assert reason is None if native else reason.startswith(lines.NO_BF16) and says in reason
    assert lines.unavailable(lines.line("ov-fp32"), context) is None


@pytest.mark.slow
def test_quick_benchmark_writes_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # its exports
    assert fps.main(["--quick", "--out", str(tmp_path / "results"), "--machine", "ci"]) == 0
    results = json.loads((tmp_path / "results" / "ci.json").read_text())
    assert (tmp_path / "results" / "ci.md").read_text().startswith("# dtvnet fps")
    demo = fps.demo_checkpoint()  # the model of --quick: trained, so no separate natural-frames run
    assert results["model"]["checkpoint"] == str(demo) and "natural_checkpoint" not in results["model"]
    assert [q["checkpoint"] for q in results["quality"]] == [str(demo)]  # measured once, not twice
    entries = {e["key"]: e for e in results["lines"]}
    assert entries["reference"]["vs_reference"] == 1.0 and entries["reference"]["batch"] == 1
    for key in ("ort-fp32", "ort-int8", "ov-fp32", "ov-bf16", "ov-int8"):
        if key == "ov-bf16" and not lines._openvino_bf16():  # no bf16 arithmetic: left out, with why
            assert results["skipped"][key].startswith(lines.NO_BF16)
            continue
        entry = entries[key]
        assert entry["frames_per_s"] == pytest.approx(32 * entry["clips_per_s"]) and entry["runs"] >= 3
        assert entry["vs_reference"] > 0 and entry["psnr_db"] is not None
    for key in ("reference", "ort-fp32", "ov-int8"):  # the runtime runs these end to end
        e2e = entries[key]["e2e"]
        assert e2e["frames"] > 0 and e2e["vs_engine"] > 0 and e2e["vs_engine_alone"] > 0
        assert "e2e_natural" not in entries[key]
    hd = entries[results["summary"]["best_key"]]["e2e_hd"]  # the best path also end to end at 512 px
    assert hd["size"] == 512 and hd["frames"] > 0 and hd["vs_engine_alone"] > 0
    assert results["summary"]["best_e2e_hd_vs_engine"] == hd["vs_engine_alone"]
    # the CPU budget that bounds it: making a frame costs its engine's share and more; the ceiling is
    # what the cores could do if every one were busy all the time
    assert 0 < hd["engine_cpu_ms_per_frame"] < hd["frames_cpu_ms_per_frame"] and hd["cores"] >= 1
    cpu_per_frame = hd["frames_cpu_ms_per_frame"] + hd["encode_ms_per_frame"]
    assert hd["ceiling_frames_per_s"] == pytest.approx(1e3 * hd["cores"] / cpu_per_frame)
    assert "512 px guided" in (tmp_path / "results" / "ci.md").read_text()
    assert entries["ov-int8"]["psnr_db"] >= 35.0 and entries["ov-fp32"]["psnr_db"] > 80
    assert "onnxruntime" in results["machine"]["libraries"] and len(results["machine"]["load_after"]) == 3
    assert results["peak_fp32_gflops"] > 0 and results["summary"]["best_key"] != "reference"
    assert results["peaks_by_precision"]["int8"] > 0  # the int8 entry's ceiling uses its manifest's share
    assert 0 < entries["ov-int8"]["flop_mix"]["int8"] <= 1 and entries["ov-int8"]["pct_ceiling"] > 0
    assert entries["reference"]["flop_mix"] == {"fp32": 1.0} and entries["ort-int8"]["pct_ceiling"] is None
    assert results["quality"][0]["lines"]["ov-int8"]["psnr_db_min"] == entries["ov-int8"]["psnr_db"]


@pytest.mark.slow
def test_random_weights_best_line_also_runs_on_natural_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # its checkpoints and exports
    argv = ["--quick", "--preset", "tiny", "--lines", "ov-int8,ov-int8-natural", "--machine", "ci"]
    assert fps.main([*argv, "--out", str(tmp_path / "results")]) == 0
    results = json.loads((tmp_path / "results" / "ci.json").read_text())
    assert "realistic random weights" in results["model"]["source"]
    assert "fitted to procedural time-lapses" in results["model"]["natural_source"]
    best = {e["key"]: e for e in results["lines"]}[results["summary"]["best_key"]]
    assert best["key"] == "ov-int8"
    natural = best["e2e_natural"]
    assert natural["frames"] > 0 and natural["engine_alone_frames_per_s"] > 0
    assert results["summary"]["best_e2e_natural_vs_engine"] == natural["vs_engine_alone"]
    # the encoder's cost of each kind of frame is recorded; which is cheaper is a measurement (the full
    # run's), not a unit test: on a few small frames the timing flips (0.138 vs 0.098 ms once in CI)
    assert natural["encode_ms_per_frame"] > 0 and best["e2e"]["encode_ms_per_frame"] > 0
    assert "natural frames" in (tmp_path / "results" / "ci.md").read_text()
    # the fitted model's own int8 export is timed beside the others, never taken for the best path
    fitted = {e["key"]: e for e in results["lines"]}["ov-int8-natural"]
    summary = results["summary"]
    assert summary["fitted_key"] == "ov-int8-natural" and summary["fitted_fps"] == fitted["frames_per_s"]
    assert fitted["vs_reference"] > 0 and "e2e" not in fitted
    qualities = {q["checkpoint"]: q for q in results["quality"]}  # its PSNR: on its own model
    natural_psnr = qualities[results["model"]["natural_checkpoint"]]["lines"]["ov-int8"]["psnr_db_min"]
    assert fitted["psnr_db"] == natural_psnr and summary["fitted_psnr_db_min"] == natural_psnr
    assert "fitted weights (ov-int8-natural)" in (tmp_path / "results" / "ci.md").read_text()


def test_fitted_weights_line_needs_a_natural_model_and_is_never_the_best_path(tmp_path: Path):
    item = lines.line("ov-int8-natural")
    assert item.natural and not lines.line(item.natural_of).natural and item.key not in lines.CPU_KEYS
    alone = lines.Context(tmp_path, tmp_path)  # a given checkpoint: no natural model to run
    assert lines.unavailable(item, alone) == lines.NO_NATURAL
    natural = lines.Context(tmp_path / "fitted", tmp_path / "fitted-exports")
    (natural.exports / item.artifact).mkdir(parents=True)
    both = lines.Context(tmp_path, tmp_path, natural)
    assert lines.unavailable(item, both) is None
    assert lines.artifact_path(item, both) == natural.exports / item.artifact
    assert lines.artifact_path(lines.line("ov-int8"), both) == tmp_path / item.artifact
    timings = {("reference", 1): timing(100.0), ("ov-int8", 1): timing(50.0), (item.key, 1): timing(25.0)}
    devices = {"reference": "torch", "ov-int8": "openvino", item.key: "openvino"}
    entries = fps.line_entries(timings, devices, 38.5, 32, {"fp32": 500.0})
    assert fps.best_path(entries)["key"] == "ov-int8"  # the faster fitted line is another model
    summary = fps.summarize(entries, None)
    assert summary["best_vs_reference_best"] == pytest.approx(2.0)
    assert summary["fitted_key"] == item.key and summary["fitted_vs_reference_best"] == pytest.approx(4.0)


def test_workers_load_side_by_side_and_time_on_request(tiny_artifacts):
    from benchmarks.worker import start_workers
    from export.calibration import landscape_batch

    checkpoint, generator, _ = tiny_artifacts
    context = lines.Context(checkpoint, generator.parent)
    feeds = {1: landscape_batch([0], 32, 32)}
    workers = start_workers(["ort-fp32", "ov-fp32"], context, feeds)
    try:
        assert [w.key for w in workers] == ["ort-fp32", "ov-fp32"] and all(w.ready for w in workers)
        assert workers[0].device == "CPUExecutionProvider" and workers[1].device
        assert len(workers[1].block(1, 2, 0.0)) == 2
    finally:
        for worker in workers:
            worker.close()
    assert not any(w.process.is_alive() for w in workers)


def test_a_line_that_fails_to_load_stops_every_worker(
    tiny_artifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from benchmarks import worker

    made: list[worker.LineWorker] = []
    init = worker.LineWorker.__init__

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(worker.LineWorker, "__init__", recording_init)
    context = lines.Context(tmp_path / "no-checkpoint", tiny_artifacts[1].parent)  # reference cannot load
    with pytest.raises(RuntimeError, match="benchmark line reference failed: CheckpointError"):
        worker.start_workers(["reference", "ort-fp32"], context, {})
    assert len(made) == 2 and not any(w.process.is_alive() for w in made)  # ort-fp32 too, loaded or not
