"""Image in, model input out; model output in, uint8 frames out. Exactly specified, because the C++
host (`cpp/`) implements the same steps and must produce the same frames for the same image and seed.

Preprocess an H x W image (gray, RGB or RGBA; uint8, uint16 or float in [0, 1]) to the generator's
`image` input, float32 [3, S, S] in [-1, 1]:

1. Channels: gray is replicated to RGB; alpha is dropped (colour kept as stored, not composited).
2. Scale to [0, 255] float32: uint8 as is, uint16 / 257, float * 255.
3. Fit to a square ("crop", the default): the central square of side min(H, W), starting at row
   (H - side) // 2 and column (W - side) // 2. "letterbox" instead pads the short side to a square,
   (side - H) // 2 rows above / (side - W) // 2 columns left, with mid-grey 127.5.
4. Resize the square to S x S: unchanged if equal; OpenCV INTER_AREA if shrinking; INTER_LINEAR
   (half-pixel centres, edge replicated) if enlarging; always on float32, never on uint8.
5. Map to [-1, 1]: x / 127.5 - 1, then HWC -> CHW.

Postprocess a generated video [3, T, S, S] (or a batch [B, 3, T, S, S]) in [-1, 1] to T frames of
S x S x 3 uint8 RGB: round((x + 1) * 127.5) half to even, clipped to [0, 255].
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

Fit = Literal["crop", "letterbox"]
FITS: tuple[str, ...] = ("crop", "letterbox")
LETTERBOX_FILL = 127.5


def to_rgb255(image: np.ndarray) -> np.ndarray:
    """Steps 1-2: any supported array -> float32 H x W x 3 in [0, 255]."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W gray, RGB or RGBA image, got shape {image.shape}")
    rgb = image[:, :, :3]
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32)
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) / np.float32(257.0)
    if np.issubdtype(rgb.dtype, np.floating):
        return rgb.astype(np.float32) * np.float32(255.0)
    raise ValueError(f"unsupported pixel type {rgb.dtype}; use uint8, uint16 or float in [0, 1]")


def fit_square(rgb: np.ndarray, fit: Fit = "crop") -> np.ndarray:
    """Step 3: the central square ("crop") or the image padded to a square ("letterbox")."""
    h, w = rgb.shape[:2]
    if fit == "crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return rgb[top : top + side, left : left + side]
    if fit == "letterbox":
        side = max(h, w)
        out = np.full((side, side, 3), LETTERBOX_FILL, dtype=np.float32)
        top, left = (side - h) // 2, (side - w) // 2
        out[top : top + h, left : left + w] = rgb
        return out
    raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")


def resize_square(square: np.ndarray, size: int) -> np.ndarray:
    """Step 4: area averaging to shrink, bilinear to enlarge, on float32."""
    side = square.shape[0]
    if side == size:
        return np.ascontiguousarray(square, dtype=np.float32)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(
        np.ascontiguousarray(square, dtype=np.float32), (size, size), interpolation=interpolation
    )


def prepare_image(image: np.ndarray, size: int, fit: Fit = "crop") -> np.ndarray:
    """Steps 1-5: an image array -> float32 [3, size, size] in [-1, 1]."""
    square = resize_square(fit_square(to_rgb255(image), fit), size)
    return np.ascontiguousarray((square / np.float32(127.5) - np.float32(1.0)).transpose(2, 0, 1))


def to_uint8_frames(video: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """[3, T, S, S] -> [T, S, S, 3] (or [B, 3, T, S, S] -> [B, T, S, S, 3]) uint8 RGB, contiguous.

    It runs beside the engine on the same cores for every frame, so it is lean: the arithmetic in place
    (same float32 steps as the formula above), and the planar-to-interleaved copy by cv2.merge over a
    whole clip at once, ~40x faster than numpy's strided copy of the moved axis. overwrite=True (for a
    caller that owns a float32 `video` and is done with it) computes in `video` itself: no new 6 MB
    buffer per paper clip for the kernel to zero.
    """
    if overwrite and video.dtype == np.float32 and video.flags.writeable:
        scaled = video
        scaled += np.float32(1.0)
    else:
        scaled = np.asarray(video, dtype=np.float32) + np.float32(1.0)
    scaled *= np.float32(127.5)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    planes = scaled.astype(np.uint8)
    *lead, channels, t, h, w = planes.shape
    clips = planes.reshape(-1, channels, t * h, w)
    frames = np.empty((clips.shape[0], t * h, w, channels), np.uint8)
    for clip, out in zip(clips, frames, strict=True):
        cv2.merge(list(clip), dst=out)
    return frames.reshape(*lead, t, h, w, channels)
