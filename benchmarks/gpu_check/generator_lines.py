"""Section 2: the paper generator on CUDA in every precision and layout PyTorch offers, side by side.

The model is the deployed graph (`training.model.deployed.GeneratorGraph`: video only, equalized lr
folded) of the paper-configuration checkpoint with realistic random weights that the CPU benchmark times
(`benchmarks.artifacts.benchmark_checkpoint`). Engine only: inputs already on the GPU, the video left
there. Every line is timed at each batch that fits (an out-of-memory batch is recorded and the line's
larger batches skipped), and its frames are compared with the fp32 line's on procedural landscapes.
The fp32 line is true float32 (cuDNN's TF32 off); "fp32 TF32" is PyTorch's default for convolutions.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.gpu_check.peak import MATMUL_N, PEAK_REPEATS, QUICK_PEAK_REPEATS, latency_summary, rates
from benchmarks.gpu_check.sections import Section, SectionTimeout

BATCHES, QUICK_BATCHES = (1, 8, 32, 128), (1, 8)
PSNR_BATCH = 8  # procedural landscapes every reduced-precision line is compared on
DISTINCT_INPUTS = 8  # distinct landscapes, tiled to larger batches (no sample depends on another)
INPUT_SEED = 11
MIN_RUNS, MIN_SECONDS, MAX_RUNS = 10, 0.5, 200
QUICK_MIN_RUNS, QUICK_MIN_SECONDS = 5, 0.15
WARMUP_RUNS = 2
RESERVE_S = 8.0  # no new cell starts with less left than this (the PSNR and writing still need it)
COMPILE_RESERVE_S, QUICK_COMPILE_RESERVE_S = 60.0, 30.0  # what an inductor compile of one batch may take


@dataclass(frozen=True)
class Variant:
    """One way to run the generator: weights' dtype, autocast, memory layout, CUDA graphs, compile."""

    key: str
    label: str
    dtype: str = "fp32"  # weights and inputs: fp32, fp16, bf16
    autocast: str | None = None  # autocast dtype around the call
    tf32: bool = False
    channels_last: bool = False
    graphs: bool = False
    compile: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("fp32", "eager fp32 (TF32 off)"),
    Variant("fp32-tf32", "eager fp32, TF32 convolutions (PyTorch's default)", tf32=True),
    Variant("autocast-fp16", "eager, autocast fp16", autocast="fp16"),
    Variant("autocast-bf16", "eager, autocast bf16", autocast="bf16"),
    Variant("half-fp16", "eager, .half()", dtype="fp16"),
    Variant("half-bf16", "eager, .bfloat16()", dtype="bf16"),
    Variant("channels-last-fp16", "eager, .half(), channels_last", dtype="fp16", channels_last=True),
    Variant(
        "graphs-fp16", "CUDA graph, .half(), channels_last", dtype="fp16", channels_last=True, graphs=True
    ),
    Variant(
        "compile-fp16",
        "torch.compile (inductor), .half(), channels_last",
        dtype="fp16",
        channels_last=True,
        compile=True,
    ),
)


def psnr(actual: np.ndarray, expected: np.ndarray) -> float | None:
    """PSNR in dB of frames in [-1, 1] (peak-to-peak 2) against reference frames; None if identical."""
    from export.parity import compare

    return compare(actual.astype(np.float32), expected.astype(np.float32), 2.0)["psnr_db"]


def plan_cells(variants: tuple[Variant, ...], batches: tuple[int, ...]) -> list[tuple[Variant, int]]:
    """The order cells run in: every eager line at every batch first, then CUDA graphs, then compiled
    lines last (a compile is the slowest thing to start): a short time box keeps the cheap lines."""
    return sorted(((v, b) for v in variants for b in batches), key=lambda c: (c[0].compile, c[0].graphs))


def _prepare(model: Any, variant: Variant) -> Any:
    import torch

    module = copy.deepcopy(model)
    if variant.dtype != "fp32":
        module = module.to({"fp16": torch.float16, "bf16": torch.bfloat16}[variant.dtype])
    if variant.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if variant.compile:
        module = torch.compile(module, dynamic=False)
    return module


