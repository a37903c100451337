"""Writers: H.264 mp4, VP9 webm, gif, png frames, contact sheet, each decoded back with PyAV; atomic on
failure; a render stopped by Ctrl-C keeps its frames under NAME.partial.SUFFIX when asked to."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from runtime import writers
from runtime.errors import OutputPathError
from runtime.writers import StoppedEarly, contact_sheet, open_writer, output_kind, partial_path, write_frames


def clip(n: int = 10, h: int = 32, w: int = 48) -> list[np.ndarray]:
    """Frames with a distinct flat colour each, so lossy codecs still tell them apart."""
    return [np.full((h, w, 3), (20 * i, 255 - 20 * i, 100), np.uint8) for i in range(n)]


def noisy_clip(n: int = 6, side: int = 64) -> list[np.ndarray]:
    """Frames whose size in bytes depends on the quality asked for."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(n)]


def decode(path: Path) -> tuple[str, list[np.ndarray]]:
    """(codec name, RGB frames) of a video or image file, read by PyAV (FFmpeg)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return stream.codec_context.name, frames


def read_mp4(path: Path) -> list[np.ndarray]:
    """The RGB frames of a video file (any codec FFmpeg decodes)."""
    return decode(path)[1]


@pytest.mark.parametrize(
    ("name", "codec", "container"), [("out.mp4", "h264", "mp4"), ("out.webm", "vp9", "webm")]
)
def test_videos_decode_with_codec_size_and_frame_count(tmp_path: Path, name: str, codec: str, container: str):
    frames = clip(10, 33, 49)  # odd sides: yuv420p needs even ones, so the last row and column go
    path = write_frames(frames, tmp_path / name, fps=25)
    with av.open(str(path)) as opened:
        stream = opened.streams.video[0]
        assert container in opened.format.name.split(",")
        assert stream.codec_context.name == codec and stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (48, 32) and stream.average_rate == 25
    found, back = decode(path)
    assert found == codec and len(back) == len(frames) and back[0].shape == (32, 48, 3)
    assert all(np.abs(a.astype(int) - b[:32, :48]).mean() < 4 for a, b in zip(back, frames, strict=True))
    assert list(tmp_path.iterdir()) == [path]


def test_mp4_has_its_index_up_front(tmp_path: Path):
    """+faststart: the moov box precedes the media data, so a browser plays while it downloads."""
    data = write_frames(clip(), tmp_path / "out.mp4").read_bytes()
    assert -1 < data.find(b"moov") < data.find(b"mdat")


@pytest.mark.parametrize("name", ["out.mp4", "out.webm"])
def test_crf_trades_size_for_quality(tmp_path: Path, name: str):
    frames = noisy_clip()
    fine = write_frames(frames, tmp_path / f"fine-{name}", crf=10)
    coarse = write_frames(frames, tmp_path / f"coarse-{name}", crf=45)
    assert fine.stat().st_size > 2 * coarse.stat().st_size
    errors = [np.abs(read_mp4(p)[2].astype(int) - frames[2]).mean() for p in (fine, coarse)]
    assert errors[0] < errors[1]
    with pytest.raises(OutputPathError, match=r"--crf 64 is outside the webm encoder's range; give 0"):
        write_frames(frames, tmp_path / "bad.webm", crf=64)
    with pytest.raises(OutputPathError, match=r"--crf -1 is outside the mp4 encoder's range"):
        write_frames(frames, tmp_path / "bad.mp4", crf=-1)


def test_gif_png_frames_and_contact_sheet(tmp_path: Path):
    frames = clip(5)
    gif = write_frames(frames, tmp_path / "out.gif", fps=20)
    assert Image.open(gif).n_frames == 5 and Image.open(gif).info["duration"] == 50
    codec, back = decode(gif)
    assert codec == "gif" and len(back) == 5 and back[0].shape == (32, 48, 3)
    folder = write_frames(frames, tmp_path / "frames")
    assert sorted(p.name for p in folder.iterdir()) == [f"frame_{i:05d}.png" for i in range(5)]
    codec, back = decode(folder / "frame_00003.png")
    assert codec == "png" and np.array_equal(back[0], frames[3])
    codec, (sheet,) = decode(write_frames(frames, tmp_path / "sheet.png"))
    assert codec == "png" and sheet.shape == (32, 5 * 48 + 4 * 2, 3)
    assert np.array_equal(sheet[:, 50:98], frames[1]) and (sheet[:, 48:50] == 255).all()


def test_without_pyav_mp4_falls_back_to_mp4v_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    writers.pyav.cache_clear()
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    try:
        with caplog.at_level(logging.WARNING, logger="runtime.writers"):
            path = write_frames(clip(), tmp_path / "old.mp4")
            write_frames(clip(), tmp_path / "again.mp4")
        with pytest.raises(OutputPathError, match=r"needs PyAV for the VP9 encoder; pip install av"):
            write_frames(clip(), tmp_path / "out.webm")
    finally:
        writers.pyav.cache_clear()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "mp4v, which browsers do not play" in warnings[0]
    assert "\n" not in warnings[0]
    monkeypatch.delitem(sys.modules, "av")
    codec, back = decode(path)
    assert codec == "mpeg4" and len(back) == 10


def test_contact_sheet_grid():
    sheet = contact_sheet(clip(10, 4, 6), columns=4, gap=1)
    assert sheet.shape == (3 * 4 + 2, 4 * 6 + 3, 3)
    assert np.array_equal(sheet[5:9, 7:13], clip(10, 4, 6)[5])  # row 1, column 1
    assert (sheet[10:, 14:] == 255).all()  # the unused cells of the last row stay white
    assert contact_sheet(clip(32)).shape[1] == 8 * 48 + 7 * 2  # 8 columns by default
    with pytest.raises(ValueError):
        contact_sheet([])


@pytest.mark.parametrize("name", ["out.mp4", "out.webm", "out.gif", "sheet.png", "frames"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_leaves_nothing_behind(tmp_path: Path, name: str, error: type[BaseException]):
    """Without keep_partial, Ctrl-C is a failure like any other: all or nothing (batch clips rely on it)."""
    with pytest.raises(error), open_writer(tmp_path / name) as writer:
        writer.write(clip(1)[0])
        raise error("interrupted")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["out.mp4", "out.webm", "out.gif", "frames"])
def test_ctrl_c_keeps_a_playable_partial_that_a_complete_write_replaces(tmp_path: Path, name: str):
    frames = clip(8)
    with pytest.raises(StoppedEarly) as stopped, open_writer(tmp_path / name, keep_partial=True) as writer:
        for frame in frames[:3]:
            writer.write(frame)
        raise KeyboardInterrupt
    partial = partial_path(tmp_path / name)
    assert stopped.value.partial == partial and stopped.value.frames == 3
    assert isinstance(stopped.value, KeyboardInterrupt)  # CLIs still exit 130
    assert [p.name for p in tmp_path.iterdir()] == [partial.name]  # no temporary file, no final name
    kept = sorted(partial.iterdir()) if partial.is_dir() else [partial]
    assert sum(len(read_mp4(p)) for p in kept) == 3
    write_frames(frames, tmp_path / name)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # the stale partial output is gone


def test_ctrl_c_before_the_first_frame_keeps_nothing(tmp_path: Path):
    with pytest.raises(StoppedEarly) as stopped, open_writer(tmp_path / "out.mp4", keep_partial=True):
        raise KeyboardInterrupt
    assert stopped.value.partial is None and stopped.value.frames == 0
    assert list(tmp_path.iterdir()) == []


def test_output_paths(tmp_path: Path):
    assert [output_kind(p) for p in ("a.mp4", "a.WEBM", "a.GIF", "a.png", "dir")] == [
        "mp4",
        "webm",
        "gif",
        "sheet",
        "frames",
    ]
    assert partial_path("x/out.mp4") == Path("x/out.partial.mp4")
    assert partial_path("x/frames") == Path("x/frames.partial")
    with pytest.raises(OutputPathError, match=r"unknown type '.avi'; use .mp4, .webm, .gif, .png"):
        output_kind("a.avi")
    (tmp_path / "exists.mp4").write_bytes(b"x")
    with (
        pytest.raises(OutputPathError, match="already exists; pass --force"),
        open_writer(tmp_path / "exists.mp4", force=False),
    ):
        pass
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(OutputPathError, match="is not writable"):
        write_frames(clip(1), blocker / "out.mp4")


def test_frames_must_share_one_size(tmp_path: Path):
    with pytest.raises(ValueError, match="one size"):
        write_frames([*clip(2), clip(1, 16, 16)[0]], tmp_path / "out.gif")
    with pytest.raises(ValueError, match="one size"):
        write_frames([*clip(2), clip(1, 16, 16)[0]], tmp_path / "out.mp4")
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        write_frames([np.zeros((4, 4), np.uint8)], tmp_path / "out.mp4")
    with pytest.raises(OutputPathError, match="too small for"):
        write_frames(clip(2, 1, 1), tmp_path / "out.webm")
    assert list(tmp_path.iterdir()) == []
