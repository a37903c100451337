"""Writers: mp4, gif, png frames, contact sheet; atomic on failure."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from runtime.errors import OutputPathError
from runtime.writers import MP4_CODECS, contact_sheet, mp4_codec, open_writer, output_kind, write_frames


def clip(n: int = 10, h: int = 32, w: int = 48) -> list[np.ndarray]:
    """Frames with a distinct flat colour each, so lossy codecs still tell them apart."""
    return [np.full((h, w, 3), (20 * i, 255 - 20 * i, 100), np.uint8) for i in range(n)]


def read_mp4(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def test_mp4_is_playable_with_the_right_frames(tmp_path: Path):
    frames = clip()
    path = write_frames(frames, tmp_path / "out.mp4", fps=25)
    back = read_mp4(path)
    assert len(back) == len(frames) and back[0].shape == (32, 48, 3)
    assert all(np.abs(a.astype(int) - b).mean() < 8 for a, b in zip(back, frames, strict=True))
    assert mp4_codec() in MP4_CODECS
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) == pytest.approx(25)


def test_gif_png_frames_and_contact_sheet(tmp_path: Path):
    frames = clip(5)
    gif = Image.open(write_frames(frames, tmp_path / "out.gif", fps=20))
    assert gif.n_frames == 5 and gif.info["duration"] == 50
    folder = write_frames(frames, tmp_path / "frames")
    assert sorted(p.name for p in folder.iterdir()) == [f"frame_{i:05d}.png" for i in range(5)]
    assert np.array_equal(np.asarray(Image.open(folder / "frame_00003.png")), frames[3])
    sheet = np.asarray(Image.open(write_frames(frames, tmp_path / "sheet.png")))
    assert sheet.shape == (32, 5 * 48 + 4 * 2, 3)
    assert np.array_equal(sheet[:, 50:98], frames[1]) and (sheet[:, 48:50] == 255).all()


def test_contact_sheet_grid():
    sheet = contact_sheet(clip(10, 4, 6), columns=4, gap=1)
    assert sheet.shape == (3 * 4 + 2, 4 * 6 + 3, 3)
    assert np.array_equal(sheet[5:9, 7:13], clip(10, 4, 6)[5])  # row 1, column 1
    assert (sheet[10:, 14:] == 255).all()  # the unused cells of the last row stay white
    assert contact_sheet(clip(32)).shape[1] == 8 * 48 + 7 * 2  # 8 columns by default
    with pytest.raises(ValueError):
        contact_sheet([])


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "sheet.png", "frames"])
def test_a_failed_write_leaves_nothing_behind(tmp_path: Path, name: str):
    with pytest.raises(RuntimeError, match="interrupted"), open_writer(tmp_path / name) as writer:
        writer.write(clip(1)[0])
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_output_paths(tmp_path: Path):
    assert [output_kind(p) for p in ("a.mp4", "a.GIF", "a.png", "dir")] == ["mp4", "gif", "sheet", "frames"]
    with pytest.raises(OutputPathError, match=r"unknown type '.avi'; use .mp4, .gif, .png"):
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
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        write_frames([np.zeros((4, 4), np.uint8)], tmp_path / "out.mp4")
