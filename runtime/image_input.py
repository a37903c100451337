"""Images in: a file path, a numpy array or a PIL image, checked and turned into the array that
`runtime.imaging.prepare_image` (the exact pre-processing spec shared with the C++ host) takes.

Every way an input can be wrong is an ImageError naming the input and the fix: missing, unreadable,
not an image, truncated, an unsupported pixel type, or a size outside [MIN_SIDE, MAX_SIDE] on a side.
Files are decoded with Pillow (which notices truncation and applies EXIF orientation); 16-bit RGB
files, which Pillow reduces to 8 bits, are decoded again with OpenCV to keep all 16.

A JPEG that the model will shrink anyway is decoded at reduced scale, by libjpeg's DCT scaling: 1/d
with d the largest of 8, 4, 2, 1 not above min(W // S, H // S) for a model of side S, so both sides
stay at least S. A 12-megapixel photo decoded in full costs more CPU than generating its clip; at
1/8 it costs a few milliseconds. The C++ host decodes with the same rule (`cpp/src/image_jpeg.cpp`).

`Geometry` maps output frames back to the input's own size and aspect (the optional upscale).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from runtime.errors import ImageError
from runtime.imaging import FITS, Fit, prepare_image

MIN_SIDE = 2
MAX_SIDE = 16384
ImageSource = str | os.PathLike[str] | np.ndarray | Image.Image
_PIL_LIMIT_LOCK = threading.Lock()


def load_image(source: ImageSource, min_side: int | None = None) -> np.ndarray:
    """A path, numpy array or PIL image -> H x W (x 1/3/4) uint8, uint16 or float array, checked.

    min_side: a JPEG file may come back at reduced scale, both sides still at least this (see above)."""
    return decode(source, min_side)[0]


def decode(source: ImageSource, min_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """`load_image`, and the image's full (height, width), which a reduced-scale decode does not show."""
    if isinstance(source, np.ndarray):
        array = check_array(source, "The image array")
    elif isinstance(source, Image.Image):
        array = check_array(pil_to_array(source), "The PIL image")
    elif isinstance(source, str | os.PathLike):
        return read_image_file(Path(source), min_side)
    else:
        raise ImageError(
            f"A {type(source).__name__} cannot be used as an image; pass a file path, numpy array or PIL "
            "image."
        )
    return array, (array.shape[0], array.shape[1])


def read_image_file(path: Path, min_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode an image file with every failure as one ImageError sentence; also its full (height, width)."""
    where = f"Image {str(path)!r}"
    if not path.exists():
        raise ImageError(f"{where} does not exist; check the path.")
    if path.is_dir():
        raise ImageError(f"{where} is a folder, not an image file; pass one image file.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{where} cannot be read ({exc.strerror or exc}); check its permissions.") from None
    if not data:
        raise ImageError(f"{where} is an empty file; re-save or re-download it.")
    with _room_for_max_side():
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError(
                f"{where} is not an image file Pillow can read; use a PNG, JPEG, WebP, BMP or TIFF image."
            ) from None
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{where} is too large ({exc}); downscale it first.") from None
        width, height = image.size
        check_size(height, width, where)
        sixteen_bit_rgb = image.mode in ("RGB", "RGBA") and any(";16" in str(t.args) for t in image.tile)
        if min_side and not sixteen_bit_rgb:
            image.draft(image.mode, (min_side, min_side))  # JPEG only; other formats ignore it
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{where} is truncated or corrupt ({exc}); re-save or re-download it.") from None
    if sixteen_bit_rgb:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if decoded is not None and decoded.dtype == np.uint16 and decoded.ndim == 3:
            code = cv2.COLOR_BGRA2RGBA if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB
            return check_array(cv2.cvtColor(decoded, code), where), (height, width)
    if image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):  # turned by a quarter
        width, height = height, width
    return check_array(pil_to_array(ImageOps.exif_transpose(image)), where), (height, width)


@contextmanager
def _room_for_max_side() -> Iterator[None]:
    """Let Pillow open anything up to MAX_SIDE x MAX_SIDE; its default bomb limit is lower."""
    with _PIL_LIMIT_LOCK:
        before = Image.MAX_IMAGE_PIXELS
        if before is not None:
            Image.MAX_IMAGE_PIXELS = max(before, MAX_SIDE * MAX_SIDE)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = before


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image -> gray, RGB or RGBA array; 16-bit gray stays uint16, other modes become RGB."""
    if image.mode in ("L", "RGB", "RGBA"):
        return np.asarray(image)
    if image.mode.startswith("I;16") or image.mode == "I":
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    if image.mode == "LA":
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))


def check_size(height: int, width: int, where: str) -> None:
    if min(height, width) < MIN_SIDE:
        raise ImageError(
            f"{where} is {width}x{height} pixels; an image needs at least {MIN_SIDE} pixels on each side, "
            "so pass a real photo."
        )
    if max(height, width) > MAX_SIDE:
        raise ImageError(
            f"{where} is {width}x{height} pixels, larger than {MAX_SIDE} on a side; downscale it first."
        )


def check_array(array: np.ndarray, where: str) -> np.ndarray:
    """Shape, pixel type, size and (for floats) finiteness of an image array."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(f"{where} has shape {array.shape}; pass an H x W gray, RGB or RGBA image.")
    is_float = np.issubdtype(array.dtype, np.floating)
    if array.dtype not in (np.uint8, np.uint16) and not is_float:
        raise ImageError(f"{where} has pixel type {array.dtype}; use uint8, uint16, or float in [0, 1].")
    check_size(array.shape[0], array.shape[1], where)
    if is_float and not np.isfinite(array).all():
        raise ImageError(f"{where} contains NaN or infinite values; pass finite pixel values in [0, 1].")
    return array


@dataclass(frozen=True)
class Geometry:
    """The input's size and fit, to map model-size frames back onto the input (the optional upscale).

    letterbox: frames come back at the input's own W x H, the padding cut away.
    crop: frames come back as the cropped central square at the input's scale, min(H, W) on a side
    (the model never saw the rest of the picture).
    """

    height: int
    width: int
    fit: Fit

    def restore(self, frame: np.ndarray) -> np.ndarray:
        h, w = self.height, self.width
        side = max(h, w) if self.fit == "letterbox" else min(h, w)
        interpolation = cv2.INTER_CUBIC if side > frame.shape[0] else cv2.INTER_AREA
        square = cv2.resize(frame, (side, side), interpolation=interpolation)
        if self.fit == "letterbox":
            top, left = (side - h) // 2, (side - w) // 2
            square = square[top : top + h, left : left + w]
        return np.ascontiguousarray(square)


def prepare(source: ImageSource, size: int, fit: Fit = "crop") -> tuple[np.ndarray, Geometry]:
    """Load, check and pre-process an image: float32 [3, size, size] in [-1, 1], and its geometry."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    array, (height, width) = decode(source, size)
    return prepare_image(array, size, fit), Geometry(height, width, fit)
