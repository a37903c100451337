"""Data: the procedural generator, the Sky Time-lapse and video-file loaders, windows, and bad data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.errors import DataError
from runtime.flow import clip_flows
from training.data.clips import find_clips
from training.data.synth import MOTION_FILE, _cloud_density, _cloud_spectrum, render_clip
from training.data.windows import StepBatchSampler, frames_to_tensor, global_batch, window_arrays
from training.flow.cache import FlowCache


def _write_jpeg_clip(folder: Path, values: list[int], size: tuple[int, int] = (24, 40)) -> None:
    folder.mkdir(parents=True)
    for i, value in enumerate(values):
        frame = np.full((*size, 3), value, np.uint8)
        frame[:, :, 0] = 255 - value  # a different value per channel, to catch channel-order mistakes
        cv2.imwrite(str(folder / f"clip_frames_{i + 1}.jpg"), frame)  # BGR on disk: blue = 255 - value


def _write_mp4(path: Path, values: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (40, 24))
    assert writer.isOpened()
    for value in values:
        writer.write(np.full((24, 40, 3), value, np.uint8))
    writer.release()


# --- procedural clips ---------------------------------------------------------------------------


def test_synth_is_deterministic_per_seed():
    a, b, c = render_clip([1, 0, 3], 6, 32), render_clip([1, 0, 3], 6, 32), render_clip([1, 0, 4], 6, 32)
    assert a.frames.shape == (6, 32, 32, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.flows, b.flows) and a.params == b.params
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.parametrize("period", [64, 96])
def test_sparse_cloud_field_is_the_dense_inverse_transform(period: int):
    """The ring-only rendering gives the numbers of the whole-grid transform it replaced."""
    s = _cloud_spectrum(np.random.default_rng(period), period, 1.3)
    shift, phase_t = np.array([3.25, -1.5]), 0.7
    grid = np.zeros((period, period), np.complex128)
    ramp = np.exp(-2j * np.pi * (s.kx * shift[0] + s.ky * shift[1]) / period + 1j * s.rate * phase_t)
    grid[s.rows, s.cols] = s.values * ramp
    dense = np.fft.ifft2(grid).real[: period // 2, : period // 2]
    assert np.abs(dense).max() > 0
    np.testing.assert_array_equal(_cloud_density(s, shift, phase_t, period // 2), dense)


def test_synth_clouds_move_with_the_wind():
    """DIS on the rendered frames agrees in direction with the exact ground truth in the sky."""
    clip = render_clip([0, 0, 2], 8, 64)
    measured = clip_flows(clip.frames)
    sky = (clip.flows[0, 1] != 0) | (clip.flows[1, 1] != 0)
    assert sky.mean() > 0.3  # a good part of the frame is moving sky
    wind = np.array(clip.params.wind)
    mean = np.array([measured[c, 1:][:, sky].mean() for c in range(2)])
    cosine = mean @ wind / (np.linalg.norm(mean) * np.linalg.norm(wind))
    assert cosine > 0.9, (mean, wind)
    assert 0.4 < np.linalg.norm(mean) / np.linalg.norm(wind) < 1.3


def test_synth_ground_truth_convention_terrain_and_water():
    clip = next(c for c in (render_clip([0, 0, i], 3, 32) for i in range(40)) if c.params.water)
    assert (clip.flows[:, 0] == 0).all()  # flow 0 is zero
    u, v = clip.flows[0, 1], clip.flows[1, 1]
    wind = clip.params.wind
    assert (u[0] == np.float32(wind[0])).all() and (v[0] == np.float32(wind[1])).all()  # top row: sky
    water = round(clip.params.water * 32)
    reflected = (u[water:] != 0) | (v[water:] != 0)
    assert reflected.any()
    assert np.allclose(v[water:][reflected], -np.float32(wind[1]))  # mirrored vertically
    assert not ((u != 0) | (v != 0))[water - 1].all()  # terrain at the waterline does not move


def test_synth_writes_the_sky_timelapse_layout(tmp_path: Path):
    from training.data.synth import main

    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path / "d"),
                "--clips",
                "2",
                "--test-clips",
                "1",
                "--frames",
                "5",
                "--size",
                "16",
            ]
        )
        == 0
    )
    clips = find_clips(tmp_path / "d", "sky_train")
    assert [c.key for c in clips] == [
        "sky_train/synth_0_000000/synth_0_000000_1",
        "sky_train/synth_0_000001/synth_0_000001_1",
    ]
    assert clips[0].num_frames == 5 and clips[0].frame_files[0].name == "synth_0_000000_1_frames_00000001.jpg"
    meta = json.loads((clips[0].path / MOTION_FILE).read_text())
    assert meta["frames"] == 5 and len(meta["wind"]) == 2
    assert len(find_clips(tmp_path / "d", "sky_test")) == 1
    frames = clips[0].read(16)
    assert frames.shape == (5, 16, 16, 3)


# --- loaders ------------------------------------------------------------------------------------


def test_jpeg_folder_loader(tmp_path: Path):
    values = [10 * i for i in range(12)]  # names frame_1 .. frame_12: natural order, not 1, 10, 11, 12, 2
    _write_jpeg_clip(tmp_path / "train" / "vid" / "vid_1", values)
    (clip,) = find_clips(tmp_path, "train", min_frames=8)
    assert clip.key == "train/vid/vid_1" and clip.num_frames == 12
    frames = clip.read(8)  # centre-cropped to 24 x 24 then resized to 8 x 8
    assert frames.shape == (12, 8, 8, 3)
    assert np.abs(frames[:, 4, 4, 1].astype(int) - values).max() <= 2  # green channel = value, in order
    assert np.abs(frames[:, 4, 4, 2].astype(int) - [255 - v for v in values]).max() <= 2  # RGB: blue last


def test_video_folder_loader(tmp_path: Path):
    values = [20 * i for i in range(9)]
    _write_mp4(tmp_path / "videos" / "a.mp4", values)
    (clip,) = find_clips(tmp_path / "videos", "sky_train")  # no split folder: the videos under the root
    assert clip.is_video and clip.num_frames == 9 and clip.key == "a.mp4"
    frames = clip.read(8)
    assert frames.shape == (9, 8, 8, 3)
    assert np.abs(frames[:, 4, 4, 1].astype(int) - values).max() <= 6  # lossy codec
    assert (np.diff(frames[:, 4, 4, 1].astype(int)) > 0).all()


def test_windows_cut_anywhere_with_a_zero_first_flow(tiny_data: Path):
    clips = find_clips(tiny_data, "sky_train")
    entry = FlowCache(tiny_data, 32).load(clips[0])
    frames, flows, half = window_arrays(entry, 3, 8)
    assert np.array_equal(frames, entry.frames[3:11])
    assert (flows[:, 0] == 0).all() and np.array_equal(flows[:, 1:], entry.flows[:, 4:11].astype(np.float32))
    assert half.shape == (2, 8, 16, 16)
    video = frames_to_tensor(frames)
    assert video.shape == (3, 8, 32, 32) and video.min() >= -1 and video.max() <= 1
    assert float(video[0, 0, 0, 0]) == pytest.approx(frames[0, 0, 0, 0] / 127.5 - 1)


def test_sampler_covers_every_clip_once_per_epoch_and_is_a_function_of_the_step():
    lengths = [12, 20, 9, 15, 30]
    steps = [global_batch(s, 7, lengths, 8, 5) for s in range(3)]
    for windows in steps:
        assert sorted(c for c, _ in windows) == [0, 1, 2, 3, 4]
        assert all(0 <= start <= lengths[c] - 8 for c, start in windows)
    assert steps[0] != steps[1]
    assert global_batch(1, 7, lengths, 8, 5) == steps[1]  # no hidden state
    starts = {start for s in range(40) for c, start in global_batch(s, 7, lengths, 8, 5) if c == 4}
    assert len(starts) > 5  # windows come from the whole clip, not only its first frames
    ranks = [list(StepBatchSampler(lengths, 8, 4, 7, 2, 3, rank=r, world_size=2)) for r in range(2)]
    assert sorted(ranks[0][0] + ranks[1][0]) == sorted(global_batch(2, 7, lengths, 8, 4))


# --- bad data -----------------------------------------------------------------------------------


def test_empty_folder_stops_naming_it(tmp_path: Path):
    (tmp_path / "sky_train").mkdir()
    with pytest.raises(DataError, match=r"No clips found in .*sky_train"):
        find_clips(tmp_path, "sky_train")
    with pytest.raises(DataError, match="has no split 'sky_test'"):
        find_clips(tmp_path, "sky_test")
    with pytest.raises(DataError, match="does not exist"):
        find_clips(tmp_path / "missing")


def test_short_clips_are_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    _write_jpeg_clip(tmp_path / "s" / "v" / "long", list(range(0, 200, 20)))
    _write_jpeg_clip(tmp_path / "s" / "v" / "short", [0, 50, 100])
    with caplog.at_level(logging.WARNING):
        clips = find_clips(tmp_path, "s", min_frames=8)
    assert [c.key for c in clips] == ["s/v/long"]
    assert "short" in caplog.text and "3 frames" in caplog.text
    with pytest.raises(DataError, match="fewer than 16 frames"):
        find_clips(tmp_path, "s", min_frames=16)


def test_unreadable_jpeg_stops_naming_the_file(tmp_path: Path):
    _write_jpeg_clip(tmp_path / "s" / "v" / "c", [0, 40, 80, 120])
    bad = tmp_path / "s" / "v" / "c" / "clip_frames_3.jpg"
    bad.write_bytes(b"not a jpeg")
    (clip,) = find_clips(tmp_path, "s")
    with pytest.raises(DataError, match=r"clip_frames_3\.jpg"):
        FlowCache(tmp_path, 8).build([clip], progress=False)


def test_unreadable_video_stops_naming_the_file(tmp_path: Path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match=r"broken\.mp4"):
        find_clips(tmp_path)
