"""The machine a benchmark ran on, its load, and its measured fp32 matmul peak.

Numbers from a shared machine mean little without its load, so every result records the load
average before and after, beside CPU, GPU, threads and library versions. The fp32 peak is measured,
not looked up: the best of the matmul libraries installed here (Intel MKL through torch, OpenBLAS
through numpy, oneDNN through OpenVINO), since MKL takes a slow path on AMD CPUs and the convolutions
of every backend here run on oneDNN.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

LIBRARIES = ("dtvnet", "torch", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt")
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8")
PEAK_SIZE = 2048  # square matmul side for the peak; large enough to be compute-bound


@dataclass
class Machine:
    """What a result was measured on."""

    name: str
    cpu: str
    cores: int
    threads: int
    cpu_flags: list[str]
    gpu: str | None
    memory_gib: float
    os: str
    python: str
    libraries: dict[str, str]
    hostname: str
    date: str
    load_before: list[float]
    load_after: list[float] = field(default_factory=list)
    nice: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else platform's."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector-instruction flags that decide which kernels run (AVX2, AVX-512, VNNI, bf16, AMX)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in CPU_FLAGS if flag in present]
    return []


def gpu_name() -> str | None:
    """The first CUDA GPU's name (through torch), or None."""
    try:
        import torch
    except ImportError:
        return None
    return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def memory_gib() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def isa_level(flags: list[str]) -> str | None:
    """The widest vector instruction set: the same model name (a VM's "AMD EPYC") can hide an AVX2
    machine and an AVX-512 one, whose int8 and bf16 speeds differ several-fold."""
    return next((name for name, flag in (("avx512", "avx512f"), ("avx2", "avx2")) if flag in flags), None)


def machine_name(cpu: str, cores: int, gpu: str | None, flags: list[str] | None = None) -> str:
    """A file-name-safe name for the results: CPU model, its vector instruction set and core count,
    and the GPU if there is one."""
    isa = isa_level(flags or [])
    name = f"{slug(cpu)}-{isa}-{cores}c" if isa else f"{slug(cpu)}-{cores}c"
    return f"{name}-{slug(gpu)}" if gpu else name


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def describe_machine(threads: int, name: str | None = None) -> Machine:
    """This machine, now (load average before the benchmark)."""
    cpu, cores, gpu, flags = cpu_name(), usable_cores(), gpu_name(), cpu_flags()
    return Machine(
        name=name or machine_name(cpu, cores, gpu, flags),
        cpu=cpu,
        cores=cores,
        threads=threads,
        cpu_flags=flags,
        gpu=gpu,
        memory_gib=memory_gib(),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        libraries=library_versions(),
        hostname=socket.gethostname(),
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        load_before=load_average(),
        nice=os.nice(0) if hasattr(os, "nice") else 0,
    )


def best_rate(fn: Callable[[], object], flop: float, repeats: int) -> float:
    """GFLOP/s of the fastest of `repeats` calls after two warm-up calls."""
    fn()
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return flop / best / 1e9


def matmul_peaks(threads: int, size: int = PEAK_SIZE, repeats: int = 10) -> dict[str, float]:
    """fp32 GFLOP/s of a size x size matmul in each installed library, on `threads` threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    flop = 2.0 * size**3
    peaks: dict[str, float] = {}
    with contextlib.suppress(ImportError):
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        peaks["torch.mm (MKL)"] = best_rate(lambda: torch.mm(ta, tb), flop, repeats)
        torch.set_num_threads(previous)
    peaks["numpy (OpenBLAS)"] = best_rate(lambda: a @ b, flop, repeats)  # threads: OPENBLAS_NUM_THREADS
    with contextlib.suppress(ImportError):
        import openvino as ov
        import openvino.opset13 as ops

        x = ops.parameter([size, size], np.float32, name="a")
        model = ov.Model([ops.matmul(x, ops.constant(b), False, False)], [x])
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
        request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
        peaks["OpenVINO MatMul (oneDNN)"] = best_rate(lambda: request.infer({0: a}), flop, repeats)
    return {name: round(rate, 1) for name, rate in peaks.items()}
