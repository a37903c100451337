"""The machine a benchmark ran on, its load, and its measured arithmetic peaks.

Numbers from a shared machine mean little without its load, so every result records the load
average before and after, beside CPU, GPU, threads and library versions. The fp32 peak is measured,
not looked up: the best of the matmul libraries installed here (Intel MKL through torch, OpenBLAS
through numpy, oneDNN through OpenVINO), since MKL takes a slow path on AMD CPUs and the convolutions
of every backend here run on oneDNN. The int8 peak is that of OpenVINO's int8 convolution, the kernel
the int8 artifact runs (~2x the fp32 peak without VNNI, up to 4x with it), and the bf16
peak, where the CPU has bfloat16 arithmetic, OpenVINO's bf16 matmul.
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
# batch, channels (in = out), side, kernel of the int8 peak's convolution: compute-bound, ~30 ms a call
# on 2 AVX2 cores (256 channels at 32x32 run the kernel ~1.7x faster than at batch 4, or at 16x16)
INT8_PEAK_CONV = (8, 256, 32, 3)


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


def _matrices(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal(
        (size, size), dtype=np.float32
    )


def _openvino_matmul_rate(a: np.ndarray, b: np.ndarray, threads: int, precision: str, repeats: int) -> float:
    """GFLOP/s of OpenVINO's a @ b (b a constant) at inference precision `precision` (raises ImportError
    without OpenVINO)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter(list(a.shape), np.float32, name="a")
    model = ov.Model([ops.matmul(x, ops.constant(b), False, False)], [x])
    config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads}
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    return best_rate(lambda: request.infer({0: a}), 2.0 * a.shape[0] * a.shape[1] * b.shape[1], repeats)


def matmul_peaks(threads: int, size: int = PEAK_SIZE, repeats: int = 10) -> dict[str, float]:
    """fp32 GFLOP/s of a size x size matmul in each installed library, on `threads` threads."""
    a, b = _matrices(size)
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
        peaks["OpenVINO MatMul (oneDNN)"] = _openvino_matmul_rate(a, b, threads, "f32", repeats)
    return {name: round(rate, 1) for name, rate in peaks.items()}


def bf16_matmul_peak(threads: int, size: int = PEAK_SIZE, repeats: int = 10) -> dict[str, float]:
    """bf16 GFLOP/s of OpenVINO's size x size matmul; {} where OpenVINO is missing or the CPU has no
    bfloat16 arithmetic (OpenVINO would compute in float32)."""
    try:
        from runtime.backends.openvino import bf16_supported
    except ImportError:
        return {}
    if not bf16_supported():
        return {}
    rate = _openvino_matmul_rate(*_matrices(size), threads, "bf16", repeats)
    return {"OpenVINO MatMul bf16 (oneDNN)": round(rate, 1)}


def int8_conv_peak(
    threads: int, repeats: int = 10, shape: tuple[int, int, int, int] = INT8_PEAK_CONV
) -> dict[str, float]:
    """GOP/s (multiply and add each count one) of OpenVINO's int8 convolution: uint8 activations times
    int8 weights into int32 sums, requantized to uint8, as in every int8 layer of the int8 artifact.
    Timed by OpenVINO's own counters, so that quantizing the float input is left out; best of `repeats`
    calls. Named by the kernel that ran; {} without OpenVINO."""
    try:
        import openvino as ov
        import openvino.opset13 as ops
    except ImportError:
        return {}
    batch, channels, side, kernel = shape

    def fake_quantize(node: Any, low: float, high: float, levels: int) -> Any:
        lo, hi = ops.constant(np.float32(low)), ops.constant(np.float32(high))
        return ops.fake_quantize(node, lo, hi, lo, hi, levels)

    rng = np.random.default_rng(0)
    x = ops.parameter([batch, channels, side, side], np.float32, name="x")
    weights = rng.uniform(-1, 1, (channels, channels, kernel, kernel)).astype(np.float32)
    pad = [kernel // 2] * 2
    conv = ops.convolution(
        fake_quantize(x, 0.0, 1.0, 256),
        fake_quantize(ops.constant(weights), -1.0, 1.0, 255),
        [1, 1],
        pad,
        pad,
        [1, 1],
    )
    model = ov.Model([fake_quantize(conv, -8.0, 8.0, 256)], [x])
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERF_COUNT": True}
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    feed = rng.uniform(0, 1, (batch, channels, side, side)).astype(np.float32)
    for _ in range(2):
        request.infer({0: feed})
    best, kernels = float("inf"), set()
    for _ in range(repeats):
        request.infer({0: feed})
        convs = [p for p in request.profiling_info if p.node_type == "Convolution"]
        kernels.update(p.exec_type for p in convs)
        best = min(best, sum(p.real_time.total_seconds() for p in convs))
    ops_per_call = 2.0 * batch * channels**2 * kernel**2 * side**2
    return {f"OpenVINO int8 Convolution ({', '.join(sorted(kernels))})": round(ops_per_call / best / 1e9, 1)}
