"""HD frames from a model that renders small ones: the model gives motion and colour, the photo detail.

A DTVNet model animates an S x S image (64 px for the demo model, 128 for the paper's). Upsampling its
frames (`render="resize"`) keeps about a third of a 512 px photo's sharpness. `render="guided"` adds
back what the model's resolution cannot hold, the photo's own detail, moved along the model's flows:

    frame t = up(model frame t) + w_t * warp_t(photo - up(model frame 0))

- The detail is measured against the model's own frame 0, not the photo's blur: the model's frame 0
  differs from its input by a few grey levels, and that difference is carried too, so frame 0 is the
  photo exactly and a still pixel keeps the photo's colour plus the model's change of it.
- warp_t follows the model's forward flows (frame t-1 -> t, at half the model's resolution), chained
  backwards at that small size (each frame's map is the previous one sampled where frame t's pixels
  came from), then upsampled once: frame t needs flows 1..t only, so frames stream.
- Flows below `still_flow` (half-resolution pixels per frame) count as no motion: the model's flow on
  still ground is small noise that would otherwise walk the detail off its place.
- w_t fades the detail where it is unreliable: by the motion travelled so far (detail drifts away
  from where the model's flows put it, and content the photo does not hold comes in), and by the
  model's own disagreement (its frame t against its frame 0 moved by the same map: where they differ,
  the model made new content that the photo's detail does not belong to).

Torch-free (numpy + OpenCV): it runs in the post-processing stage beside the engine. The arithmetic on
HD pixels is uint8/int16 where OpenCV saturates for us, with fixed-point remap maps.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from runtime.errors import ArtifactError, ImageError

Render = Literal["guided", "resize"]
RENDERS: tuple[str, ...] = ("guided", "resize")


@dataclass(frozen=True)
class GuidedParams:
    """How fast the photo's detail fades. Chosen on 8 training scenes at 512 px (`benchmarks.hd`'s
    --tune; never the held-out ones it scores): still_flow matters most (0 -> 0.1 gains +0.3 dB and
    0.6 -> 0.9 of the truth's sharpness on still pixels; 0.2 loses the slow clouds' first frames), the
    others move the PSNR by under 0.05 dB between halving and doubling."""

    motion_scale: float = 2.0  # model pixels of travelled motion per e-fold of the detail
    motion_free: float = 0.0  # model pixels of travel before the fading starts
    disagreement: float = 16.0  # grey levels of model self-disagreement at which the detail is 1/e
    still_flow: float = 0.1  # half-resolution pixels per frame under which a flow counts as none


def _frame_float(frame: np.ndarray, where: str) -> np.ndarray:
    """A model frame as float32 H x W x 3 in [0, 255] (uint8 as is; float already in [0, 255])."""
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ArtifactError(
            f"{where} has shape {array.shape}, not H x W x 3; the artifact's frames are wrong."
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _frame_uint8(frame: np.ndarray, where: str) -> np.ndarray:
    array = np.asarray(frame)
    if array.dtype == np.uint8:
        if array.ndim != 3 or array.shape[2] != 3:
            raise ArtifactError(
                f"{where} has shape {array.shape}, not H x W x 3; the artifact's frames are wrong."
            )
        return np.ascontiguousarray(array)
    return np.clip(np.rint(_frame_float(array, where)), 0, 255).astype(np.uint8)


def _check_photo(photo: np.ndarray) -> np.ndarray:
    array = np.asarray(photo)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise ImageError(
            f"The HD photo is {array.dtype} of shape {array.shape}; pass H x W x 3 uint8 RGB, fitted like "
            "the model's input."
        )
    return np.ascontiguousarray(array)


def upscale(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """`render="resize"`: a model frame interpolated to height x width (bicubic up, area down, as
    `Geometry.restore`), uint8; also the base of every guided frame after the first."""
    frame = _frame_uint8(frame, "The model frame")
    if frame.shape[:2] == (height, width):
        return frame.copy()
    h, w = frame.shape[:2]
    interpolation = cv2.INTER_CUBIC if height * width > h * w else cv2.INTER_AREA
    return cv2.resize(frame, (width, height), interpolation=interpolation)


class GuidedRenderer:
    """Streams guided HD frames: construct with the photo and the model's frame 0, then call `frame`
    for t = 0, 1, 2, ... in order, each with the model's frame t and flow t (flow 0 is not used).

    Per frame, the work at HD size is one fixed-point uint8 remap of the detail, two small resizes
    (model frame, weight) and three saturating OpenCV operations; everything else runs at the model's
    size. The detail is kept as uint8 offset by 128: differences beyond +-127 grey levels (rare: the
    model's frame 0 is the photo's blur to a few levels) are clipped, except in frame 0, the photo."""

    def __init__(
        self, photo_hd: np.ndarray, model_frame0: np.ndarray, params: GuidedParams | None = None
    ) -> None:
        self.photo = _check_photo(photo_hd)
        self.params = params or GuidedParams()
        model0 = _frame_uint8(model_frame0, "The model's frame 0")
        self.height, self.width = self.photo.shape[:2]
        self.side = model0.shape[:2]  # the model frame's (rows, cols)
        if self.side[0] % 2 or self.side[1] % 2:
            raise ArtifactError(
                f"The model's frames are {self.side[1]}x{self.side[0]}, not of even sides; its flows are at "
                "half its resolution, so the artifact is not a DTVNet generator."
            )
        if self.height < self.side[0] or self.width < self.side[1]:
            raise ImageError(
                f"The HD photo ({self.width}x{self.height}) is smaller than the model's frames "
                f'({self.side[1]}x{self.side[0]}); ask for a size at least the model\'s, or render="resize".'
            )
        self.flow_shape = (self.side[0] // 2, self.side[1] // 2)
        self.model0 = model0.astype(np.float32)
        up0 = self._up(model0)
        self.detail = cv2.add(cv2.subtract(self.photo, up0, dtype=cv2.CV_16S), 128, dtype=cv2.CV_8U)
        h2, w2 = self.flow_shape
        self._grid = _grid(h2, w2)
        self._grid_model = _grid(*self.side)
        self._grid_hd = _grid(self.height, self.width)
        self._scale_hd = np.float32([self.width / w2, self.height / h2])
        self._offset = np.full((self.height, self.width, 3), 128, np.uint8)
        self._source = self._grid.copy()  # per flow-res pixel of frame t: where it was in frame 0
        self._travelled = np.zeros(self.flow_shape, np.float32)  # half-res pixels travelled so far
        self._t = 0

    def _up(self, frame: np.ndarray) -> np.ndarray:
        return cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_CUBIC)

    def _chain(self, flow: np.ndarray) -> None:
        """Frame t's source map from frame t-1's and the forward flow t-1 -> t: the pixel at x came from
        x - f(x - f(x)) (one fixed-point step of inverting the forward flow)."""
        f = np.ascontiguousarray(np.asarray(flow, np.float32).transpose(1, 2, 0))
        still = np.float32(self.params.still_flow)
        if still > 0:  # flows under `still` are none, full from 2 `still`: a soft step, no seam
            speed = cv2.magnitude(f[..., 0], f[..., 1])
            f *= np.clip((speed - still) / still, 0, 1)[..., None]
        back = cv2.remap(f, self._grid - f, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        previous = self._grid - back
        self._source = cv2.remap(
            self._source, previous, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        travelled = cv2.remap(
            self._travelled, previous, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        self._travelled = travelled + cv2.magnitude(back[..., 0], back[..., 1])

    def weight(self, model_frame: np.ndarray) -> np.ndarray:
        """The detail's weight at the model's resolution, float32 [S, S] in [0, 1]: faded by the motion
        travelled (model pixels) and by the model's disagreement with its own frame 0 moved along."""
        p = self.params
        size = (self.side[1], self.side[0])
        displacement = cv2.resize(self._source - self._grid, size) * np.float32(2)
        warped0 = cv2.remap(
            self.model0,
            self._grid_model + displacement,
            None,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        travelled = cv2.resize(self._travelled, size) * np.float32(2)
        w = np.exp(-np.maximum(travelled - np.float32(p.motion_free), 0) / np.float32(p.motion_scale))
        if p.disagreement > 0:
            disagreement = np.abs(model_frame - warped0).mean(axis=2)
            w *= np.exp(-((disagreement / np.float32(p.disagreement)) ** 2))
        return w.astype(np.float32)

    def frame(
        self,
        t: int,
        model_frame: np.ndarray,
        flow: np.ndarray | None = None,
        stages: dict[str, float] | None = None,
    ) -> np.ndarray:
        """HD frame t (uint8 H x W x 3) from the model's frame t and its flow t-1 -> t, [2, S/2, S/2].
        Frame 0 is the photo (and restarts the stream); later frames come in order. `stages`, if given,
        receives the seconds each step took (the benchmark's breakdown on a busy machine)."""
        if t == 0:
            self._source = self._grid.copy()
            self._travelled = np.zeros(self.flow_shape, np.float32)
            self._t = 0
            return self.photo.copy()
        if t != self._t + 1:
            raise ValueError(f"guided frames stream in order: frame {self._t + 1} comes next, not {t}")
        if flow is None or np.shape(flow) != (2, *self.flow_shape):
            raise ArtifactError(
                f"The model's flow {t} has shape {None if flow is None else np.shape(flow)}, not "
                f"(2, {self.flow_shape[0]}, {self.flow_shape[1]}); re-export the artifact so that it "
                "outputs flows at half its resolution."
            )
        model = _frame_uint8(model_frame, f"The model's frame {t}")
        if model.shape[:2] != self.side:
            raise ArtifactError(
                f"The model's frame {t} is {model.shape[1]}x{model.shape[0]}, not "
                f"{self.side[1]}x{self.side[0]} like its frame 0."
            )
        mark = _Stages(stages)
        self._chain(flow)
        self._t = t
        mark("chain")
        size = (self.width, self.height)
        w = self.weight(model.astype(np.float32))
        mark("weight")
        w3 = cv2.resize(cv2.merge([w, w, w]), size, interpolation=cv2.INTER_LINEAR)
        mark("weight up")
        # displacement scaled at the small size (linear interpolation commutes with it): one HD pass less
        moved = cv2.resize((self._source - self._grid) * self._scale_hd, size, interpolation=cv2.INTER_LINEAR)
        moved += self._grid_hd
        mark("map up")
        map1, map2 = cv2.convertMaps(moved, None, cv2.CV_16SC2)
        mark("fixed-point map")
        detail = cv2.remap(self.detail, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mark("remap")
        signed = cv2.subtract(detail, self._offset, dtype=cv2.CV_16S)
        weighted = cv2.multiply(signed, w3, dtype=cv2.CV_16S)
        mark("weigh")
        up = self._up(model)
        mark("model up")
        out = cv2.add(up, weighted, dtype=cv2.CV_8U)
        mark("add")
        return out


class _Stages:
    """Records the time since the previous mark under each name, when given a dict; else does nothing."""

    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink
        self.last = time.perf_counter() if sink is not None else 0.0

    def __call__(self, name: str) -> None:
        if self.sink is not None:
            now = time.perf_counter()
            self.sink[name] = now - self.last
            self.last = now


def _grid(rows: int, cols: int) -> np.ndarray:
    """float32 [rows, cols, 2]: each pixel's own (x, y), the identity map of cv2.remap."""
    xs, ys = np.meshgrid(np.arange(cols, dtype=np.float32), np.arange(rows, dtype=np.float32))
    return np.dstack([xs, ys])


def render(
    photo_hd: np.ndarray,
    model_frames: Iterable[np.ndarray],
    flows: Iterable[np.ndarray] | None = None,
    *,
    mode: Render = "guided",
    params: GuidedParams | None = None,
) -> Iterator[np.ndarray]:
    """HD frames (uint8 H x W x 3), one per model frame, as they come: `photo_hd` fixes the size.

    guided: frame 0 is the photo; frame t the model's frame t with the photo's detail (needs `flows`,
    one [2, S/2, S/2] per frame, flow 0 ignored). resize: each model frame interpolated, as `upscale`."""
    photo = _check_photo(photo_hd)
    height, width = photo.shape[:2]
    if mode == "resize":
        for frame in model_frames:
            yield upscale(frame, height, width)
        return
    if mode != "guided":
        raise ValueError(f"render must be one of {', '.join(RENDERS)}, got {mode!r}")
    if flows is None:
        raise ArtifactError("Guided HD rendering needs the model's flows; re-export the artifact with flows.")
    renderer: GuidedRenderer | None = None
    for t, (frame, flow) in enumerate(zip(model_frames, flows, strict=True)):
        if renderer is None:
            renderer = GuidedRenderer(photo, frame, params)
            yield renderer.frame(0, frame, flow)
        else:
            yield renderer.frame(t, frame, flow)
