"""Images in: every accepted kind of input, and one ImageError sentence for every bad one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from runtime.errors import ImageError
from runtime.image_input import MAX_SIDE, Geometry, load_image, prepare
from runtime.imaging import prepare_image


def photo(h: int = 30, w: int = 40) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def test_path_array_and_pil_give_the_same_pixels(tmp_path: Path):
    rgb = photo()
    from_file = load_image(save(tmp_path / "a.png", rgb))
    assert np.array_equal(from_file, rgb)
    assert np.array_equal(load_image(str(tmp_path / "a.png")), rgb)
    assert np.array_equal(load_image(Image.fromarray(rgb)), rgb)
    assert load_image(rgb) is rgb


def test_gray_rgba_palette_and_16_bit_files(tmp_path: Path):
    rgb = photo()
    gray = load_image(save(tmp_path / "g.png", rgb[:, :, 0]))
    assert gray.shape == (30, 40) and gray.dtype == np.uint8
    rgba = np.concatenate([rgb, np.full((30, 40, 1), 7, np.uint8)], axis=2)
    assert load_image(save(tmp_path / "a.png", rgba)).shape == (30, 40, 4)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (30, 40, 3)
    # 16-bit RGB: Pillow would reduce it to 8 bits; the loader keeps all 16 and the channel order.
    rgb16 = np.random.default_rng(1).integers(0, 65536, (30, 40, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[:, :, ::-1])
    loaded = load_image(tmp_path / "rgb16.png")
    assert loaded.dtype == np.uint16 and np.array_equal(loaded, rgb16)
    gray16 = rgb16[:, :, 0]
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    assert np.array_equal(load_image(tmp_path / "g16.png"), gray16)


def test_exif_orientation_is_applied(tmp_path: Path):
    rgb = photo(20, 50)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (50, 20, 3)


def test_jpegs_are_decoded_at_the_smallest_scale_that_still_covers_the_model(tmp_path: Path):
    from export.calibration import landscape

    big = landscape(0, 96)  # smooth like a photo: its reduced decode is close to the full one
    Image.fromarray(np.concatenate([big, big[:, :64]], axis=1)).save(tmp_path / "a.jpg", quality=95)
    assert load_image(tmp_path / "a.jpg").shape == (96, 160, 3)
    assert load_image(tmp_path / "a.jpg", 24).shape == (24, 40, 3)  # 1/4: min(160 // 24, 96 // 24) = 4
    assert load_image(tmp_path / "a.jpg", 13).shape == (24, 40, 3)  # 7 -> the scale below, 4
    assert load_image(tmp_path / "a.jpg", 97).shape == (96, 160, 3)  # smaller than asked: in full
    save(tmp_path / "a.png", big)
    assert load_image(tmp_path / "a.png", 12).shape == (96, 96, 3)  # only JPEG decodes at a scale
    for fit in ("crop", "letterbox"):
        reduced, geometry = prepare(tmp_path / "a.jpg", 24, fit)
        assert geometry == Geometry(96, 160, fit)  # the photo's own size, for upscale
        full = prepare_image(load_image(tmp_path / "a.jpg"), 24, fit)
        assert 10 * np.log10(4 / np.mean((reduced - full) ** 2)) > 35  # dB: the same picture
    # Turned by EXIF: the full size is the turned one.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(big[:, :64]).save(tmp_path / "r.jpg", exif=exif)
    reduced_array = load_image(tmp_path / "r.jpg", 16)
    assert reduced_array.shape == (16, 24, 3)  # 64 x 96 at 1/4, turned
    assert prepare(tmp_path / "r.jpg", 16)[1] == Geometry(64, 96, "crop")


@pytest.mark.parametrize(
    "array",
    [
        photo()[:, :, 0],
        photo(),
        np.concatenate([photo(), np.zeros((30, 40, 1), np.uint8)], axis=2),
        photo().astype(np.uint16) * 257,
        photo().astype(np.float32) / 255,
        photo()[:, :, :1],
    ],
    ids=["gray", "rgb", "rgba", "rgb16", "float", "gray1"],
)
def test_arrays_of_every_supported_kind_prepare(array: np.ndarray):
    prepared, geometry = prepare(array, 16)
    assert prepared.shape == (3, 16, 16) and prepared.dtype == np.float32
    assert geometry == Geometry(30, 40, "crop")
    assert np.array_equal(prepared, prepare_image(array, 16))  # the exact spec, untouched


def write_text(path: Path, text: str = "not an image") -> Path:
    path.write_text(text)
    return path


def truncated(path: Path, fmt: str) -> Path:
    Image.fromarray(photo(64, 64)).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.png", "does not exist; check the path"),
        (lambda d: d, "is a folder, not an image file"),
        (lambda d: write_text(d / "empty.png", ""), "is an empty file"),
        (lambda d: write_text(d / "notes.txt"), "is not an image file Pillow can read"),
        (lambda d: truncated(d / "cut.png", "PNG"), "is truncated or corrupt"),
        (lambda d: truncated(d / "cut.jpg", "JPEG"), "is truncated or corrupt"),
        (
            lambda d: save(d / "dot.png", np.zeros((1, 1, 3), np.uint8)),
            "is 1x1 pixels; an image needs at least",
        ),
        (
            lambda d: save(d / "wide.png", np.zeros((2, MAX_SIDE + 1), np.uint8)),
            "larger than 16384 on a side",
        ),
    ],
    ids=["missing", "folder", "empty", "not-image", "truncated-png", "truncated-jpeg", "1x1", "too-wide"],
)
def test_bad_files_raise_one_sentence_naming_the_file(tmp_path: Path, make, message: str):
    path = make(tmp_path)
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    text = str(info.value)
    assert str(path) in text and "\n" not in text and text.endswith(".")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = save(tmp_path / "a.png", photo())

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(ImageError, match=r"cannot be read \(Permission denied\); check its permissions"):
        load_image(path)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((1, 1, 3), np.uint8), "is 1x1 pixels"),
        (np.zeros((MAX_SIDE + 1, 4), np.uint8), "larger than 16384 on a side"),
        (np.zeros((4, 4, 2), np.uint8), "has shape \\(4, 4, 2\\)"),
        (np.zeros((4, 4, 3), np.int64), "has pixel type int64"),
        (np.full((4, 4, 3), np.nan, np.float32), "contains NaN or infinite values"),
    ],
)
def test_bad_arrays(array: np.ndarray, message: str):
    with pytest.raises(ImageError, match=message):
        load_image(array)


def test_other_objects_are_refused():
    with pytest.raises(ImageError, match="A list cannot be used as an image"):
        load_image([[1, 2], [3, 4]])  # type: ignore[arg-type]


def test_restore_letterbox_gives_back_the_input_size_without_bars():
    # A 20 x 40 input letterboxed into a square has bars above and below; restoring removes them.
    frame = np.full((16, 16, 3), 127, np.uint8)
    frame[4:12] = 200  # the picture area of a 2:1 image in a 16 x 16 letterbox
    restored = Geometry(20, 40, "letterbox").restore(frame)
    assert restored.shape == (20, 40, 3)
    assert abs(int(restored[10, 20, 0]) - 200) <= 1


def test_restore_crop_gives_the_cropped_square_at_input_scale():
    frame = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert Geometry(30, 40, "crop").restore(frame).shape == (30, 30, 3)
    assert Geometry(10, 12, "crop").restore(frame).shape == (10, 10, 3)  # shrinking works too
