"""Optical flow of a clip with OpenCV's DIS estimator. Torch-free: the runtime uses it for motion
transfer, training uses it (through the flow cache) for the flow encoder and the motion loss.

Convention (ARCHITECTURE.md): a clip of T frames has T flows; flow 0 is zero (frame 0 to itself) and
flow t is the forward flow from frame t-1 to frame t, (u, v) in pixels at the frames' resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def clip_flows(frames: np.ndarray, preset: str = "medium") -> np.ndarray:
    """uint8 frames [T, H, W, 3] (RGB) or [T, H, W] (gray) -> float32 flows [2, T, H, W]."""
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or len(frames) < 1:
        raise ValueError(f"expected uint8 frames [T, H, W(, 3)], got {frames.dtype} {frames.shape}")
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    t, h, w = frames.shape[:3]
    flows = np.zeros((2, t, h, w), dtype=np.float32)
    previous = _gray(frames[0])
    for i in range(1, t):
        current = _gray(frames[i])
        flow = dis.calc(previous, current, None)  # [H, W, 2]
        flows[:, i] = flow.transpose(2, 0, 1)
        previous = current
    return flows


def downsample_flows(flows: np.ndarray, factor: int = 2) -> np.ndarray:
    """[2, T, H, W] -> [2, T, H/f, W/f] by area averaging, magnitudes divided by f (pixels at the
    smaller scale): the ground truth for the generator's half-resolution flows."""
    c, t, h, w = flows.shape
    pooled = flows.reshape(c, t, h // factor, factor, w // factor, factor).mean(axis=(3, 5))
    return (pooled / factor).astype(np.float32)
