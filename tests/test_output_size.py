"""Output size and render mode: every bad size is one sentence; the plan says the square rendered and
the frame kept, for crop, letterbox and the photo's own size."""

from __future__ import annotations

import numpy as np
import pytest

from runtime import output_size
from runtime.errors import DTVNetError
from runtime.image_input import Geometry
from runtime.output_size import SizeError, check_render, check_size, decode_side, photo_square, plan


@pytest.mark.parametrize(
    ("size", "said"),
    [
        (0, "outside 1..16384"),
        (-4, "outside 1..16384"),
        (16385, "outside 1..16384"),
        ("big", "not a number"),
        (512.5, "not a whole number"),
        (True, "not a whole number"),
    ],
)
def test_bad_sizes_are_one_sentence(size: object, said: str) -> None:
    with pytest.raises(SizeError, match=said) as caught:
        check_size(size)
    assert isinstance(caught.value, DTVNetError) and isinstance(caught.value, ValueError)
    assert str(caught.value).count(". ") == 0 and str(caught.value).endswith(".")


def test_sizes_as_given_or_as_text() -> None:
    assert check_size(None) is None
    assert check_size("input") == "input"
    assert check_size(512) == 512
    assert check_size(" 1024 ") == 1024
    assert check_size(np.int64(16384)) == 16384
    with pytest.raises(SizeError, match="not a render mode"):
        check_render("sharp")
    assert check_render("resize") == "resize" and check_render(None) is None


def test_plan_crop_letterbox_and_input() -> None:
    crop = Geometry(300, 400, "crop")
    assert plan(None, None, crop, 64) is None
    out = plan(512, None, crop, 64)
    assert out is not None and (out.side, out.height, out.width, out.render) == (512, 512, 512, "guided")
    own = plan("input", None, crop, 64)
    assert own is not None and (own.side, own.height, own.width) == (300, 300, 300)

    letterbox = Geometry(300, 400, "letterbox")
    wide = plan(1000, None, letterbox, 64)
    assert wide is not None and (wide.side, wide.height, wide.width) == (1000, 750, 1000)
    assert wide.crop(np.zeros((1000, 1000, 3), np.uint8)).shape == (750, 1000, 3)
    own = plan("input", "resize", letterbox, 64)
    assert own is not None and (own.side, own.height, own.width, own.render) == (400, 300, 400, "resize")


def test_at_or_below_the_model_side_it_is_resized() -> None:
    geometry = Geometry(256, 256, "crop")
    for size in (32, 64):
        out = plan(size, "guided", geometry, 64)
        assert out is not None and out.render == "resize"
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    small = plan(32, None, geometry, 64)
    assert small is not None and small.resize(frame).shape == (32, 32, 3)
    same = plan(64, None, geometry, 64)
    assert same is not None and same.resize(frame) is frame


def test_photo_square_is_the_models_crop_at_the_output_side() -> None:
    photo = np.zeros((200, 300, 3), np.uint8)
    photo[:, 50:250] = 200  # the central square is bright, the sides dark
    square = photo_square(photo, 100, "crop")
    assert square.shape == (100, 100, 3) and square.dtype == np.uint8
    assert (square == 200).all()
    boxed = photo_square(photo, 150, "letterbox")
    assert boxed.shape == (150, 150, 3) and boxed[0, 0, 0] == 128  # mid-grey bar


def test_decode_side_never_below_the_model() -> None:
    assert decode_side(None, 64) == 64
    assert decode_side(32, 64) == 64
    assert decode_side(512, 64) == 512
    assert decode_side(output_size.INPUT, 64) is None
