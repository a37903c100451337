"""Clips at model resolution and their optical flows, computed once and cached on disk next to the data.

Training reads every window from here, so JPEGs and videos are decoded and flows estimated only once:

    <data root>/.flowcache/<estimator name>-<size>px/<clip key>.frames.npy   uint8 [N, S, S, 3] RGB
    <data root>/.flowcache/<estimator name>-<size>px/<clip key>.flows.npy    float16 [2, N, S, S]

Flows are at the model's resolution, in pixels at that scale, for the whole clip (flow 0 zero, flow t
from frame t-1 to t), so any window can be cut from them; float16 halves the disk use at a precision
(about 1e-3 px) far below the estimators' error. The half-resolution flows of the motion loss are
derived per window with `runtime.flow.downsample_flows`.

Building is resumable and atomic: each file is written beside its final name and renamed into place,
frames before flows, so an entry counts as complete only when its flows file exists, and an
interrupted build simply continues. A file that does not load, or whose shape does not fit the clip,
is recomputed. Edits to a clip that keep its frame count are not detected: delete `.flowcache` after
changing data. Torch-free.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from runtime.fsutil import atomic_file
from training.data.clips import Clip
from training.flow.estimator import DISFlow, FlowEstimator

log = logging.getLogger(__name__)

CACHE_DIR = ".flowcache"


@dataclass(frozen=True)
class CachedClip:
    """One clip's cached arrays, memory-mapped (read windows by slicing)."""

    frames: np.ndarray  # uint8 [N, S, S, 3]
    flows: np.ndarray  # float16 [2, N, S, S]

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]


class FlowCache:
    """Frames and flows of clips at one resolution, for one estimator."""

    def __init__(
        self,
        data_root: str | Path,
        size: int,
        estimator: FlowEstimator | None = None,
        cache_root: str | Path | None = None,
    ) -> None:
        self.estimator = estimator or DISFlow()
        self.size = size
        base = Path(cache_root) if cache_root is not None else Path(data_root) / CACHE_DIR
        self.root = base / f"{self.estimator.name}-{size}px"

    def paths(self, clip: Clip) -> tuple[Path, Path]:
        stem = self.root / clip.key
        return stem.with_name(stem.name + ".frames.npy"), stem.with_name(stem.name + ".flows.npy")

    def _open(self, clip: Clip) -> CachedClip | None:
        """The entry if it is complete and fits the clip, else None."""
        frames_path, flows_path = self.paths(clip)
        if not flows_path.is_file():
            return None
        try:
            frames = np.load(frames_path, mmap_mode="r")
            flows = np.load(flows_path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            log.warning("recomputing the cache of %s: %s", clip.key, exc)
            return None
        s = self.size
        n = frames.shape[0] if frames.ndim == 4 else -1
        if (
            frames.shape != (n, s, s, 3)
            or flows.shape != (2, n, s, s)
            or (n != clip.num_frames and not clip.is_video)
        ):
            log.warning("recomputing the cache of %s: its shape does not fit the clip", clip.key)
            return None
        return CachedClip(frames, flows)

    def _compute(self, clip: Clip) -> None:
        frames = clip.read(self.size)
        flows = self.estimator(frames).astype(np.float16)
        frames_path, flows_path = self.paths(clip)
        for path, array in ((frames_path, frames), (flows_path, flows)):
            with atomic_file(path) as tmp:
                np.save(tmp, array)

    def build(self, clips: Sequence[Clip], progress: bool = True) -> int:
        """Compute every missing entry (tqdm progress bar); returns how many were computed."""
        missing = [clip for clip in clips if self._open(clip) is None]
        if missing:
            log.info("computing %s flows of %d clip(s) into %s", self.estimator.name, len(missing), self.root)
        for clip in tqdm(missing, desc=f"flows ({self.estimator.name})", unit="clip", disable=not progress):
            self._compute(clip)
        return len(missing)

    def load(self, clip: Clip) -> CachedClip:
        """The cached entry of `clip`, computed first if missing or invalid."""
        entry = self._open(clip)
        if entry is None:
            self._compute(clip)
            entry = self._open(clip)
            assert entry is not None, f"cache entry of {clip.key} unreadable right after writing it"
        return entry
