"""Sections 1, 5 and 6: the environment, TensorRT where it is installed, and the `gpu` tests.

Optional engines (TensorRT, onnxruntime-gpu, OpenVINO) are looked up without importing them unless they
are there: the lent machines have none of them, and the check must run on what they do have.
"""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.sections import Section

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "opencv-python-headless", "tensorrt")
PYTEST_COMMAND = ("-m", "pytest", "-m", "gpu", "-x", "-q", "-p", "no:cacheprovider")
GPU_MARK = "pytest.mark.gpu"


def gpu_test_files(root: Path = ROOT) -> list[str]:
    """The test modules that hold `gpu` tests, relative to `root`. pytest is given these alone: on the
    lent machines (no PyAV, tritonclient or OpenVINO) 11 other modules fail to import, and with -x the
    first collection error stopped the run before any gpu test."""
    found = [p for p in (root / "tests").rglob("test_*.py") if GPU_MARK in p.read_text()]
    return sorted(p.relative_to(root).as_posix() for p in found)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def driver_version() -> str | None:
    """The NVIDIA driver's version, from nvidia-smi (None where it cannot be run)."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def ort_providers() -> list[str] | None:
    if not installed("onnxruntime"):
        return None
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def environment(section: Section, quick: bool) -> None:
    import torch

    from benchmarks.machine import cpu_name, memory_gib, usable_cores

    props = torch.cuda.get_device_properties(0)
    providers = ort_providers()
    section.result.update(
        {
            "gpu": torch.cuda.get_device_name(0),
            "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
            "gpu_memory_gib": props.total_memory / 2**30,
            "multiprocessors": props.multi_processor_count,
            "gpus_visible": torch.cuda.device_count(),
            "driver": driver_version(),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu": cpu_name(),
            "cpu_cores": usable_cores(),
            "memory_gib": memory_gib(),
            "packages": versions(),
            "tensorrt_importable": installed("tensorrt"),
            "onnxruntime_providers": providers,
            "onnxruntime_gpu": bool(providers and "CUDAExecutionProvider" in providers),
            "openvino_importable": installed("openvino"),
            "pyav_importable": installed("av"),
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
            "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        }
    )


def tensorrt(section: Section, quick: bool) -> None:
    """The existing `export.trt` build of the paper checkpoint (fp16, then fp32 in a full run): each is
    verified against PyTorch as every export is; its parity report and build time are recorded."""
    from export.trt import probe_tensorrt

    status = probe_tensorrt()
    out = section.result
    if status.missing is not None:
        out["tensorrt"] = "TensorRT not installed" if status.version is None else status.missing
        return
    from benchmarks.artifacts import benchmark_checkpoint
    from export.trt import export_engine
    from runtime.manifest import resolve_artifact

    out["version"] = status.version
    checkpoint = benchmark_checkpoint("paper")
    engines: list[dict[str, Any]] = []
    out["engines"] = engines
    with tempfile.TemporaryDirectory(prefix="dtvnet-gpu-trt-") as tmp:
        for precision in ("fp16",) if quick else ("fp16", "fp32"):
            folder = export_engine(checkpoint, tmp, precision=precision, force=True, status=status)
            manifest, _ = resolve_artifact(folder)
            parity = manifest.parity or {}
            engines.append(
                {
                    "precision": precision,
                    "passed": parity.get("passed"),
                    "max_abs": parity.get("max_abs"),
                    "psnr_db": parity.get("psnr_db"),
                    "bound": parity.get("bound"),
                }
            )
            section.flush()


def gpu_tests(section: Section, quick: bool) -> None:
    """`pytest -m gpu -x -q` on `gpu_test_files()`, from the repository root; summary line, exit status."""
    import torch

    torch.cuda.empty_cache()  # the tests get the GPU memory this process holds but no longer uses
    command = [sys.executable, *PYTEST_COMMAND, *gpu_test_files()]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=max(10.0, section.left() - 3)
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    section.result.update(
        {
            "command": "python " + " ".join(command[1:]),
            "exit_status": done.returncode,
            "summary": summary_line(done.stdout),
            "failures": [line for line in lines if line.startswith("FAILED")][:10],
            "errors": [line for line in lines if line.startswith("ERROR")][:20],
        }
    )
    if done.returncode not in (0, 5):  # 5: nothing collected
        section.result["output_tail"] = done.stdout[-2000:] + done.stderr[-1000:]


def summary_line(stdout: str) -> str | None:
    """pytest's last summary line ("3 passed, 120 deselected in 4.2s"), else its last line."""
    lines = [line.strip("= ").strip() for line in stdout.splitlines() if line.strip()]
    for line in reversed(lines):
        if " in " in line and any(w in line for w in ("passed", "failed", "error", "skipped", "deselected")):
            return line
    return lines[-1] if lines else None
