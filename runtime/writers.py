"""Frames out: mp4 (OpenCV), gif (Pillow), a folder of png frames, and a contact sheet (one png, frames
in a grid). Every writer is atomic: it writes beside the final name and renames into place only when
the last frame is in, so an error or Ctrl-C never leaves a half-written file (`runtime.fsutil`).

mp4 uses H.264 ("avc1") where this OpenCV build can encode it and MPEG-4 Part 2 ("mp4v") otherwise.
The opencv-python wheels on PyPI ship FFmpeg without a software H.264 encoder, so there it is mp4v,
which every desktop player plays (browsers want H.264: re-encode with ffmpeg for the web).

    with open_writer("out.mp4", fps=25) as writer:
        for frame in generator.run("photo.jpg"):
            writer.write(frame)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from PIL import Image

from runtime.errors import OutputPathError
from runtime.fsutil import atomic_dir, atomic_file

log = logging.getLogger(__name__)

KINDS = {".mp4": "mp4", ".gif": "gif", ".png": "sheet"}  # no suffix: a folder of png frames
MP4_CODECS = ("avc1", "mp4v")  # preferred first


class FrameWriter(Protocol):
    """Takes H x W x 3 uint8 RGB frames one at a time."""

    def write(self, frame: np.ndarray) -> None: ...


def output_kind(path: str | os.PathLike[str]) -> str:
    """ "mp4", "gif", "sheet" (a .png contact sheet) or "frames" (a folder, no suffix) for an output path."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "frames"
    if suffix not in KINDS:
        raise OutputPathError(
            f"Output {str(path)!r} has an unknown type {suffix!r}; use .mp4, .gif, .png (a contact sheet) or "
            "a folder name without a suffix (png frames)."
        )
    return KINDS[suffix]


@functools.cache
def mp4_codec() -> str:
    """The best mp4 codec this OpenCV can encode with, found once per process by a tiny test write."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own complaints while probing
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        with tempfile.TemporaryDirectory(prefix="dtvnet-codec-") as tmp:
            for codec in MP4_CODECS:
                writer = cv2.VideoWriter(
                    str(Path(tmp) / "probe.mp4"), cv2.VideoWriter.fourcc(*codec), 25, (64, 64)
                )
                ok = writer.isOpened()
                if ok:
                    writer.write(np.zeros((64, 64, 3), np.uint8))
                writer.release()
                if ok:
                    return codec
    finally:
        cv2.utils.logging.setLogLevel(previous)
    raise OutputPathError("This OpenCV build cannot write mp4 files; write a .gif or png frames instead.")


class Mp4Writer:
    """OpenCV VideoWriter opened at the first frame (whose size sets the video's)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.codec = mp4_codec()
        self.first: np.ndarray | None = None
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        frame = _check_frame(frame, self.first)
        if self._writer is None:
            self.first = frame
            size = (frame.shape[1], frame.shape[0])
            self._writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter.fourcc(*self.codec), self.fps, size
            )
            if not self._writer.isOpened():
                raise OutputPathError(
                    f"OpenCV cannot open {str(self.path)!r} for writing; choose another path."
                )
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


class _CollectingWriter:
    """Writers that need every frame before they can write (Pillow writes a gif in one go), so they
    are meant for clips, not for endless streams."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames: list[np.ndarray] = []

    def write(self, frame: np.ndarray) -> None:
        self.frames.append(_check_frame(frame, self.frames[0] if self.frames else None))

    def close(self) -> None:
        if self.frames:
            self.save(self.frames)

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
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        Image.fromarray(_check_frame(frame, None)).save(self.folder / f"frame_{self.frames:05d}.png")
        self.frames += 1


@contextlib.contextmanager
def open_writer(
    path: str | os.PathLike[str], fps: float = 25.0, *, force: bool = True
) -> Iterator[FrameWriter]:
    """A writer for `path`, chosen by its suffix (see `output_kind`), committed atomically on success.

    force=False refuses to replace an existing output (OutputPathError).
    """
    final = Path(path)
    kind = output_kind(final)
    if final.exists() and not force:
        raise OutputPathError(f"The output {str(final)!r} already exists; pass --force to overwrite it.")
    if kind == "frames":
        with atomic_dir(final) as tmp:
            yield PngFramesWriter(tmp)
        return
    with atomic_file(final) as tmp:
        writer: Mp4Writer | GifWriter | ContactSheetWriter
        if kind == "mp4":
            writer = Mp4Writer(tmp, fps)
        elif kind == "gif":
            writer = GifWriter(tmp, fps)
        else:
            writer = ContactSheetWriter(tmp)
        try:
            yield writer
        finally:
            writer.close()


def write_frames(frames: Iterable[np.ndarray], path: str | os.PathLike[str], fps: float = 25.0) -> Path:
    """Write all `frames` to `path` (mp4, gif, png contact sheet or a folder of pngs); returns the path."""
    with open_writer(path, fps) as writer:
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
