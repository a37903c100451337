"""Section 3: `runtime.Generator(checkpoint, backend="torch", device="cuda")` as a user runs it.

Parity: the same photo and seed through the CUDA and the CPU generator. The float video must stay within
the GPU fp32 parity bound of `export.parity.BOUNDS` (TensorRT fp32's 1e-3: GPU kernels sum in other
orders); uint8 frames may then differ by the rounding that bound allows (ceil(1e-3 * 127.5) = 1 level).
The runtime leaves PyTorch's TF32 setting as it finds it; if parity fails with TF32 convolutions on,
it is checked again with them off, to say whether TF32 is the cause.
End to end: 64 photo files (JPEG, 512 px, read, decoded and resized by the runtime) through `run_many` at the
GPU's default batch, frames taken as uint8 arrays, against the engine alone on as many clips.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.gpu_check.sections import Section

PHOTO_SEED = 5
MOTION_SEED = 7
PARITY_BATCH = 2
E2E_CLIPS, QUICK_E2E_CLIPS = 64, 16
E2E_PHOTOS, QUICK_E2E_PHOTOS = 4, 2  # distinct landscapes (~1.5 s each to render), copied to every file


def frame_bound(max_abs: float) -> int:
    """uint8 levels two frames may differ by when their [-1, 1] values differ by at most `max_abs`:
    one rounding step beyond the bound's own levels."""
    return math.ceil(max_abs * 127.5)


def frame_parity(cuda_frames: list[np.ndarray], cpu_frames: list[np.ndarray], bound: int) -> dict[str, Any]:
    a = np.stack(cuda_frames).astype(np.int16)
    b = np.stack(cpu_frames).astype(np.int16)
    diff = np.abs(a - b)
    return {
        "frames": len(cuda_frames),
        "max_level_diff": int(diff.max()),
        "share_pixels_differing": float((diff > 0).mean()),
        "bound_levels": bound,
        "passed": int(diff.max()) <= bound,
    }


def video_parity(cuda: Any, cpu: Any, cfg_size: int, motion_dim: int, bound: float) -> dict[str, Any]:
    from export.calibration import landscape_batch
    from export.parity import compare

    feeds = landscape_batch(list(range(PARITY_BATCH)), cfg_size, motion_dim)
    got = cuda.infer(feeds["image"], feeds["motion"])
    want = cpu.infer(feeds["image"], feeds["motion"])
    metrics = compare(got, want, 2.0)
    return {**metrics, "bound_max_abs": bound, "passed": metrics["max_abs"] <= bound}


def run(section: Section, quick: bool) -> None:
    from benchmarks.artifacts import benchmark_checkpoint

    checkpoint = benchmark_checkpoint("paper")
    section.result["checkpoint"] = str(checkpoint)
    section.result.update(parity(checkpoint))
    section.flush()
    clips, photos = (QUICK_E2E_CLIPS, QUICK_E2E_PHOTOS) if quick else (E2E_CLIPS, E2E_PHOTOS)
    section.result["end_to_end"] = end_to_end(checkpoint, clips, photos)


def parity(checkpoint: Path, device: str = "cuda") -> dict[str, Any]:
    """The torch backend on `device` against the CPU: the float video of two landscapes, and one clip's
    uint8 frames from the same photo and seed; on CUDA with TF32 convolutions again without them if the
    video misses the bound (to tell TF32 from a bug)."""
    import torch

    from export.calibration import landscape
    from export.parity import BOUNDS
    from runtime.generator import Generator

    bound = BOUNDS[("tensorrt", "fp32")].max_abs
    assert bound is not None
    out: dict[str, Any] = {"cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32)}
    photo = landscape(PHOTO_SEED, 256)
    with (
        Generator(checkpoint, backend="torch", device=device) as gpu,
        Generator(checkpoint, backend="torch", device="cpu") as cpu,
    ):
        out["device"] = gpu.backend.device
        out["video_parity"] = video_parity(gpu, cpu, gpu.image_size, gpu.motion_dim, bound)
        gpu_frames = list(gpu.run(photo, seed=MOTION_SEED))
        cpu_frames = list(cpu.run(photo, seed=MOTION_SEED))
        out["frame_parity"] = frame_parity(gpu_frames, cpu_frames, frame_bound(bound))
        if (
            not out["video_parity"]["passed"]
            and device.startswith("cuda")
            and torch.backends.cudnn.allow_tf32
        ):
            torch.backends.cudnn.allow_tf32 = False
            try:
                out["video_parity_tf32_off"] = video_parity(gpu, cpu, gpu.image_size, gpu.motion_dim, bound)
            finally:
                torch.backends.cudnn.allow_tf32 = True
    return out


def end_to_end(checkpoint: Path, clips: int, distinct: int, device: str = "cuda") -> dict[str, Any]:
    """Photos in, frames out through `run_many` (CUDA, default batch), and the engine alone on as many
    clips in batched `infer` calls: the end-to-end share of the engine's frames/s."""
    from benchmarks.e2e import write_photos
    from export.calibration import landscape_batch
    from runtime.generator import Generator, Throughput

    with (
        tempfile.TemporaryDirectory(prefix="dtvnet-gpu-check-") as tmp,
        Generator(checkpoint, backend="torch", device=device) as generator,
    ):
        photos = write_photos(Path(tmp), distinct)
        paths = [Path(tmp) / f"file{i:03d}.jpg" for i in range(clips)]
        for i, path in enumerate(paths):  # one file per clip, read and decoded by the runtime
            shutil.copyfile(photos[i % len(photos)], path)
        batch = generator.batch_size
        for clip in generator.run_many(paths[:batch], seed=0):  # warm-up
            clip.frames.sum()
        feeds = landscape_batch(list(range(batch)), generator.image_size, generator.motion_dim)
        calls = math.ceil(clips / batch)
        start = time.perf_counter()
        for _ in range(calls):
            generator.infer(feeds["image"], feeds["motion"])
        engine_fps = calls * batch * generator.frames / (time.perf_counter() - start)
        generator.stats = Throughput()
        frames = 0
        start = time.perf_counter()
        for clip in generator.run_many(paths, seed=0):
            frames += len(clip.frames)
            clip.frames.sum()  # take every frame, as a writer would
        wall = time.perf_counter() - start
    return {
        "photos": clips,
        "distinct_photos": len(photos),
        "batch": batch,
        "frames": frames,
        "seconds": wall,
        "frames_per_s": frames / wall,
        "engine_alone_frames_per_s": engine_fps,
        "runtime_engine_frames_per_s": generator.stats.engine_fps,
        "share_of_engine": frames / wall / engine_fps,
    }
