"""Finding and reading time-lapse clips: Sky Time-lapse folders of frames, and folders of video files.

Two sources, one interface (`Clip`): a clip has a key (its path relative to the data root, used to
name cache files), a frame count, and `read(size)`, which decodes every frame and brings it to the
model's resolution with the runtime's own preprocessing (central square crop, area resize), so the
model trains on exactly what it is given at inference. Torch-free.

Layouts:
- Sky Time-lapse: `<root>/<split>/<video>/<clip>/*.jpg` (or .png), frames in natural name order.
- Video files: every .mp4 / .avi / .mov / .mkv / .webm under `<root>/<split>`, or under `<root>` when
  it has no such folder, is one clip, decoded with OpenCV.

Bad data, as documented in the README: an empty or missing folder stops with a `DataError`; a clip
with fewer frames than a training window is skipped with a warning naming it (Sky Time-lapse has
some); a file that cannot be decoded stops with a `DataError` naming the file, when it is first read
(the flow cache reads every clip once before training starts, so this happens up front).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.errors import DataError
from runtime.imaging import prepare_image, to_uint8_frames

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def _natural_key(path: Path) -> list[int | str]:
    """Sort frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _to_model_frame(bgr: np.ndarray | None, size: int, where: str) -> np.ndarray:
    """An OpenCV BGR frame -> uint8 RGB [size, size, 3], through runtime.imaging's preprocessing."""
    if bgr is None or bgr.size == 0:
        raise DataError(f"{where} cannot be decoded; replace or delete the file.")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return to_uint8_frames(prepare_image(rgb, size)[:, None])[0]


@dataclass(frozen=True)
class Clip:
    """One clip: a folder of frame images, or one video file."""

    key: str  # path relative to the data root, '/'-separated: names its cache files
    path: Path  # the clip folder or the video file
    frame_files: tuple[Path, ...] = ()  # frames of a folder clip; empty for a video file
    num_frames: int = 0

    @property
    def is_video(self) -> bool:
        return not self.frame_files

    def read(self, size: int) -> np.ndarray:
        """Every frame at the model's resolution: uint8 [N, size, size, 3] RGB."""
        if self.is_video:
            return _read_video(self.path, size)
        return np.stack(
            [
                _to_model_frame(cv2.imread(str(f), cv2.IMREAD_COLOR), size, repr(str(f)))
                for f in self.frame_files
            ]
        )


@contextlib.contextmanager
def _opened_video(path: Path) -> Iterator[cv2.VideoCapture]:
    """An OpenCV capture of `path`, released on the way out; DataError if OpenCV cannot open it."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataError(
                f"Video {str(path)!r} cannot be opened by OpenCV; re-encode it (e.g. to H.264 mp4)."
            )
        yield capture
    finally:
        capture.release()


def _read_video(path: Path, size: int) -> np.ndarray:
    frames = []
    with _opened_video(path) as capture:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(_to_model_frame(bgr, size, f"Frame {len(frames)} of {str(path)!r}"))
    if not frames:
        raise DataError(f"Video {str(path)!r} has no decodable frames; re-encode or delete it.")
    return np.stack(frames)


def _count_video_frames(path: Path) -> int:
    """Frames OpenCV can decode (grabbed, not converted): container counts are often wrong."""
    count = 0
    with _opened_video(path) as capture:
        while capture.grab():
            count += 1
    return count


def _has_videos(folder: Path) -> bool:
    return any(p.suffix.lower() in VIDEO_SUFFIXES for p in folder.rglob("*"))


def _split_dir(root: Path, split: str | None) -> Path:
    if not root.is_dir():
        raise DataError(f"Data folder {str(root)!r} does not exist; check the --data path.")
    if split is None:
        return root
    folder = root / split
    if not folder.is_dir() and _has_videos(root):
        log.info("%s has no %s folder; using every video file under it", root, split)
        return root
    if not folder.is_dir():
        splits = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise DataError(
            f"Data folder {str(root)!r} has no split {split!r} (it has: "
            f"{', '.join(splits) or 'no folders'}); pass --split with one of those."
        )
    return folder


def find_clips(root: str | Path, split: str | None = None, min_frames: int = 1) -> list[Clip]:
    """All clips under `root` (Sky Time-lapse layout or video files), sorted by key.

    Clips shorter than `min_frames` are skipped with a warning; no clip at all is a DataError.
    """
    root = Path(root)
    folder = _split_dir(root, split)
    videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    candidates: list[Clip] = []
    if videos:
        for video in videos:
            key = video.relative_to(root).as_posix()
            candidates.append(Clip(key, video, (), _count_video_frames(video)))
    else:
        for clip_dir in sorted(p for p in folder.glob("*/*") if p.is_dir()):
            files = sorted(
                (
                    f
                    for f in clip_dir.iterdir()
                    if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
                ),
                key=_natural_key,
            )
            if files:
                candidates.append(
                    Clip(clip_dir.relative_to(root).as_posix(), clip_dir, tuple(files), len(files))
                )
    if not candidates:
        raise DataError(
            f"No clips found in {str(folder)!r}; expected <video>/<clip>/*.jpg folders (Sky Time-lapse "
            f"layout) or video files ({', '.join(VIDEO_SUFFIXES)})."
        )
    clips = [c for c in candidates if c.num_frames >= min_frames]
    short = [c for c in candidates if c.num_frames < min_frames]
    for clip in short[:5]:
        log.warning(
            "skipping %s: %d frames, fewer than the %d a window needs", clip.path, clip.num_frames, min_frames
        )
    if len(short) > 5:
        log.warning("skipping %d more clips shorter than %d frames", len(short) - 5, min_frames)
    if not clips:
        raise DataError(
            f"Every clip in {str(folder)!r} has fewer than {min_frames} frames (the longest has "
            f"{max(c.num_frames for c in candidates)}); use longer clips or a model with fewer frames."
        )
    return clips
