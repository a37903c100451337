"""End to end: photo files in, an mp4 file out, through `runtime.Generator` as `dtvnet generate` runs it.

The photos are 512 x 512 JPEGs (quality 90) of distinct procedural landscapes, read from disk by path,
so every clip pays for reading, decoding and resizing its photo as a user's would.
Batch 1 is the streaming path of `dtvnet generate --clips N`: chained clips from one photo, each started
from the last frame of the one before (so each clip after the first delivers 31 new frames of 32, a
ceiling of 96.9% of the engine's frames). Larger batches go through `run_many` (one clip per photo,
batched, the photos taken in turn), all clips written into one mp4. Loading and pre-processing,
inference, and uint8 conversion plus mp4 encoding overlap in the runtime's threads; the clock runs from
the call with the photos' paths to the closed file. The warm-up's frames are also written again alone,
on this thread's CPU clock: what encoding this model's frames costs (noise costs far more than a sky).
"""

from __future__ import annotations

import functools
import math
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.machine import usable_cores
from export.calibration import landscape, landscape_batch
from runtime.generate import frame_count
from runtime.generator import Generator, Throughput
from runtime.writers import write_frames

PHOTO_SIDE = 512  # the photos are larger than the model, so they are resized as a user's would be
PHOTOS = 8  # distinct photos, taken in turn by the clips of run_many
JPEG_QUALITY = 90
FPS = 25.0


@dataclass
class EndToEnd:
    """One line at one batch: delivered frames/s over the wall time, and what the runtime counted."""

    batch: int
    clips: int
    frames: int
    fps: float
    engine_fps_inside: float  # the runtime's own engine-only count during these runs
    engine_fps_alone: float  # engine-only batch calls (as the engine line times them), just before each run
    first_frame_ms: float
    runs: list[float]
    encode_ms_per_frame: float  # CPU time of writing the warm-up's frames to mp4, alone, per frame
    size: int | None = None  # output side (guided HD rendering); None: the model's
    engine_cpu_ms_per_frame: float = 0.0  # process CPU time of the engine alone, per frame
    frames_cpu_ms_per_frame: float = 0.0  # process CPU time of making the frames (no mp4), per frame
    cores: int = 1

    @property
    def ceiling_fps(self) -> float:
        """What end to end could reach with every core busy all the time: the cores over the CPU time
        that one frame costs (making it, then encoding it)."""
        return 1e3 * self.cores / (self.frames_cpu_ms_per_frame + self.encode_ms_per_frame)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "clips": self.clips,
            "frames": self.frames,
            "frames_per_s": self.fps,
            "runtime_engine_frames_per_s": self.engine_fps_inside,
            "engine_alone_frames_per_s": self.engine_fps_alone,
            "vs_engine_alone": self.fps / self.engine_fps_alone,
            "first_frame_ms": self.first_frame_ms,
            "runs_frames_per_s": self.runs,
            "encode_ms_per_frame": self.encode_ms_per_frame,
            "engine_cpu_ms_per_frame": self.engine_cpu_ms_per_frame,
            "frames_cpu_ms_per_frame": self.frames_cpu_ms_per_frame,
            "post_cpu_ms_per_frame": self.frames_cpu_ms_per_frame - self.engine_cpu_ms_per_frame,
            "cores": self.cores,
            "ceiling_frames_per_s": self.ceiling_fps,
            "ceiling_vs_engine_alone": self.ceiling_fps / self.engine_fps_alone,
            "path": "stream (dtvnet generate --clips)" if self.batch == 1 else "run_many, batched",
            "size": self.size,
        }


@functools.cache
def _landscape(seed: int) -> np.ndarray:
    return landscape(seed, PHOTO_SIDE)  # ~1 s each: made once per process


def write_photos(folder: Path, count: int = PHOTOS) -> list[Path]:
    """Landscape photos (JPEG, as cameras write them) to feed the runtime by path: `count` of them, since
    each takes ~1 s to render the first time in a process."""
    paths = []
    for seed in range(count):
        paths.append(folder / f"photo{seed}.jpg")
        Image.fromarray(_landscape(seed)).save(paths[-1], quality=JPEG_QUALITY)
    return paths


