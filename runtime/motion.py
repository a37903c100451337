"""Motion vectors: drawn from a seed, given by the caller, or transferred from a reference clip.

- Seeded: vector j of a seed is `runtime.seeded_normal(seed, dim, 1, first=j)`, the exactly specified
  N(0, I) stream the C++ host shares, so a seed names the same motion everywhere.
- Given: a [dim] (or [1, dim]) array, or a .npy file holding one; it must be finite, and every entry
  within +-MAX_MOTION_ABS (1000): the model was trained on N(0, I) vectors, so an entry beyond that
  is a mistake (wrong units, a vector not standardized), refused rather than turned into frames.
- Transferred: the first `frames` frames of a video file or a folder of frames are pre-processed to
  the model size exactly like the input image (`runtime.imaging`), rounded to uint8, turned into
  optical flow (`runtime.flow.clip_flows`), and the flow encoder maps that to a vector.
- Chained clips glide between seeded key vectors by spherical interpolation (`schedule_vector`), so
  the motion of a long video changes without jumps and keeps the norm a N(0, I) vector has.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from runtime.errors import ImageError, MotionError
from runtime.flow import clip_flows
from runtime.image_input import load_image
from runtime.imaging import Fit, prepare_image, to_uint8_frames
from runtime.seeded_normal import seeded_normal

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VECTOR_SUFFIX = ".npy"
MAX_SEED = 2**64
MAX_MOTION_ABS = 1000.0  # |z_i| <= this for every entry; the C++ host's dtvnet::kMaxMotionAbs is the same
MotionSource = np.ndarray | Sequence[float] | str | os.PathLike[str]


def fresh_seed() -> int:
    """A random seed short enough to type back in (the instance reports it so a run can be repeated)."""
    return secrets.randbelow(2**32)


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < MAX_SEED:
        raise MotionError(f"Seed {seed!r} is not an integer in [0, 2**64); pass a seed such as 0 or 1234.")
    return int(seed)


def seeded_vector(seed: int, dim: int, index: int = 0) -> np.ndarray:
    """Vector `index` of the seed's N(0, I) stream, float32 [dim]."""
    return seeded_normal(check_seed(seed), dim, 1, index)[0]


def check_vector(
    vector: np.ndarray | Sequence[float], dim: int, where: str = "The motion vector"
) -> np.ndarray:
    """A [dim] or [1, dim] array of finite numbers within +-MAX_MOTION_ABS -> float32 [dim]."""
    try:
        array = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError):
        raise MotionError(f"{where} is not an array of numbers; pass {dim} numbers.") from None
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.shape != (dim,):
        raise MotionError(
            f"{where} has shape {array.shape} but this model takes {dim} numbers (shape ({dim},)); pass a "
            f"vector of that size, or a seed instead."
        )
    if not np.isfinite(array).all():
        raise MotionError(f"{where} contains NaN or infinite values; pass finite numbers.")
    largest = float(np.abs(array).max(initial=0.0))
    if largest > MAX_MOTION_ABS:
        raise MotionError(
            f"{where} has an entry of magnitude {largest:.3g}, beyond the {MAX_MOTION_ABS:g} this model "
            "accepts (it was trained on N(0, I) vectors); pass a standardized vector, or a seed instead."
        )
    return array.astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from a (t=0) to b (t=1): norms are interpolated, directions rotated."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return ((1.0 - t) * a + t * b).astype(np.float32)
    cos = float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))
    angle = np.arccos(cos)
    if angle < 1e-6:
        return ((1.0 - t) * a + t * b).astype(np.float32)
    direction = (np.sin((1.0 - t) * angle) * a / na + np.sin(t * angle) * b / nb) / np.sin(angle)
    return (direction * ((1.0 - t) * na + t * nb)).astype(np.float32)


def schedule_vector(seed: int, dim: int, clip: int, transition: int) -> np.ndarray:
    """Motion for clip `clip` of a chained video: key vectors j = 0, 1, ... of the seed sit at clips
    j * transition, and the clips between glide from one key to the next. transition=1: a new
    vector every clip (clip k uses vector k)."""
    if transition < 1:
        raise ValueError(f"transition must be at least 1 clip, got {transition}")
    key, step = divmod(clip, transition)
    if step == 0:
        return seeded_vector(seed, dim, key)
    return slerp(seeded_vector(seed, dim, key), seeded_vector(seed, dim, key + 1), step / transition)


def read_vector_file(path: Path, dim: int) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MotionError(f"Motion file {str(path)!r} is not a readable .npy array ({exc}).") from None
    return check_vector(data, dim, f"The motion vector in {str(path)!r}")


def read_reference_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first `count` frames of a video file or of a folder of image files (sorted by name)."""
    where = f"Reference {str(path)!r}"
    if not path.exists():
        raise MotionError(f"{where} does not exist; pass a video file or a folder of frames.")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if len(files) < count:
            raise MotionError(
                f"{where} holds {len(files)} frame image(s); motion transfer needs at least {count}."
            )
        try:
            return [load_image(f) for f in files[:count]]
        except ImageError as exc:
            raise MotionError(str(exc)) from None
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MotionError(
                f"{where} cannot be opened as a video; use an mp4, avi or mov file, or a folder of frames."
            )
        frames: list[np.ndarray] = []
        while len(frames) < count:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if len(frames) < count:
        raise MotionError(
            f"{where} has {len(frames)} readable frame(s); motion transfer needs at least {count}."
        )
    return frames


def reference_flows(frames: list[np.ndarray], size: int, fit: Fit = "crop") -> np.ndarray:
    """Frames -> the flow encoder's input, float32 [1, 2, T, size, size] (pixels at model scale)."""
    video = np.stack([prepare_image(frame, size, fit) for frame in frames], axis=1)  # [3, T, S, S]
    return clip_flows(to_uint8_frames(video))[None]