def _runner(module: Any, variant: Variant, image: Any, motion: Any) -> Callable[[], Any]:
    """A call that makes one batch's video on the inputs' device (asynchronously on a GPU)."""
    import torch

    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    image = image.to(dtypes[variant.dtype])
    motion = motion.to(dtypes[variant.dtype])
    if variant.channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    autocast = (
        torch.autocast(image.device.type, dtype=dtypes[variant.autocast])
        if variant.autocast
        else contextlib.nullcontext()
    )

    def call() -> Any:
        with torch.inference_mode(), autocast:
            return module(image, motion)

    if not variant.graphs:
        return call
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            call()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static = call()

    def replay() -> Any:
        graph.replay()
        return static

    return replay


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_calls(
    call: Callable[[], Any],
    min_runs: int,
    min_seconds: float,
    device: str = "cuda",
    warmup: int = WARMUP_RUNS,
) -> list[float]:
    """Seconds of each synchronized call after the warm-up: at least `min_runs` and `min_seconds`."""
    for _ in range(warmup):
        call()
    synchronize(device)
    samples: list[float] = []
    while len(samples) < MAX_RUNS and (len(samples) < min_runs or sum(samples) < min_seconds):
        start = time.perf_counter()
        call()
        synchronize(device)
        samples.append(time.perf_counter() - start)
    return samples


