"""The GPU's measured ceiling and the arithmetic that relates a line's speed to it and to the paper.

The ceiling is a large dense matmul timed in the same run (not a datasheet number: clocks, power caps
and MIG slices move it), per precision; a line's share of it is its achieved FLOP rate
(`training.model.generator_flops` per clip) over that peak. The paper's "31 FPS" does not say frames or
clips, so both ratios are given, as `benchmarks.fps` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.report import PAPER_CLAIM

MATMUL_N = 8192  # 1.1 TFLOP a product: long enough to time, short on any GPU
PEAK_REPEATS, QUICK_PEAK_REPEATS = 10, 4  # best of N timed loops
PRODUCTS_PER_LOOP = 10


def matmul_flop(n: int) -> float:
    """FLOP of one n x n by n x n product (2 per multiply-add)."""
    return 2.0 * n**3


def tflops(flop: float, seconds: float) -> float:
    return flop / seconds / 1e12


def pct_of_peak(clips_per_s: float, gflop_per_clip: float, peak_tflops: float | None) -> float | None:
    """A line's achieved FLOP rate as a percentage of a measured peak (None without a peak)."""
    if not peak_tflops:
        return None
    return 100.0 * clips_per_s * gflop_per_clip / 1e3 / peak_tflops


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean latency in ms of timed calls (p99 of few samples is close to their maximum)."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def rates(
    batch: int, p50_s: float, frames: int, gflop_per_clip: float, peak_tflops: float | None
) -> dict[str, Any]:
    """Clips/s and frames/s from the median latency of a batch call, achieved TFLOP/s, the share of the
    fp16 peak, and both readings of the paper's 31 FPS (as frames/s and as clips/s)."""
    clips = batch / p50_s
    return {
        "clips_per_s": clips,
        "frames_per_s": clips * frames,
        "tflops": clips * gflop_per_clip / 1e3,
        "pct_fp16_peak": pct_of_peak(clips, gflop_per_clip, peak_tflops),
        "x_paper_31_frames_per_s": clips * frames / PAPER_CLAIM,
        "x_paper_31_clips_per_s": clips / PAPER_CLAIM,
    }


def measure_matmul_peak(dtype_name: str, n: int = MATMUL_N, repeats: int = PEAK_REPEATS) -> dict[str, Any]:
    """TFLOP/s of the best of `repeats` loops of dense n x n products on the GPU, timed by CUDA events.
    "fp32" runs with TF32 off (true float32), "tf32" with it on; fp16/bf16 on the tensor cores."""
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32, "tf32": torch.float32}
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype_name == "tf32"
    try:
        gen = torch.Generator(device="cuda").manual_seed(0)
        a = torch.randn(n, n, device="cuda", dtype=dtype[dtype_name], generator=gen)
        b = torch.randn(n, n, device="cuda", dtype=dtype[dtype_name], generator=gen)
        for _ in range(3):
            torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(PRODUCTS_PER_LOOP):
                torch.mm(a, b)
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3 / PRODUCTS_PER_LOOP)
        del a, b
        torch.cuda.empty_cache()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return {"precision": dtype_name, "n": n, "best_ms": best * 1e3, "tflops": tflops(matmul_flop(n), best)}
