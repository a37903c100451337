"""`Generator`: one artifact, loaded and checked once, turning images into time-lapse frames.

    from runtime import Generator

    with Generator("exports/demo/onnx-fp32") as generator:
        for frame in generator.run("photo.jpg", seed=7):   # H x W x 3 uint8 RGB, as soon as it exists
            ...
        print(generator.stats)                              # its own frames/s, engine-only and end-to-end

Work overlaps: images are loaded and pre-processed in one background thread, the engine runs
batches in another, and the caller's thread turns outputs into uint8 frames (and writes them), each
stage a bounded number of items ahead of the next (`runtime.pipeline`), so memory stays flat. On a
backend with parallel streams (OpenVINO on a multi-core CPU) `run_many` sends clips one at a time to
whichever stream is free instead of batch by batch, so no stream waits for the others.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from runtime import hd, output_size
from runtime import motion as motion_lib
from runtime.backends import Backend, RemoteBackend, is_server_url, load_checked, load_remote, open_artifact
from runtime.backends.parallel_streams import ParallelStreams
from runtime.errors import ArtifactError, ManifestError, MotionError
from runtime.image_input import Geometry, ImageSource, decode
from runtime.imaging import FITS, Fit, prepare_image, to_uint8_frames
from runtime.manifest import Manifest, require_flows, resolve_artifact
from runtime.output_size import OutputSize, Render, SizeRequest
from runtime.pipeline import background, chunks

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFETCH_BATCHES = 2  # how many batches pre-processing may run ahead of the engine
# Frames (run, stream) or clips (run_many) that resized or HD rendering may run ahead of the caller, in
# a thread of its own, so that it overlaps the caller's video encoding (see _post)
RENDER_AHEAD_FRAMES, RENDER_AHEAD_CLIPS = 8, 1
CPU_BATCH, GPU_BATCH = 4, 8  # default batch sizes when neither the caller nor the artifact sets one


@dataclass
class Clip:
    """One generated clip of `run_many`: frames [T, H, W, 3] uint8 RGB and the motion that made them."""

    index: int
    frames: np.ndarray
    motion: np.ndarray
    seed: int | None


@dataclass
class Throughput:
    """Frames/s of one Generator: engine-only (time inside the backend) and end-to-end (wall time of
    each run from its first request to its last frame taken by the caller, writing included)."""

    frames_generated: int = 0
    engine_seconds: float = 0.0
    frames_delivered: int = 0
    wall_seconds: float = 0.0
    first_frame_seconds: float | None = None  # latency of the latest run

    @property
    def engine_fps(self) -> float:
        return self.frames_generated / self.engine_seconds if self.engine_seconds else 0.0

    @property
    def end_to_end_fps(self) -> float:
        return self.frames_delivered / self.wall_seconds if self.wall_seconds else 0.0

    def __str__(self) -> str:
        return f"{self.end_to_end_fps:.1f} frames/s end-to-end, {self.engine_fps:.1f} frames/s engine-only"


@dataclass(frozen=True)
class _Request:
    index: int
    image: np.ndarray  # float32 [3, S, S] in [-1, 1]
    motion: np.ndarray  # float32 [motion_dim]
    seed: int | None
    geometry: Geometry
    out: OutputSize | None = None  # None: the model's own frames
    photo: np.ndarray | None = None  # the photo at the output's square side, for guided rendering


_Result = tuple[_Request, np.ndarray, "np.ndarray | None"]  # a request, its video and its flows


@dataclass(frozen=True)
class _Output:
    """What frames to make: the size asked for and how (see `runtime.output_size`)."""

    size: SizeRequest
    render: Render | None
    fit: Fit


class Generator:
    """Load a generator artifact and make time-lapse frames from images.

    artifact: an artifact folder, its manifest.json or its model file (.onnx: ONNX Runtime;
        .plan/.engine: TensorRT), a checkpoint folder (PyTorch), or the URL of a model on a Triton
        server, http://HOST:PORT/v2/models/NAME (written by `python -m export.triton`).
    backend: "auto" (from the artifact), "onnxruntime", "tensorrt", "torch" or "triton".
    device: None for the best available (ONNX Runtime: TensorRT, then CUDA, then CPU providers),
        or "cpu", "cuda", "cuda:N", "tensorrt[:N]" (ONNX Runtime's TensorRT provider); None for a server.
    batch_size: requests per engine call in `run_many`; defaults to the artifact's optimal batch,
        else 8 on a GPU and 4 on the CPU. Must lie within the engine's batch range.

    The artifact is checked before any inference: its sha256, its tensors and precision against the
    manifest, and for TensorRT engines the TensorRT version and GPU they were built for.
    """

    def __init__(
        self,
        artifact: str | os.PathLike[str],
        backend: str = "auto",
        device: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.device = device
        self.backend: Backend
        self.model_path: Path | None  # None for a model on a server
        self._remote: RemoteBackend | None = None
        if is_server_url(artifact):
            self.backend = self._remote = load_remote(str(artifact), "generator", backend, device)
            self.manifest, self.model_path, self.location = self._remote.manifest, None, str(artifact)
        else:
            self.manifest, self.model_path = open_artifact(artifact, "generator")
            self.backend = load_checked(self.manifest, self.model_path, "generator", backend, device)
            self.location = str(self.model_path)  # what messages name: the model file or the URL
        self.image_size = self.manifest.image_size
        self.frames = self.manifest.frames
        self.motion_dim = self.manifest.motion_dim
        self.batch_size = self._check_batch_size(batch_size)
        self.stats = Throughput()
        self.last_seed: int | None = None  # the seed of the latest seeded run, to reproduce it
        self._engine_lock = threading.Lock()  # one engine call at a time (TensorRT contexts are not shared)
        self._flow_encoder: Backend | None = None
        log.debug("loaded %s on %s (%s)", self.location, self.backend.name, self.backend.device)

    def __repr__(self) -> str:
        return (
            f"Generator({self.location!r}, backend={self.backend.name!r}, "
            f"device={self.backend.device!r}, {self.image_size}x{self.image_size}, {self.frames} frames)"
        )

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the engine (and the flow encoder, if motion transfer loaded one)."""
        for backend in (self.backend, self._flow_encoder):
            if backend is not None:
                backend.close()
        self._flow_encoder = None

    # ------------------------------------------------------------------ public API

    def run(
        self,
        image: ImageSource,
        motion: motion_lib.MotionSource | None = None,
        seed: int | None = None,
        *,
        fit: Fit = "crop",
        size: SizeRequest | str = None,
        render: Render | None = None,
        upscale: bool = False,
    ) -> Iterator[np.ndarray]:
        """Frames of one clip, `frames` of them, each H x W x 3 uint8 RGB, the first as soon as it exists.

        image: a path, a numpy array (gray/RGB/RGBA, uint8, uint16 or float in [0, 1]) or a PIL image,
            resized to the model by `fit`: "crop" (the central square) or "letterbox" (mid-grey bars).
        motion: None (a N(0, I) vector drawn from `seed`; seed None picks a fresh one, reported as
            `last_seed`), a vector of `motion_dim` numbers, a .npy file holding one, or a reference
            video file / folder of frames whose motion is transferred.
        size: None (the model's side), a side in pixels (crop: the square's side; letterbox: the long
            side) or "input" (the photo's own size). render: "guided" (default above the model's side:
            the model's motion and colour, the photo's detail; needs an artifact that outputs `flows`) or
            "resize" (plain interpolation). upscale=True is size="input".
        Bad inputs raise here, before the iterator is returned.
        """
        output = self._output(size, render, fit, upscale)
        vector, used_seed = self._motion(motion, seed, fit)
        request = self._request(0, image, vector, used_seed, output)
        videos = self._infer_requests([request])
        return self._timed(self._post(self._frames(videos, chained=False), output, RENDER_AHEAD_FRAMES))

    def run_many(
        self,
        images: Iterable[ImageSource],
        motion: motion_lib.MotionSource | Callable[[int], np.ndarray] | None = None,
        seed: int | None = None,
        *,
        fit: Fit = "crop",
        size: SizeRequest | str = None,
        render: Render | None = None,
        upscale: bool = False,
    ) -> Iterator[Clip]:
        """One `Clip` per image, in order, with requests batched to `batch_size` per engine call.

        motion: None (image i gets vector i of `seed`'s stream), one motion source for all images, an
        [N, motion_dim] array with one row per image, or a function of i that returns image i's vector
        (called when image i is read). size, render: as in `run`. Images are read lazily, so a bad one
        raises when the iteration reaches it.
        """
        output = self._output(size, render, fit, upscale)
        vector_for = self._motion_per_image(motion, seed, fit)

        def requests() -> Iterator[_Request]:
            for i, image in enumerate(images):
                vector, used_seed = vector_for(i)
                yield self._request(i, image, vector, used_seed, output)

        prefetched = background(requests(), PREFETCH_BATCHES * self.batch_size, "dtvnet-prepare")
        clips = self._clips(self._infer_requests(prefetched))
        return self._timed(self._post(clips, output, RENDER_AHEAD_CLIPS))

    def stream(
        self,
        image: ImageSource,
        clips: int | None = None,
        motion: motion_lib.MotionSource | None = None,
        seed: int | None = None,
        *,
        transition: int = 4,
        fit: Fit = "crop",
        size: SizeRequest | str = None,
        render: Render | None = None,
        upscale: bool = False,
    ) -> Iterator[np.ndarray]:
        """A long time-lapse: `clips` chained clips (None: endless), each starting from the last frame
        of the one before.

        Every clip after the first skips its frame 0, which repeats the frame it started from, so
        N clips give frames + (N - 1) * (frames - 1) frames. With motion None, key vectors of `seed`
        sit every `transition` clips and the clips between glide to the next by slerp, so the motion
        changes without jumps (transition=1: a new vector every clip); a given motion holds for all.
        size, render: as in `run`; in guided HD each clip takes its detail from the last HD frame of the
        one before. The engine runs up to two clips ahead of the caller.
        """
        if clips is not None and (not isinstance(clips, int) or clips < 1):
            raise ValueError(f"clips must be a positive number of clips or None (endless), got {clips!r}")
        if transition < 1:
            raise ValueError(f"transition must be at least 1 clip, got {transition!r}")
        output = self._output(size, render, fit, upscale)
        first = self._request(0, image, np.zeros(0, np.float32), None, output)
        if motion is None:
            drawn = self._draw_seed(seed)
            used_seed: int | None = drawn

            def schedule(k: int) -> np.ndarray:
                return motion_lib.schedule_vector(drawn, self.motion_dim, k, transition)

        else:
            vector, used_seed = self._motion(motion, seed, fit)

            def schedule(k: int) -> np.ndarray:
                return vector

        chain = self._chain(first, schedule, used_seed, clips)
        videos = background(chain, PREFETCH_BATCHES, "dtvnet-engine")
        return self._timed(self._post(self._frames(videos, chained=True), output, RENDER_AHEAD_FRAMES))

    def motion_vector(
        self, motion: motion_lib.MotionSource | None = None, seed: int | None = None, *, fit: Fit = "crop"
    ) -> np.ndarray:
        """The float32 [motion_dim] vector a run would use for `motion` / `seed` (e.g. to save a
        transferred motion with np.save and reuse it)."""
        return self._motion(motion, seed, fit)[0]

    # ------------------------------------------------------------------ images and output size

    @property
    def has_flows(self) -> bool:
        """Whether the artifact outputs the model's flows, which guided HD rendering moves detail by."""
        return self.manifest.has_flows

    def _output(self, size: SizeRequest | str, render: Render | None, fit: Fit, upscale: bool) -> _Output:
        if fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
        checked = output_size.check_size(size)
        if upscale:
            if checked not in (None, output_size.INPUT):
                raise output_size.SizeError(
                    f"upscale=True means size='input' but size={size!r} was given too; pass one of them."
                )
            checked = output_size.INPUT
        output = _Output(checked, output_size.check_render(render), fit)
        asks_guided = output.render == "guided" or (
            output.render is None and isinstance(checked, int) and checked > self.image_size
        )
        if asks_guided:
            self._require_flows()
        return output

    def _require_flows(self) -> None:
        require_flows(
            self.manifest,
            f"Artifact {self.location!r}",
            "render above the model's size (or pass render='resize', --render resize, to interpolate)",
        )

    def _request(
        self, index: int, image: ImageSource, vector: np.ndarray, seed: int | None, output: _Output
    ) -> _Request:
        """Load and check one image, pre-process it for the model, and plan its output size."""
        array, (height, width) = decode(image, output_size.decode_side(output.size, self.image_size))
        geometry = Geometry(height, width, output.fit)
        prepared = prepare_image(array, self.image_size, output.fit)
        out = output_size.plan(output.size, output.render, geometry, self.image_size)
        photo = None
        if out is not None and out.hd:
            self._require_flows()
            photo = output_size.photo_square(array, out.side, output.fit)
        return _Request(index, prepared, vector, seed, geometry, out, photo)

    # ------------------------------------------------------------------ motion

    def _draw_seed(self, seed: int | None) -> int:
        used = motion_lib.fresh_seed() if seed is None else motion_lib.check_seed(seed)
        self.last_seed = used
        return used

    def _motion(
        self, motion: motion_lib.MotionSource | None, seed: int | None, fit: Fit
    ) -> tuple[np.ndarray, int | None]:
        if motion is None:
            used = self._draw_seed(seed)
            return motion_lib.seeded_vector(used, self.motion_dim), used
        if not isinstance(motion, str | os.PathLike):
            return motion_lib.check_vector(motion, self.motion_dim), None
        path = Path(motion)
        if path.suffix.lower() == motion_lib.VECTOR_SUFFIX:
            return motion_lib.read_vector_file(path, self.motion_dim), None
        frames = motion_lib.read_reference_frames(path, self.frames)
        flows = motion_lib.reference_flows(frames, self.image_size, fit)
        encoded = self._flow_encoder_backend().run({"flows": flows})["motion"]
        return motion_lib.check_vector(
            encoded, self.motion_dim, f"The motion encoded from {str(path)!r}"
        ), None

    def _motion_per_image(
        self, motion: motion_lib.MotionSource | Callable[[int], np.ndarray] | None, seed: int | None, fit: Fit
    ) -> Callable[[int], tuple[np.ndarray, int | None]]:
        """run_many's motion for image i: vector i of a seed, row i of an array, the caller's function of
        i, or one shared vector."""
        if callable(motion):
            per_image = motion
            return lambda i: (motion_lib.check_vector(per_image(i), self.motion_dim, f"Motion {i}"), None)
        if motion is None:
            drawn = self._draw_seed(seed)
            return lambda i: (motion_lib.seeded_vector(drawn, self.motion_dim, i), drawn)
        if isinstance(motion, np.ndarray) and motion.ndim == 2 and motion.shape[0] != 1:
            rows = motion

            def row(i: int) -> tuple[np.ndarray, int | None]:
                if i >= len(rows):
                    raise MotionError(
                        f"The motion array has {len(rows)} rows but there are more images; pass one row each."
                    )
                return motion_lib.check_vector(rows[i], self.motion_dim, f"Row {i} of the motion array"), None

            return row
        shared = self._motion(motion, seed, fit)
        return lambda i: shared

    def _flow_encoder_backend(self) -> Backend:
        """The flow encoder for motion transfer: the checkpoint's own (PyTorch), the artifact's companion
        named in its manifest (ONNX Runtime), or the one served beside the generator (Triton), checked
        like the generator."""
        if self._flow_encoder is not None:
            return self._flow_encoder
        if self._remote is not None:  # on a server: the flow encoder the generator's config names
            remote = self._remote.companion("flow_encoder")
            try:
                self._check_flow_encoder(remote.manifest, remote.url)
            except ManifestError:
                remote.close()
                raise
            self._flow_encoder = remote
            return remote
        assert self.model_path is not None
        if self.backend.name == "torch":
            manifest, model_path = open_artifact(self.model_path.parent, "flow_encoder")
        else:
            companion = self.manifest.companions.get("flow_encoder")
            if not companion:
                raise MotionError(
                    f"Artifact {self.location!r} has no flow encoder, so it cannot transfer motion from a "
                    "video; export one with `python -m export.onnx CHECKPOINT` from a checkpoint with a "
                    "trained flow encoder, or pass a motion vector or seed instead."
                )
            manifest, model_path = resolve_artifact(self.model_path.parent / companion)
        self._check_flow_encoder(manifest, str(model_path))
        device = self.device if self.backend.name == "onnxruntime" else None
        self._flow_encoder = load_checked(manifest, model_path, "flow_encoder", device=device)
        return self._flow_encoder

    def _check_flow_encoder(self, manifest: Manifest, location: str) -> None:
        """A flow encoder must be for this generator's image size, frames and motion size."""
        ours = (self.image_size, self.frames, self.motion_dim)
        if (manifest.image_size, manifest.frames, manifest.motion_dim) != ours:
            raise ManifestError(
                f"Flow encoder {location!r} is for (size, frames, motion size) "
                f"{(manifest.image_size, manifest.frames, manifest.motion_dim)} but generator "
                f"{self.location!r} is for {ours}; export both from the same checkpoint."
            )

    # ------------------------------------------------------------------ engine

    def _check_batch_size(self, batch_size: int | None) -> int:
        limit = self.backend.max_batch
        if batch_size is None:
            preferred = (self.manifest.batch or {}).get("opt") or getattr(
                self.backend, "preferred_batch", None
            )
            on_cpu = "cpu" in self.backend.device.lower()
            batch_size = int(preferred or (CPU_BATCH if on_cpu else GPU_BATCH))
            return min(batch_size, limit) if limit else batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if limit is not None and batch_size > limit:
            raise ArtifactError(
                f"Artifact {self.location!r} takes batches of at most {limit}, not {batch_size}; pass "
                f"batch_size <= {limit} or rebuild it with a larger batch profile."
            )
        return batch_size

    def infer(self, images: np.ndarray, motions: np.ndarray) -> np.ndarray:
        """One engine call: float32 images [B, 3, S, S] in [-1, 1] and motions [B, motion_dim] ->
        videos [B, 3, T, S, S] in [-1, 1]. The building block of everything above; counted in `stats`."""
        return self._infer(images, motions)[0]

    def _infer(self, images: np.ndarray, motions: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`infer`, with the artifact's flows [B, 2, T, S/2, S/2] (None where it has none)."""
        start = time.perf_counter()
        with self._engine_lock:
            out = self.backend.run({"image": images, "motion": motions})
        self.stats.engine_seconds += time.perf_counter() - start
        video = out["video"]
        self.stats.frames_generated += video.shape[0] * video.shape[2]
        return video, out.get("flows")

    def _infer_requests(self, requests: Iterable[_Request]) -> Iterator[_Result]:
        def batches() -> Iterator[_Result]:
            for batch in chunks(requests, self.batch_size):
                videos, flows = self._infer(
                    np.stack([r.image for r in batch]), np.stack([r.motion for r in batch])
                )
                for i, request in enumerate(batch):
                    yield request, videos[i], None if flows is None else flows[i]

        streamed = isinstance(self.backend, ParallelStreams) and 0 < self.backend.streams <= self.batch_size
        work = self._each(requests) if streamed else batches()
        return background(work, PREFETCH_BATCHES * self.batch_size, "dtvnet-engine")

    def _each(self, requests: Iterable[_Request]) -> Iterator[_Result]:
        """Requests one at a time on a backend's parallel streams (its `run_each`), none waiting for a
        batch to fill or to finish; `batch_size` only bounds how far the stages run ahead. Engine time
        is the time any request was in flight."""
        backend = self.backend
        assert isinstance(backend, ParallelStreams)
        pending: collections.deque[_Request] = collections.deque()

        def feeds() -> Iterator[dict[str, np.ndarray]]:
            for request in requests:
                pending.append(request)
                yield {"image": request.image[None], "motion": request.motion[None]}

        clock = backend.busy
        counted = clock.seconds
        for out in backend.run_each(feeds()):
            video = out["video"][0]
            flows = out.get("flows")
            self.stats.engine_seconds += clock.seconds - counted
            counted = clock.seconds
            self.stats.frames_generated += video.shape[1]
            yield pending.popleft(), video, None if flows is None else flows[0]

    def _chain(
        self,
        first: _Request,
        schedule: Callable[[int], np.ndarray],
        seed: int | None,
        clips: int | None,
    ) -> Iterator[_Result]:
        """Clip k+1 starts from clip k's last frame, as uint8, pre-processed like any image."""
        image = first.image
        for k in itertools.count() if clips is None else range(clips):
            request = dataclasses.replace(first, index=k, image=image, motion=schedule(k), seed=seed)
            videos, flows = self._infer(image[None], request.motion[None])
            video = videos[0]
            next_image = prepare_image(to_uint8_frames(video[:, -1:])[0], self.image_size)
            # from here on the caller's thread owns `video` (and overwrites it)
            yield request, video, None if flows is None else flows[0]
            image = next_image

    # ------------------------------------------------------------------ post-processing (caller's thread)

    def _frames(self, videos: Iterator[_Result], chained: bool) -> Iterator[np.ndarray]:
        carried: np.ndarray | None = None  # guided, chained: the last HD frame of the clip before
        for request, video, flows in videos:
            first = 1 if chained and request.index > 0 else 0  # frame 0 repeats the frame chained from
            frames = to_uint8_frames(video, overwrite=True)  # one conversion per clip
            photo = carried if first and carried is not None else request.photo
            for frame in _render(request.out, frames, flows, photo, first):
                if chained and request.out is not None and request.out.hd:
                    carried = frame
                yield request.out.crop(frame) if request.out is not None else frame

    @staticmethod
    def _post(items: Iterator[T], output: _Output, ahead: int) -> Iterator[T]:
        """Post-processing at the model's size (a uint8 conversion) stays on the caller's thread; resizing
        and guided HD rendering, which cost about as much CPU per HD frame as encoding it, run in a thread
        of their own, so that a caller who encodes the frames overlaps the two (512 px, 2 cores: +22% end
        to end, benchmarks/README.md). Every frame is a fresh array, so running ahead is safe."""
        if output.size is None:
            return items
        return background(items, ahead, "dtvnet-render")

    def _clips(self, videos: Iterator[_Result]) -> Iterator[Clip]:
        for request, video, flows in videos:
            frames = to_uint8_frames(video, overwrite=True)
            if request.out is not None:
                out = request.out
                frames = np.stack([out.crop(f) for f in _render(out, frames, flows, request.photo, 0)])
            yield Clip(request.index, frames, request.motion, request.seed)

    def _timed(self, items: Iterator[np.ndarray] | Iterator[Clip]) -> Iterator:  # type: ignore[type-arg]
        """Count frames handed to the caller and the wall time of the run, into `stats`."""
        start = time.perf_counter()
        delivered = 0
        try:
            for item in items:
                if delivered == 0:
                    self.stats.first_frame_seconds = time.perf_counter() - start
                delivered += item.frames.shape[0] if isinstance(item, Clip) else 1
                yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            self.stats.frames_delivered += delivered
            self.stats.wall_seconds += time.perf_counter() - start


def _render(
    out: OutputSize | None, frames: np.ndarray, flows: np.ndarray | None, photo: np.ndarray | None, first: int
) -> Iterator[np.ndarray]:
    """Frames `first`.. of one clip at the output's square side (before any letterbox crop)."""
    if out is None:
        yield from frames[first:]
    elif not out.hd:
        for frame in frames[first:]:
            yield out.resize(frame)
    else:
        assert flows is not None and photo is not None
        per_frame = np.moveaxis(flows, 1, 0)  # [2, T, h, w] -> T of [2, h, w]
        yield from itertools.islice(hd.render(photo, frames, per_frame), first, None)