def _feeds(cfg: Any, batch: int, device: str) -> tuple[Any, Any]:
    import torch

    from export.calibration import check_seeds, landscape_batch

    seeds = check_seeds(np.random.default_rng(INPUT_SEED), DISTINCT_INPUTS)
    feeds = landscape_batch(seeds, cfg.image_size, cfg.motion_dim)
    reps = -(-batch // DISTINCT_INPUTS)
    image = np.concatenate([feeds["image"]] * reps)[:batch]
    motion = np.concatenate([feeds["motion"]] * reps)[:batch]
    return torch.from_numpy(image).to(device), torch.from_numpy(motion).to(device)


@dataclass(frozen=True)
class Protocol:
    """How long each cell is timed, and how much time a cell needs left in the box to start."""

    min_runs: int = MIN_RUNS
    min_seconds: float = MIN_SECONDS
    compile_reserve_s: float = COMPILE_RESERVE_S
    warmup_runs: int = WARMUP_RUNS


FULL = Protocol()
QUICK = Protocol(QUICK_MIN_RUNS, QUICK_MIN_SECONDS, QUICK_COMPILE_RESERVE_S)


def run(section: Section, quick: bool) -> None:
    """Fill `section.result` with the peaks, the model, one row per line and batch, and each line's PSNR."""
    import torch

    from benchmarks.artifacts import benchmark_checkpoint
    from benchmarks.gpu_check.peak import measure_matmul_peak
    from training import checkpoint as ckpt_io
    from training.model import generator_flops
    from training.model.deployed import GeneratorGraph

    out = section.result
    repeats = QUICK_PEAK_REPEATS if quick else PEAK_REPEATS
    out["peaks"] = [measure_matmul_peak(p, MATMUL_N, repeats) for p in ("fp16", "bf16", "tf32", "fp32")]
    out["peak_fp16_tflops"] = out["peaks"][0]["tflops"]
    section.flush()
    checkpoint = benchmark_checkpoint("paper")
    cfg = ckpt_io.read_info(checkpoint)["config"]
    gflop = generator_flops(cfg) / 1e9
    out["model"] = {"checkpoint": str(checkpoint), "gflop_per_clip": gflop, "frames": cfg.frames}
    out["variants"] = [{"line": v.key, "what": v.label} for v in VARIANTS]
    model = GeneratorGraph(ckpt_io.load(checkpoint, components=["generator"]).generator()).cuda().eval()
    previous_tf32 = torch.backends.cudnn.allow_tf32
    try:
        time_lines(
            section,
            model,
            cfg,
            gflop,
            out["peak_fp16_tflops"],
            VARIANTS,
            QUICK_BATCHES if quick else BATCHES,
            QUICK if quick else FULL,
        )
    finally:
        torch.backends.cudnn.allow_tf32 = previous_tf32


def time_lines(
    section: Section,
    model: Any,
    cfg: Any,
    gflop: float,
    peak: float | None,
    variants: tuple[Variant, ...],
    batches: tuple[int, ...],
    protocol: Protocol,
    device: str = "cuda",
    psnr_batch: int = PSNR_BATCH,
) -> None:
    """One row per variant and batch in `section.result["lines"]` (flushed after each), and each
    variant's PSNR against the first variant's frames (the fp32 line) in `psnr_vs_fp32`. A batch that
    runs out of memory or fails skips the variant's larger batches; a cell that would start with less
    time left than it needs is skipped; neither ends the section."""
    import torch

    from benchmarks.gpu_check.sections import error_text

    out = section.result
    rows: list[dict[str, Any]] = out.setdefault("lines", [])
    psnrs: list[dict[str, Any]] = out.setdefault("psnr_vs_fp32", [])
    reference: np.ndarray | None = None
    failed: dict[str, int] = {}  # variant -> the batch that failed (out of memory, error)
    modules: dict[str, Any] = {}
    for variant, batch in plan_cells(variants, batches):
        row: dict[str, Any] = {"line": variant.key, "batch": batch}
        reserve = protocol.compile_reserve_s if variant.compile else RESERVE_S  # each batch compiles anew
        if variant.key in failed:
            row["status"] = f"skipped: batch {failed[variant.key]} failed"
        elif section.left() < reserve:
            row["status"] = f"skipped: {section.left():.0f} s left of the time box"
        else:
            if device.startswith("cuda"):
                torch.backends.cudnn.allow_tf32 = variant.tf32
            try:
                if variant.key not in modules:
                    modules[variant.key] = _prepare(model, variant)
                    video = _video(modules[variant.key], variant, cfg, device, psnr_batch)
                    if variant is variants[0]:
                        reference = video
                    else:
                        psnrs.append(psnr_entry(variant.key, video, reference))
                row.update(_cell(modules[variant.key], variant, cfg, batch, gflop, peak, protocol, device))
            except SectionTimeout:
                rows.append({**row, "status": "stopped: the time box ran out"})
                raise
            except torch.cuda.OutOfMemoryError:
                row["status"] = "out of memory"
                failed[variant.key] = batch
            except Exception as exc:  # one line's failure (capture, compile) must not end the section
                row["status"] = f"failed: {error_text(exc)}"
                failed[variant.key] = batch
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        rows.append(row)
        section.flush()


def _video(module: Any, variant: Variant, cfg: Any, device: str, batch: int) -> np.ndarray:
    image, motion = _feeds(cfg, batch, device)
    out = _runner(module, variant, image, motion)()
    video = out[0] if isinstance(out, tuple | list) else out  # the deployed graph may also return flows
    synchronize(device)
    return video.float().cpu().numpy()


def psnr_entry(key: str, video: np.ndarray, reference: np.ndarray | None) -> dict[str, Any]:
    """A line's frames against the fp32 line's on the same landscapes (nothing to compare without it)."""
    entry: dict[str, Any] = {"line": key, "finite": bool(np.isfinite(video).all())}
    if reference is None:
        return {
            **entry,
            "psnr_db": None,
            "note": "no fp32 frames to compare with (the fp32 line did not run)",
        }
    return {**entry, "psnr_db": psnr(video, reference), "max_abs": float(np.abs(video - reference).max())}


def _cell(
    module: Any,
    variant: Variant,
    cfg: Any,
    batch: int,
    gflop: float,
    peak: float | None,
    protocol: Protocol,
    device: str,
) -> dict[str, Any]:
    import torch

    cuda = device.startswith("cuda")
    image, motion = _feeds(cfg, batch, device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    call = _runner(module, variant, image, motion)
    call()
    synchronize(device)
    first_s = time.perf_counter() - start
    samples = time_calls(call, protocol.min_runs, protocol.min_seconds, device, protocol.warmup_runs)
    latency = latency_summary(samples)
    return {
        "status": "ok",
        **rates(batch, latency["p50_ms"] / 1e3, cfg.frames, gflop, peak),
        **latency,
        "runs": len(samples),
        "first_call_s": first_s,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
