"""The command line: arguments, the sections in order with their time boxes, and exit codes.

Exit status: 0 when every section passed its checks, 1 when one failed or ran out of time (the report
says which), 2 for a usage error, 3 without a CUDA GPU (one sentence, nothing measured), 130 when
interrupted (the sections finished by then are on disk).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.report import Report, results_name
from benchmarks.gpu_check.sections import OK, Section, run_section, sigterm_as_interrupt

EXIT_FAILED, EXIT_NO_CUDA, EXIT_INTERRUPTED = 1, 3, 130
NO_CUDA = (
    "No CUDA GPU is visible to PyTorch here ({why}), so there is nothing to check: run "
    "`python -m benchmarks.gpu_check --out DIR` on a machine with an NVIDIA GPU and a CUDA build of PyTorch."
)


@dataclass(frozen=True)
class Step:
    """One section: its key (for --sections), title, time boxes (full, quick) in seconds, and function."""

    key: str
    title: str
    limit_s: float
    quick_limit_s: float
    run: Callable[[Section, bool], None]


def _generator(section: Section, quick: bool) -> None:
    from benchmarks.gpu_check import generator_lines

    generator_lines.run(section, quick)


def _runtime(section: Section, quick: bool) -> None:
    from benchmarks.gpu_check import runtime_check

    runtime_check.run(section, quick)


def _training(section: Section, quick: bool) -> None:
    from benchmarks.gpu_check import training_check

    training_check.run(section, quick)


def _system(name: str) -> Callable[[Section, bool], None]:
    def run(section: Section, quick: bool) -> None:
        from benchmarks.gpu_check import system

        getattr(system, name)(section, quick)

    return run


# Time boxes: full 470 s in all (< 8 min), quick 115 s (< 2 min), start-up and the checkpoint aside.
STEPS: tuple[Step, ...] = (
    Step("environment", "1. Environment", 20, 5, _system("environment")),
    Step("generator", "2. Paper generator on CUDA (PyTorch)", 220, 35, _generator),
    Step("runtime", "3. runtime.Generator on CUDA: parity with the CPU, end to end", 60, 20, _runtime),
    Step("training", "4. Training: AMP on CUDA, resume; torchrun with NCCL", 100, 30, _training),
    Step("tensorrt", "5. TensorRT", 40, 5, _system("tensorrt")),
    Step("tests", "6. pytest -m gpu", 30, 20, _system("gpu_tests")),
)
KEYS = tuple(step.key for step in STEPS)


def sections_argument(text: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in keys if k not in KEYS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(unknown) or repr(text)}; choose from {', '.join(KEYS)}"
        )
    return keys


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check",
        description="Check every GPU path of dtvnet in one run; results in DIR/<gpu-name>.json and .md.",
    )
    parser.add_argument("--out", type=Path, required=True, help="results folder (created if missing)")
    parser.add_argument("--quick", action="store_true", help="small batches and short time boxes (< 2 min)")
    parser.add_argument(
        "--sections", type=sections_argument, help=f"run only these, comma-separated ({', '.join(KEYS)})"
    )
    return parser.parse_args(argv)


def cuda_problem() -> str | None:
    """Why there is no usable CUDA GPU here, or None if there is one."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no device"
        return f"torch {torch.__version__}, {build}"
    return None


def limit(step: Step, quick: bool) -> float:
    return step.quick_limit_s if quick else step.limit_s


def _with_quick(fn: Callable[[Section, bool], None], quick: bool) -> Callable[[Section], None]:
    return lambda section: fn(section, quick)


def run_steps(report: Report, steps: Sequence[Step], quick: bool) -> list[str]:
    """Every step in order under its time box; the report is written after each. Returns the statuses.
    An interrupt is recorded in the report and re-raised."""
    statuses = []
    try:
        with sigterm_as_interrupt():
            for step in steps:
                run = _with_quick(step.run, quick)
                statuses.append(run_section(report, step.key, step.title, limit(step, quick), run))
                error = report.section(step.key).get("error")
                print(f"{step.title}: {statuses[-1]}" + (f" ({error})" if error else ""), file=sys.stderr)
    except KeyboardInterrupt:
        report.data["stopped"] = "interrupted"
        report.write()
        raise
    report.data["finished"] = True
    report.write()
    return statuses


def failed_checks(data: dict[str, Any]) -> list[str]:
    """Sections whose result says a check did not pass (`passed: false` anywhere in it)."""

    def any_failed(value: Any) -> bool:
        if isinstance(value, dict):
            return value.get("passed") is False or any(any_failed(v) for v in value.values())
        if isinstance(value, list):
            return any(any_failed(v) for v in value)
        return False

    return [key for key, entry in data["sections"].items() if any_failed(entry.get("result"))]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from runtime.fsutil import ensure_writable_dir

    problem = cuda_problem()
    if problem is not None:
        print(NO_CUDA.format(why=problem), file=sys.stderr)
        return EXIT_NO_CUDA
    import torch

    out = ensure_writable_dir(args.out, "--out folder")
    gpu = torch.cuda.get_device_name(0)
    command = shlex.join(["python", "-m", "benchmarks.gpu_check", *(sys.argv[1:] if argv is None else argv)])
    report = Report(out, results_name(gpu, args.quick), {"gpu": gpu, "command": command, "quick": args.quick})
    steps = [s for s in STEPS if args.sections is None or s.key in args.sections]
    try:
        statuses = run_steps(report, steps, args.quick)
    except KeyboardInterrupt:
        print(f"interrupted; the sections finished so far are in {report.paths[0]}", file=sys.stderr)
        return EXIT_INTERRUPTED
    json_path, md_path = report.paths
    failed = failed_checks(report.data)
    print(f"wrote {json_path} and {md_path}")
    if failed:
        print(f"checks that did not pass: {', '.join(failed)}", file=sys.stderr)
    return 0 if all(s == OK for s in statuses) and not failed else EXIT_FAILED
