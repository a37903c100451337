"""Frames out: mp4 (H.264) and webm (VP9) through PyAV, gif (Pillow), a folder of png frames, and a
contact sheet (one png, frames in a grid). Every writer is atomic: it writes beside the final name and
renames into place only when the last frame is in, so an error never leaves a half-written file
(`runtime.fsutil`). A writer opened with `keep_partial=True` (a long render from the command line)
that is stopped by Ctrl-C finalizes what it holds under NAME.partial.SUFFIX instead (`StoppedEarly`);
a later complete write of NAME removes that stale partial file.

Video that people can play and share, browsers included:
- .mp4: H.264 (libx264, which PyAV's wheels carry), yuv420p, BT.709, `+faststart` (the index up
  front, so a browser starts playing before the whole file is in), x264 preset veryfast; quality by
  `crf` (0-51, lower is better and larger; default 20).
- .webm: VP9 (libvpx-vp9), yuv420p, constant quality `crf` (0-63; default 31).
- yuv420p needs even sides: an odd width or height loses its last column or row (cropped, never
  padded, so the video shows only pixels the model made, at most one pixel smaller).
- Without PyAV, .mp4 falls back to OpenCV's MPEG-4 Part 2 ("mp4v") with a one-line warning: desktop
  players play it, browsers refuse it (MediaError 4). .webm needs PyAV.

    with open_writer("out.mp4", fps=25) as writer:
        for frame in generator.run("photo.jpg"):
            writer.write(frame)
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from runtime.errors import OutputPathError
from runtime.fsutil import atomic_dir, atomic_file

log = logging.getLogger(__name__)

KINDS = {".mp4": "mp4", ".webm": "webm", ".gif": "gif", ".png": "sheet"}  # no suffix: png frames
# x264's speed preset. At 512 px on the demo's frames (2026-12-06, AMD EPYC): veryfast 5.6 ms of CPU
# per frame against 13.5 for x264's default medium, 40.5 dB at crf 20 (medium 41.6, 22% larger);
# veryfast at crf 18 matches medium's 41 dB at 10% more bytes. Encoding runs beside the engine.
X264_PRESET = "veryfast"
# kind -> (PyAV encoder, container format, default crf, highest crf)
CODECS = {"mp4": ("libx264", "mp4", 20, 51), "webm": ("libvpx-vp9", "webm", 31, 63)}
BT709 = 1  # the ITU-R BT.709 code of the colour matrix, primaries and transfer in FFmpeg's enums
TV_RANGE = 1  # "MPEG" (limited) range, what players assume


@functools.cache
def x264_cpu_option() -> dict[str, str]:
    """x264 without its AVX-512 kernels on a CPU that has them, so the same frames always make the same
    file (a resumed batch job remakes what an uninterrupted one would). With them, identical yuv input
    encoded to different bitstreams: 2 to 9 of 36 clips of 32 px in four batch jobs in one process
    (AMD EPYC, 2026-12-06), 0 of 144 without; 512 px encodes no slower (3.7 ms/frame either way)."""
    features: dict[str, bool] = {}
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, 1
        with contextlib.suppress(ImportError):
            features = importlib.import_module(module).__cpu_features__
            break
    if not features.get("AVX512_SKX"):  # x264 uses AVX-512 only with F, CD, BW, DQ and VL
        return {}
    return {"x264-params": "asm=AVX2,SSE2Fast,Cache64"}  # every AVX-512 CPU has these


class FrameWriter(Protocol):
    """Takes H x W x 3 uint8 RGB frames one at a time; `written` counts them."""

    @property
    def written(self) -> int: ...

    def write(self, frame: np.ndarray) -> None: ...


class StoppedEarly(KeyboardInterrupt):
    """Ctrl-C stopped a writer opened with keep_partial=True: the `frames` written so far are
    finalized, playable, in `partial` (None when there was nothing to keep)."""

    def __init__(self, partial: Path | None, frames: int) -> None:
        super().__init__(f"stopped after {frames} frames")
        self.partial, self.frames = partial, frames


def output_kind(path: str | os.PathLike[str]) -> str:
    """ "mp4", "webm", "gif", "sheet" (a .png contact sheet) or "frames" (a folder, no suffix) for an
    output path."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "frames"
    if suffix not in KINDS:
        raise OutputPathError(
            f"Output {str(path)!r} has an unknown type {suffix!r}; use .mp4, .webm, .gif, .png (a contact "
            "sheet) or a folder name without a suffix (png frames)."
        )
    return KINDS[suffix]


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where a stopped render keeps its frames: out.mp4 -> out.partial.mp4, frames -> frames.partial."""
    final = Path(path)
    return final.with_name(f"{final.stem}.partial{final.suffix}")


def check_crf(crf: int | None, kind: str = "mp4") -> int | None:
    """`crf` if the `kind`'s encoder takes it (None: the encoder's default); OutputPathError otherwise."""
    if crf is None or kind not in CODECS:
        return crf
    _, _, _, highest = CODECS[kind]
    if not 0 <= crf <= highest:
        raise OutputPathError(
            f"--crf {crf} is outside the {kind} encoder's range; give 0 (best) to {highest} (smallest)."
        )
    return crf


@functools.cache
def pyav() -> Any:
    """The `av` module, or None (warned once) where PyAV cannot be imported."""
    try:
        import av
    except ImportError as exc:
        log.warning(
            "PyAV cannot be imported (%s): mp4 falls back to OpenCV's mp4v, which browsers do not play; "
            "pip install av for H.264",
            exc,
        )
        return None
    return av


class AvWriter:
    """H.264 mp4 or VP9 webm through PyAV, opened at the first frame (whose size, evened, sets the
    video's). Frames stream into the encoder; only its own lookahead is held in memory."""

    def __init__(self, path: Path, fps: float, kind: str, crf: int | None = None) -> None:
        self.path, self.fps, self.kind = path, fps, kind
        self.encoder, self.format, default_crf, _ = CODECS[kind]
        self.crf = default_crf if check_crf(crf, kind) is None else crf
        self.first: np.ndarray | None = None
        self.written = 0
        self._container: Any = None
        self._stream: Any = None

    def write(self, frame: np.ndarray) -> None:
        frame = _check_frame(frame, self.first)
        if self._stream is None:
            self.first = frame
            self._open(frame.shape[1] & ~1, frame.shape[0] & ~1)
        h, w = self._stream.height, self._stream.width
        av = pyav()
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
        picture = picture.reformat(format="yuv420p", dst_colorspace="itu709")
        picture.pts = self.written
        self._container.mux(self._stream.encode(picture))
        self.written += 1

    def _open(self, width: int, height: int) -> None:
        if width == 0 or height == 0:
            raise OutputPathError(
                f"Frames of {self.first.shape[1]}x{self.first.shape[0]} pixels are too small for "  # type: ignore[union-attr]
                f"{str(self.path)!r}; {self.kind} needs at least 2x2: write a .gif or png frames instead."
            )
        options = {"movflags": "+faststart"} if self.kind == "mp4" else {}
        self._container = pyav().open(str(self.path), "w", format=self.format, container_options=options)
        stream = self._container.add_stream(self.encoder, rate=Fraction(self.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        codec = stream.codec_context
        codec.colorspace = codec.color_primaries = codec.color_trc = BT709
        codec.color_range = TV_RANGE
        stream.options = {"crf": str(self.crf)}
        if self.kind == "mp4":  # one thread: it shares the cores with the engine and the renderer (2 threads
            # made 512 px end to end slower, 67 -> 61 frames/s on 2 cores)
            stream.options |= {"preset": X264_PRESET, "threads": "1", **x264_cpu_option()}
        if self.kind == "webm":  # constant quality (b=0), multi-threaded rows, a practical speed
            stream.options |= {"b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "6"}
        self._stream = stream

    def close(self) -> None:
        """Flush the encoder and finish the container (with faststart, the index moves to the front)."""
        if self._container is None:
            return
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
            self._container = None

    def abort(self) -> None:
        """Release the file without finishing it (it is deleted next)."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None


class OpenCvMp4Writer:
    """The fallback without PyAV: OpenCV's MPEG-4 Part 2 ("mp4v"). Plays in desktop players, not in
    browsers."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.first: np.ndarray | None = None
        self._writer: Any = None
        self.written = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        frame = _check_frame(frame, self.first)
        if self._writer is None:
            self.first = frame
            size = (frame.shape[1], frame.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, size)
            if not self._writer.isOpened():
                raise OutputPathError(
                    f"OpenCV cannot write mp4v to {str(self.path)!r}; install PyAV (pip install av) or "
                    "write a .gif or png frames instead."
                )
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    abort = close


class _CollectingWriter:
    """Writers that need every frame before they can write (Pillow writes a gif in one go), so they
    are meant for clips, not for endless streams."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames: list[np.ndarray] = []

    @property
    def written(self) -> int:
        return len(self.frames)

    def write(self, frame: np.ndarray) -> None:
        self.frames.append(_check_frame(frame, self.frames[0] if self.frames else None))

    def close(self) -> None:
        if self.frames:
            self.save(self.frames)

    def abort(self) -> None:
        self.frames = []

    def save(self, frames: list[np.ndarray]) -> None:
        raise NotImplementedError


class GifWriter(_CollectingWriter):
    """Pillow animated gif, looping."""

    def __init__(self, path: Path, fps: float) -> None:
        super().__init__(path)
        self.fps = fps

    def save(self, frames: list[np.ndarray]) -> None:
        first, *rest = (Image.fromarray(frame) for frame in frames)
        duration = max(10, round(1000 / self.fps / 10) * 10)  # gif delays are centiseconds
        first.save(self.path, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0)


class ContactSheetWriter(_CollectingWriter):
    """The frames in a grid (see `contact_sheet`), one png."""

    def __init__(self, path: Path, columns: int | None = None) -> None:
        super().__init__(path)
        self.columns = columns

    def save(self, frames: list[np.ndarray]) -> None:
        Image.fromarray(contact_sheet(frames, self.columns)).save(self.path, format="PNG")


class PngFramesWriter:
    """frame_00000.png, frame_00001.png, ... in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written = 0

    def write(self, frame: np.ndarray) -> None:
        Image.fromarray(_check_frame(frame, None)).save(self.folder / f"frame_{self.written:05d}.png")
        self.written += 1

    def close(self) -> None:
        pass

    abort = close


Writer = AvWriter | OpenCvMp4Writer | GifWriter | ContactSheetWriter | PngFramesWriter


def make_writer(path: Path, kind: str, fps: float, crf: int | None = None) -> Writer:
    """The writer of `kind` (see `output_kind`) that writes to `path` (a file, or the folder of frames)."""
    if kind == "frames":
        return PngFramesWriter(path)
    if kind == "gif":
        return GifWriter(path, fps)
    if kind == "sheet":
        return ContactSheetWriter(path)
    check_crf(crf, kind)
    if pyav() is not None:
        return AvWriter(path, fps, kind, crf)
    if kind == "mp4":
        return OpenCvMp4Writer(path, fps)
    raise OutputPathError(
        f"Writing {str(path)!r} needs PyAV for the VP9 encoder; pip install av, or write an .mp4 instead."
    )


@contextlib.contextmanager
def open_writer(
    path: str | os.PathLike[str],
    fps: float = 25.0,
    *,
    force: bool = True,
    crf: int | None = None,
    keep_partial: bool = False,
) -> Iterator[FrameWriter]:
    """A writer for `path`, chosen by its suffix (see `output_kind`), committed atomically on success.

    force=False refuses to replace an existing output (OutputPathError). `crf` sets the quality of
    mp4 and webm (None: the encoder's default). keep_partial=True: Ctrl-C (KeyboardInterrupt) inside
    the block finalizes the frames written so far under `partial_path(path)` and raises StoppedEarly;
    otherwise, and on every other error, nothing is left behind. A complete write removes a stale
    partial output of `path`.
    """
    final = Path(path)
    kind = output_kind(final)
    if final.exists() and not force:
        raise OutputPathError(f"The output {str(final)!r} already exists; pass --force to overwrite it.")
    atomic = atomic_dir if kind == "frames" else atomic_file
    with atomic(final) as tmp:
        writer = make_writer(tmp, kind, fps, crf)
        try:
            yield writer
        except KeyboardInterrupt:
            if not keep_partial:
                writer.abort()
                raise
            kept = _keep_partial(writer, tmp, partial_path(final)) if writer.written else None
            raise StoppedEarly(kept, writer.written) from None
        except BaseException:
            writer.abort()
            raise
        writer.close()
    _remove(partial_path(final))


def _keep_partial(writer: Writer, tmp: Path, partial: Path) -> Path | None:
    """Finalize `writer` and move what it wrote from `tmp` to `partial` (atomically); None if that fails."""
    try:
        writer.close()
        if tmp.is_dir():
            with atomic_dir(partial) as folder:
                for file in tmp.iterdir():
                    os.replace(file, folder / file.name)
        else:
            with atomic_file(partial) as file:
                os.replace(tmp, file)
    except Exception:  # a second failure must not hide the interrupt
        log.exception("could not keep the partial output %s", partial)
        return None
    return partial


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_frames(
    frames: Iterable[np.ndarray], path: str | os.PathLike[str], fps: float = 25.0, *, crf: int | None = None
) -> Path:
    """Write all `frames` to `path` (mp4, webm, gif, png contact sheet or a folder of pngs); returns the
    path."""
    with open_writer(path, fps, crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def contact_sheet(frames: Sequence[np.ndarray], columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Frames in a grid, left to right then top to bottom, `gap` white pixels between; 8 columns by
    default (a 32-frame clip is 8 x 4)."""
    if not frames:
        raise ValueError("a contact sheet needs at least one frame")
    n = len(frames)
    columns = min(columns or 8, n)
    rows = math.ceil(n / columns)
    h, w = frames[0].shape[:2]
    sheet = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), 255, np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        sheet[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = frame
    return sheet


def _check_frame(frame: np.ndarray, first: np.ndarray | None) -> np.ndarray:
    """An H x W x 3 uint8 frame, of the size of the `first` one written (video frames share one size)."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be H x W x 3 uint8 RGB, got {frame.dtype} {frame.shape}")
    if first is not None and frame.shape != first.shape:
        raise ValueError(f"all frames must have one size: got {frame.shape} after {first.shape}")
    return np.ascontiguousarray(frame)
