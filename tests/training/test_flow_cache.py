"""The flow cache: computed once, resumable, atomic, and keyed by estimator and resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data.clips import find_clips
from training.data.synth import write_dataset
from training.flow.cache import CACHE_DIR, FlowCache
from training.flow.estimator import DISFlow, get_estimator


class CountingFlow:
    """DIS, counting calls; optionally interrupted (Ctrl-C) on call number `fail_at`."""

    name = "counting"

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return DISFlow()(frames)


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "d", 4, test_clips=1, seed=3, frames=6, size=32, progress=False)


def test_computed_once_and_matching_the_estimator(data: Path):
    clips = find_clips(data, "sky_train")
    flow = CountingFlow()
    cache = FlowCache(data, 16, flow)
    assert cache.build(clips, progress=False) == 4 and flow.calls == 4
    assert cache.build(clips, progress=False) == 0 and flow.calls == 4
    entry = cache.load(clips[1])
    assert flow.calls == 4
    frames = clips[1].read(16)
    assert np.array_equal(entry.frames, frames)
    assert entry.flows.dtype == np.float16 and entry.flows.shape == (2, 6, 16, 16)
    np.testing.assert_allclose(entry.flows, DISFlow()(frames), atol=2e-3, rtol=1e-3)
    assert cache.root == data / CACHE_DIR / "counting-16px"  # next to the data, per estimator and size


def test_interrupted_build_resumes_without_reading_partial_files(data: Path):
    clips = find_clips(data, "sky_train")
    with pytest.raises(KeyboardInterrupt):
        FlowCache(data, 16, CountingFlow(fail_at=3)).build(clips, progress=False)
    cache = FlowCache(data, 16, CountingFlow())
    assert not list(cache.root.rglob(".*tmp-*"))  # temporary files are cleaned up
    assert cache.build(clips, progress=False) == 2  # the two finished clips are kept


def test_incomplete_or_damaged_entries_are_recomputed(data: Path):
    clips = find_clips(data, "sky_train")
    flow = CountingFlow()
    cache = FlowCache(data, 16, flow)
    cache.build(clips, progress=False)
    _, flows0 = cache.paths(clips[0])
    flows0.unlink()  # a crash between the frames file and the flows file
    _, flows1 = cache.paths(clips[1])
    flows1.write_bytes(flows1.read_bytes()[:200])  # truncated under its final name (disk damage)
    _, flows2 = cache.paths(clips[2])
    np.save(flows2, np.zeros((2, 5, 16, 16), np.float16))  # wrong shape (the clip changed)
    stray = flows0.with_name(f".{flows0.name}.tmp-abc.npy")
    stray.write_bytes(b"half written")  # a leftover temporary file is never read as an entry
    assert cache.build(clips, progress=False) == 3 and flow.calls == 7
    assert cache.load(clips[1]).flows.shape == (2, 6, 16, 16)


def test_cache_root_can_be_elsewhere(data: Path, tmp_path: Path):
    cache = FlowCache(data, 16, cache_root=tmp_path / "elsewhere")
    cache.build(find_clips(data, "sky_test"), progress=False)
    assert list((tmp_path / "elsewhere" / "dis-medium-16px").rglob("*.flows.npy"))


def test_estimator_registry():
    assert get_estimator("dis").name == "dis-medium"
    assert get_estimator("dis-fast").name == "dis-fast"
    with pytest.raises(ValueError, match="unknown flow estimator 'selflow'"):
        get_estimator("selflow")
