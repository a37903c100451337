"""The size frames come out at, and how they get there (`size=` and `render=` of `Generator`).

size: None (the model's side), a number of pixels (the side of the square for fit="crop", the long
side for "letterbox") or "input" (the photo's own: min(H, W) for crop, max(H, W) for letterbox).
render: "guided" (the model's motion and colour, the photo's detail: `runtime.hd`; the default above
the model's side) or "resize" (plain interpolation of the model's frames; the default at or below it,
where the model's frames already hold all the detail the output can show).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from runtime.errors import DTVNetError
from runtime.hd import RENDERS, Render
from runtime.image_input import MAX_SIDE, Geometry
from runtime.imaging import Fit, fit_square, resize_square, to_rgb255

INPUT = "input"
SizeRequest = int | Literal["input"] | None


class SizeError(DTVNetError, ValueError):
    """An output size or render mode that cannot be made (zero, negative, too large, not a number)."""


def check_size(size: object) -> SizeRequest:
    """`size` as given, checked: None, "input" or a whole number of pixels in [1, MAX_SIDE]."""
    if size is None or size == INPUT:
        return size  # type: ignore[return-value]
    if isinstance(size, str):
        try:
            size = int(size.strip())
        except ValueError:
            raise SizeError(
                f"Output size {size!r} is not a number; pass a side in pixels (such as 512) or 'input'."
            ) from None
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise SizeError(
            f"Output size {size!r} is not a whole number; pass a side in pixels (such as 512) or 'input'."
        )
    if not 1 <= size <= MAX_SIDE:
        raise SizeError(
            f"Output size {int(size)} is outside 1..{MAX_SIDE} pixels; pass a side in that range."
        )
    return int(size)


def check_render(render: object) -> Render | None:
    if render is None or render in RENDERS:
        return render  # type: ignore[return-value]
    raise SizeError(f"render={render!r} is not a render mode; use one of {', '.join(RENDERS)}.")


@dataclass(frozen=True)
class OutputSize:
    """Where one clip's frames go: a square of `side` pixels, rendered by `render`, then (letterbox) the
    bars cut away to `height` x `width`."""

    side: int
    height: int
    width: int
    render: Render
    fit: Fit

    @property
    def hd(self) -> bool:
        return self.render == "guided"

    def crop(self, square: np.ndarray) -> np.ndarray:
        """A `side`-square frame -> the output frame (letterbox: the padding cut away)."""
        if self.fit != "letterbox" or (self.height, self.width) == (self.side, self.side):
            return square
        top, left = (self.side - self.height) // 2, (self.side - self.width) // 2
        return np.ascontiguousarray(square[top : top + self.height, left : left + self.width])

    def resize(self, frame: np.ndarray) -> np.ndarray:
        """A model-size frame interpolated to the output's square (render="resize"): bicubic to enlarge,
        area averaging to shrink, as the former `upscale` did."""
        if frame.shape[0] == self.side:
            return frame
        enlarge = self.side > frame.shape[0]
        return cv2.resize(
            frame, (self.side, self.side), interpolation=cv2.INTER_CUBIC if enlarge else cv2.INTER_AREA
        )


def plan(size: SizeRequest, render: Render | None, geometry: Geometry, model_side: int) -> OutputSize | None:
    """The output of one photo, or None for the model's own frames (size None)."""
    if size is None:
        return None
    h, w = geometry.height, geometry.width
    long_side = max(h, w)
    own = long_side if geometry.fit == "letterbox" else min(h, w)
    side = own if size == INPUT else int(size)
    if geometry.fit == "letterbox":
        height, width = max(1, round(h * side / long_side)), max(1, round(w * side / long_side))
    else:
        height = width = side
    chosen: Render = render or ("guided" if side > model_side else "resize")
    if side <= model_side:
        chosen = "resize"  # nothing to add: the model's frames hold all the detail this size shows
    return OutputSize(side, height, width, chosen, geometry.fit)


def photo_square(image: np.ndarray, side: int, fit: Fit) -> np.ndarray:
    """The photo as the model saw it (same crop or letterbox) at `side` pixels: H x W x 3 uint8 RGB,
    the detail that guided rendering adds back."""
    square = resize_square(fit_square(to_rgb255(image), fit), side)
    return np.clip(np.rint(square), 0, 255).astype(np.uint8)


def decode_side(size: SizeRequest, model_side: int) -> int | None:
    """The smallest side a reduced-scale JPEG decode may give (None: decode in full)."""
    if size is None:
        return model_side
    if size == INPUT:
        return None
    return max(int(size), model_side)
