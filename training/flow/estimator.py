"""One interface for optical flow estimators, so that a learned unsupervised estimator (the paper's
SelFlow / the reference's ARFlow) can be added beside DIS without touching the cache or training.

An estimator is a callable `uint8 frames [T, H, W, 3] RGB -> float32 flows [2, T, H, W]` that follows
the clip convention of `runtime.flow` (flow 0 zero, flow t from frame t-1 to frame t, pixels at
the frames' resolution), with a `name` that identifies it and its settings: the flow cache keeps
each estimator's flows apart by that name. Torch-free (a learned estimator may import torch lazily).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from runtime.flow import PRESETS, clip_flows


class FlowEstimator(Protocol):
    @property
    def name(self) -> str:
        """Short identifier of the estimator and its settings, safe in a folder name."""
        ...

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class DISFlow:
    """OpenCV's DIS optical flow (the default; no training, no GPU)."""

    preset: str = "medium"

    @property
    def name(self) -> str:
        return f"dis-{self.preset}"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return clip_flows(frames, self.preset)


# name -> factory. A learned estimator registers here, e.g. "arflow": lambda: ARFlow(weights).
ESTIMATORS: dict[str, Callable[[], FlowEstimator]] = {
    "dis": DISFlow,
    **{f"dis-{p}": (lambda p=p: DISFlow(p)) for p in PRESETS},
}


def get_estimator(name: str) -> FlowEstimator:
    """The estimator registered under `name`; ValueError listing the names if unknown."""
    try:
        return ESTIMATORS[name]()
    except KeyError:
        raise ValueError(f"unknown flow estimator {name!r}; choose one of {', '.join(ESTIMATORS)}") from None
