"""Training windows: T-frame slices of cached clips, as tensors, and the sampler that picks them.

The sampler is a pure function of (seed, step): the global batch of step s is always the same clips
and window starts, whatever happened before. So a resumed run sees exactly the batches it would have
seen, and a data-parallel run can give each rank its slice of the same global batch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from runtime.flow import downsample_flows
from training.data.clips import Clip
from training.flow.cache import CachedClip, FlowCache

Window = tuple[int, int]  # (clip index, first frame)


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, S, S, 3] -> float32 [3, T, S, S] in [-1, 1] (the inverse of runtime.imaging's output)."""
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2))).float().div_(127.5).sub_(1.0)


def window_arrays(entry: CachedClip, start: int, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames uint8 [T, S, S, 3], flows [2, T, S, S] and half-resolution flows [2, T, S/2, S/2] of a window.

    Flow 0 of a window is zero (its first frame to itself), whatever the clip's flow at `start` was.
    """
    clip_frames = np.asarray(entry.frames[start : start + frames])
    flows = np.asarray(entry.flows[:, start : start + frames], dtype=np.float32).copy()
    flows[:, 0] = 0.0
    return clip_frames, flows, downsample_flows(flows)


class WindowDataset(Dataset):
    """Indexed by (clip index, start): {"video", "flows", "flows_half"} float32 tensors."""

    def __init__(self, clips: Sequence[Clip], cache: FlowCache, frames: int) -> None:
        self.clips = list(clips)
        self.cache = cache
        self.frames = frames
        self._entries: dict[int, CachedClip] = {}

    def lengths(self) -> list[int]:
        return [self._entry(i).num_frames for i in range(len(self.clips))]

    def _entry(self, index: int) -> CachedClip:
        if index not in self._entries:
            self._entries[index] = self.cache.load(self.clips[index])
        return self._entries[index]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, window: Window) -> dict[str, torch.Tensor]:
        clip_index, start = window
        frames, flows, flows_half = window_arrays(self._entry(clip_index), start, self.frames)
        return {
            "video": frames_to_tensor(frames),
            "flows": torch.from_numpy(flows),
            "flows_half": torch.from_numpy(flows_half),
        }


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, 0, epoch]).permutation(n)


def global_batch(step: int, seed: int, lengths: Sequence[int], frames: int, batch: int) -> list[Window]:
    """The windows of training step `step`: clips in a fresh seeded permutation each epoch (one window
    per clip per epoch), each window starting at a seeded uniform position within its clip."""
    n = len(lengths)
    out: list[Window] = []
    for position in range(step * batch, (step + 1) * batch):
        epoch, offset = divmod(position, n)
        clip = int(_epoch_order(seed, epoch, n)[offset])
        start = int(np.random.default_rng([seed, 1, position]).integers(0, lengths[clip] - frames + 1))
        out.append((clip, start))
    return out


class StepBatchSampler(Sampler[list[Window]]):
    """Yields this rank's share of `global_batch` for steps [first_step, last_step)."""

    def __init__(
        self,
        lengths: Sequence[int],
        frames: int,
        batch: int,
        seed: int,
        first_step: int,
        last_step: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch % world_size:
            raise ValueError(f"global batch {batch} is not divisible by {world_size} processes")
        self.lengths, self.frames, self.batch, self.seed = list(lengths), frames, batch, seed
        self.first_step, self.last_step, self.rank, self.world_size = first_step, last_step, rank, world_size

    def __len__(self) -> int:
        return max(0, self.last_step - self.first_step)

    def __iter__(self) -> Iterator[list[Window]]:
        for step in range(self.first_step, self.last_step):
            windows = global_batch(step, self.seed, self.lengths, self.frames, self.batch)
            yield windows[self.rank :: self.world_size]
