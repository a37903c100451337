"""Motion vectors: seeded, given, interpolated between clips, and read from reference clips."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from runtime.errors import MotionError
from runtime.motion import (
    check_seed,
    check_vector,
    read_reference_frames,
    read_vector_file,
    reference_flows,
    schedule_vector,
    seeded_vector,
    slerp,
)
from runtime.seeded_normal import seeded_normal


def test_seeded_vectors_are_the_shared_stream():
    assert np.array_equal(seeded_vector(7, 32, 3), seeded_normal(7, 32, 4)[3])
    assert seeded_vector(7, 32).dtype == np.float32


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "3", True])
def test_bad_seeds(seed):
    with pytest.raises(MotionError, match=r"is not an integer in \[0, 2\*\*64\)"):
        check_seed(seed)


def test_vectors_are_checked():
    assert check_vector(np.ones((1, 4)), 4).shape == (4,)
    assert check_vector([0.5, 1, 2, 3], 4).dtype == np.float32
    with pytest.raises(MotionError, match=r"has shape \(5,\) but this model takes 4 numbers"):
        check_vector(np.zeros(5), 4)
    with pytest.raises(MotionError, match=r"has shape \(2, 4\)"):
        check_vector(np.zeros((2, 4)), 4)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(MotionError, match="contains NaN or infinite values"):
            check_vector(np.array([0, 1, bad, 2]), 4)
    with pytest.raises(MotionError, match="is not an array of numbers"):
        check_vector(["a", "b"], 2)  # type: ignore[list-item]


def test_slerp_keeps_endpoints_and_interpolates_norm():
    a, b = seeded_vector(1, 64), seeded_vector(2, 64)
    assert np.allclose(slerp(a, b, 0.0), a, atol=1e-5) and np.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    expected_norm = (np.linalg.norm(a) + np.linalg.norm(b)) / 2
    assert np.linalg.norm(mid) == pytest.approx(expected_norm, rel=1e-5)
    assert np.linalg.norm((a + b) / 2) < 0.9 * expected_norm  # what a straight line would lose
    assert np.allclose(slerp(a, a, 0.3), a, atol=1e-6)  # parallel vectors


def test_schedule_glides_between_keys_without_jumps():
    dim, n = 64, 4
    vectors = [schedule_vector(5, dim, k, n) for k in range(9)]
    assert np.array_equal(vectors[0], seeded_vector(5, dim, 0))
    assert np.array_equal(vectors[4], seeded_vector(5, dim, 1))
    assert np.array_equal(vectors[8], seeded_vector(5, dim, 2))
    smooth = max(np.linalg.norm(vectors[k + 1] - vectors[k]) for k in range(8))
    jumps = [schedule_vector(5, dim, k, 1) for k in range(9)]
    jumpy = min(np.linalg.norm(jumps[k + 1] - jumps[k]) for k in range(8))
    assert smooth < 0.5 * jumpy
    with pytest.raises(ValueError):
        schedule_vector(5, dim, 0, 0)


def write_video(path: Path, frames: int, size: tuple[int, int] = (48, 40)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25, size)
    base = np.tile(np.arange(size[0], dtype=np.uint8)[None, :, None] * 5, (size[1], 1, 3))
    for t in range(frames):
        writer.write(np.roll(base, t, axis=1))
    writer.release()
    return path


def test_reference_video_and_folder(tmp_path: Path):
    frames = read_reference_frames(write_video(tmp_path / "ref.mp4", 12), 8)
    assert len(frames) == 8 and frames[0].shape == (40, 48, 3) and frames[0].dtype == np.uint8
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    (folder / "notes.txt").write_text("ignored")
    from_folder = read_reference_frames(folder, 8)
    assert all(np.array_equal(a, b) for a, b in zip(from_folder, frames, strict=True))
    flows = reference_flows(frames, 32)
    assert flows.shape == (1, 2, 8, 32, 32) and flows.dtype == np.float32
    assert np.all(flows[:, :, 0] == 0) and np.abs(flows[:, 0, 1:]).mean() > 0.1  # rightward motion found


def test_reference_errors(tmp_path: Path):
    with pytest.raises(MotionError, match="does not exist"):
        read_reference_frames(tmp_path / "none.mp4", 8)
    with pytest.raises(MotionError, match=r"has 3 readable frame\(s\); motion transfer needs at least 8"):
        read_reference_frames(write_video(tmp_path / "short.mp4", 3), 8)
    (tmp_path / "bad.mp4").write_text("not a video")
    with pytest.raises(MotionError, match="cannot be opened as a video"):
        read_reference_frames(tmp_path / "bad.mp4", 8)
    (tmp_path / "few").mkdir()
    with pytest.raises(MotionError, match=r"holds 0 frame image\(s\)"):
        read_reference_frames(tmp_path / "few", 8)
    (tmp_path / "broken").mkdir()
    for i in range(8):
        (tmp_path / "broken" / f"{i}.png").write_text("not a png")
    with pytest.raises(MotionError, match=r"0.png' is not an image file"):
        read_reference_frames(tmp_path / "broken", 8)


def test_vector_files(tmp_path: Path):
    np.save(tmp_path / "z.npy", np.arange(4, dtype=np.float32))
    assert np.array_equal(read_vector_file(tmp_path / "z.npy", 4), np.arange(4))
    with pytest.raises(MotionError, match=r"has shape \(4,\) but this model takes 8"):
        read_vector_file(tmp_path / "z.npy", 8)
    (tmp_path / "bad.npy").write_text("nope")
    with pytest.raises(MotionError, match=r"is not a readable .npy array"):
        read_vector_file(tmp_path / "bad.npy", 4)
