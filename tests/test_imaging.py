"""The exactly specified pre/post-processing shared with the C++ host."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.imaging import fit_square, prepare_image, resize_square, to_rgb255, to_uint8_frames


def test_channels_and_depths_agree():
    rgb8 = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb8, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    rgb16 = rgb8.astype(np.uint16) * 257
    rgbf = rgb8.astype(np.float64) / 255.0
    for other in (rgba, rgb16, rgbf):
        np.testing.assert_allclose(to_rgb255(other), to_rgb255(rgb8), atol=1e-4)
    gray = rgb8[:, :, 0]
    assert np.array_equal(to_rgb255(gray)[:, :, 2], gray.astype(np.float32))
    assert to_rgb255(gray[:, :, None]).shape == (5, 7, 3)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 2), np.uint8), np.zeros((2, 2, 3), np.int64), np.zeros(5)])
def test_unsupported_arrays(bad):
    with pytest.raises(ValueError):
        to_rgb255(bad)


def test_crop_takes_the_central_square():
    img = np.arange(5 * 8, dtype=np.float32).reshape(5, 8)[:, :, None].repeat(3, 2)
    square = fit_square(img, "crop")
    assert square.shape == (5, 5, 3) and square[0, 0, 0] == img[0, 1, 0]  # left offset (8 - 5) // 2 = 1


def test_letterbox_pads_with_mid_grey():
    img = np.zeros((2, 6, 3), np.float32)
    square = fit_square(img, "letterbox")
    assert square.shape == (6, 6, 3)
    assert (square[:2] == 127.5).all() and (square[2:4] == 0).all() and (square[4:] == 127.5).all()
    with pytest.raises(ValueError):
        fit_square(img, "stretch")


def test_resize_shrinks_by_area_and_keeps_equal_sizes():
    square = np.zeros((4, 4, 3), np.float32)
    square[:2, :2] = 100.0
    small = resize_square(square, 2)
    assert small[0, 0, 0] == pytest.approx(100.0) and small[1, 1, 0] == 0.0
    assert np.array_equal(resize_square(square, 4), square)
    assert resize_square(square, 8).shape == (8, 8, 3)


def test_prepare_image_range_layout_and_exact_values():
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :, 0] = 255
    out = prepare_image(img, 4)
    assert out.shape == (3, 4, 4) and out.dtype == np.float32
    assert (out[0] == 1.0).all() and (out[1] == -1.0).all()


def test_frames_round_half_to_even_and_clip():
    # 0.0 -> 127.5 exactly -> 128 (ties to even); -0.5 -> 63.75 -> 64.
    video = np.array([-1.0, -2.0, 1.0, 3.0, 0.0, -0.5], np.float32).reshape(3, 2, 1, 1)
    frames = to_uint8_frames(video)
    assert frames.shape == (2, 1, 1, 3) and frames.dtype == np.uint8
    assert frames[:, 0, 0, :].T.ravel().tolist() == [0, 0, 255, 255, 128, 64]
    assert to_uint8_frames(np.zeros((2, 3, 4, 5, 5))).shape == (2, 4, 5, 5, 3)
    # overwrite: the same frames computed in the caller's own buffer (float32 only; others are left alone).
    scratch = video.copy()
    assert np.array_equal(to_uint8_frames(scratch, overwrite=True), frames)
    assert not np.array_equal(scratch, video)
    doubles = video.astype(np.float64)
    assert np.array_equal(to_uint8_frames(doubles, overwrite=True), frames) and (doubles == video).all()
