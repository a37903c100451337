"""DIS optical flow convention: T flows for T frames, flow 0 zero, forward flows in pixels."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.flow import clip_flows, downsample_flows


def _moving_texture(shift: tuple[int, int], frames: int = 4, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size * 2, size * 2), dtype=np.uint8)
    base = np.asarray(np.kron(base, np.ones((2, 2))), np.uint8)[: size * 2, : size * 2]  # blobs of 2x2
    out = []
    for t in range(frames):
        dy, dx = shift[0] * t, shift[1] * t
        out.append(np.roll(base, (dy, dx), axis=(0, 1))[:size, :size])
    return np.stack(out)


def test_flow_of_a_known_translation():
    frames = _moving_texture((1, 2))
    flows = clip_flows(np.repeat(frames[..., None], 3, axis=3))
    assert flows.shape == (2, 4, 64, 64) and flows.dtype == np.float32
    assert (flows[:, 0] == 0).all()
    inner = flows[:, 1:, 8:-8, 8:-8]
    assert np.median(inner[0]) == pytest.approx(2.0, abs=0.25)  # u: +2 px per frame
    assert np.median(inner[1]) == pytest.approx(1.0, abs=0.25)  # v: +1 px per frame


def test_downsample_halves_size_and_magnitude():
    flows = np.full((2, 3, 8, 8), 4.0, np.float32)
    small = downsample_flows(flows)
    assert small.shape == (2, 3, 4, 4) and (small == 2.0).all()


def test_rejects_float_frames():
    with pytest.raises(ValueError):
        clip_flows(np.zeros((3, 8, 8, 3), np.float32))