def _frames(
    generator: Generator, photos: list[Path], batch: int, clips: int, size: int | None = None
) -> Iterator[np.ndarray]:
    if batch == 1:
        yield from generator.stream(photos[0], clips=clips, seed=0, size=size)
        return
    for clip in generator.run_many((photos[i % len(photos)] for i in range(clips)), seed=0, size=size):
        yield from clip.frames


def measure_end_to_end(
    artifact: Path,
    backend: str | None,
    device: str,
    batch: int,
    clips: int,
    repeats: int,
    size: int | None = None,
) -> EndToEnd:
    """The median of `repeats` end-to-end runs of `clips` clips each, after a warm-up run of `batch` clips.
    size: frames at that side (guided HD rendering above the model's side, as `dtvnet generate --size`).

    Before each run the engine alone is timed on as many clips, in batched `Generator.infer` calls as the
    engine line times it, in the same process and moment, so that the end-to-end / engine ratio is not
    moved by load that drifts during a long benchmark. (On OpenVINO's parallel streams the run itself
    sends clips one at a time to whichever stream is free: `Generator.run_many`.)"""
    with (
        tempfile.TemporaryDirectory(prefix="dtvnet-e2e-") as tmp,
        Generator(artifact, backend=backend or "auto", device=device, batch_size=batch) as generator,
    ):
        photos = write_photos(Path(tmp), 1 if batch == 1 else min(PHOTOS, clips))  # a stream reads one
        warmup = list(_frames(generator, photos, batch, batch, size))
        write_frames(warmup, Path(tmp) / "warmup.mp4", FPS)
        cpu = time.thread_time()  # what this content costs the encoder (noise costs far more than a sky)
        write_frames(warmup, Path(tmp) / "warmup.mp4", FPS)
        encode_ms = 1e3 * (time.thread_time() - cpu) / len(warmup)
        cpu = time.process_time()  # making the frames, every thread: load, engine, post-processing
        made = sum(1 for _ in _frames(generator, photos, batch, batch, size))
        made_ms = 1e3 * (time.process_time() - cpu) / made
        feeds = landscape_batch(list(range(batch)), generator.image_size, generator.motion_dim)
        rates, engine, first, alone, engine_cpu = [], [], [], [], []
        frames = 0
        engine_frames = math.ceil(clips / batch) * batch * generator.frames
        for i in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(math.ceil(clips / batch)):  # the engine alone, without any I/O
                generator.infer(feeds["image"], feeds["motion"])
            alone.append(engine_frames / (time.perf_counter() - start))
            engine_cpu.append(1e3 * (time.process_time() - cpu) / engine_frames)
            generator.stats = Throughput()
            start = time.perf_counter()
            made = _frames(generator, photos, batch, clips, size)
            out = write_frames(made, Path(tmp) / f"run{i}.mp4", FPS)
            wall = time.perf_counter() - start
            frames = frame_count(generator.frames, clips) if batch == 1 else clips * generator.frames
            if not out.is_file():
                raise RuntimeError(f"{out} was not written")
            rates.append(frames / wall)
            engine.append(generator.stats.engine_fps)
            first.append(generator.stats.first_frame_seconds or 0.0)
    return EndToEnd(
        batch=batch,
        clips=clips,
        frames=frames,
        fps=statistics.median(rates),
        engine_fps_inside=statistics.median(engine),
        engine_fps_alone=statistics.median(alone),
        first_frame_ms=1e3 * statistics.median(first),
        runs=[round(r, 1) for r in rates],
        encode_ms_per_frame=encode_ms,
        size=size,
        engine_cpu_ms_per_frame=statistics.median(engine_cpu),
        frames_cpu_ms_per_frame=made_ms,
        cores=usable_cores(),
    )
