"""runtime.hd: guided HD frames keep the photo where the scene is still, move its detail with the
model's flows, fade it with motion, and refuse malformed inputs with one sentence."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.errors import ArtifactError, ImageError
from runtime.hd import GuidedParams, GuidedRenderer, render, upscale

S, H, T = 16, 64, 6  # model side, HD side (8 HD pixels per half-resolution flow pixel), frames
NO_FADE = GuidedParams(motion_scale=1e9, disagreement=0.0, still_flow=0.0)


def photo(seed: int = 0, height: int = H, width: int = H) -> np.ndarray:
    """A mid-grey photo with sharp detail (+-40 grey levels): nothing saturates or clips."""
    rng = np.random.default_rng(seed)
    return (100 + rng.integers(-40, 41, (height, width, 3))).astype(np.uint8)


def model_frames(image: np.ndarray, count: int = T) -> np.ndarray:
    small = cv2.resize(image, (S, S), interpolation=cv2.INTER_AREA)
    return np.repeat(small[None], count, axis=0)


def flows(u: float, v: float = 0.0, count: int = T) -> np.ndarray:
    out = np.zeros((count, 2, S // 2, S // 2), np.float32)
    out[1:, 0], out[1:, 1] = u, v
    return out


def test_frame0_is_the_photo_exactly() -> None:
    image = photo()
    frames = list(render(image, model_frames(image) + 3, flows(0.7)))
    assert len(frames) == T
    np.testing.assert_array_equal(frames[0], image)


def test_still_scene_keeps_the_photo() -> None:
    """Zero flows and a model that repeats its frame 0: every frame is the photo, to the grey level."""
    image = photo(1)
    for frame in render(image, model_frames(image), flows(0.0)):
        np.testing.assert_array_equal(frame, image)


def test_flows_under_still_flow_count_as_none() -> None:
    image = photo(2)
    params = GuidedParams(still_flow=0.1)
    for frame in render(image, model_frames(image), flows(0.04, -0.03), params=params):
        np.testing.assert_array_equal(frame, image)


def test_known_translation_moves_the_detail() -> None:
    """A flow of one half-resolution pixel per frame to the right moves the detail 8 HD pixels a frame:
    frame t's detail at column c is the photo's at c - 8 t (away from the left border it enters from)."""
    image = photo(3)
    model = model_frames(image)
    base = cv2.resize(model[0], (H, H), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    detail = image.astype(np.int16) - base
    renderer = GuidedRenderer(image, model[0], NO_FADE)
    renderer.frame(0, model[0])
    f = flows(1.0)
    for t in range(1, 4):
        frame = renderer.frame(t, model[t], f[t])
        shift = 8 * t
        interior = slice(shift + 8, H)
        expected = base[:, interior] + detail[:, interior.start - shift : H - shift]
        np.testing.assert_array_equal(frame[:, interior].astype(np.int16), expected)
        assert not np.array_equal(frame[:, interior], image[:, interior])


def test_detail_fades_with_travelled_motion() -> None:
    """With the default fading, the detail left after a long drift is a small part of frame 1's."""
    image = photo(4)
    model = model_frames(image, 24)
    frames = list(render(image, model, flows(1.0, 0.5, 24)))
    base = upscale(model[0], H, H).astype(np.float32)
    left = [np.abs(frames[t].astype(np.float32) - base).mean() for t in (1, 23)]
    assert left[1] < 0.2 * left[0]


def test_model_disagreement_fades_the_detail() -> None:
    """A model frame unlike its frame 0 moved along the flows (new content) drops the photo's detail."""
    image = photo(5)
    model = model_frames(image)
    changed = np.clip(model.astype(np.int16) + 60, 0, 255).astype(np.uint8)  # 60 grey levels brighter
    params = GuidedParams(motion_scale=1e9, disagreement=16.0, still_flow=0.0)
    frame = list(render(image, np.concatenate([model[:1], changed[1:]]), flows(0.0), params=params))[1]
    np.testing.assert_allclose(frame, upscale(changed[1], H, H), atol=1)


def test_shapes_dtypes_and_float_frames() -> None:
    """Float model frames in [0, 255] render like uint8 ones; a non-square photo keeps its size."""
    image = photo(6, 48, 80)
    model = np.stack([cv2.resize(image, (S, S), interpolation=cv2.INTER_AREA)] * T)
    as_uint8 = list(render(image, model, flows(0.3)))
    as_float = list(render(image, model.astype(np.float32), flows(0.3)))
    assert [f.shape for f in as_uint8] == [(48, 80, 3)] * T
    assert all(f.dtype == np.uint8 and f.flags.c_contiguous for f in as_uint8)
    for a, b in zip(as_uint8, as_float, strict=True):
        np.testing.assert_array_equal(a, b)


def test_resize_mode_is_plain_interpolation() -> None:
    image = photo(7)
    model = model_frames(image) + np.arange(T, dtype=np.uint8)[:, None, None, None]
    frames = list(render(image, model, mode="resize"))
    assert len(frames) == T
    for frame, small in zip(frames, model, strict=True):
        np.testing.assert_array_equal(frame, cv2.resize(small, (H, H), interpolation=cv2.INTER_CUBIC))


@pytest.mark.parametrize(
    ("bad_photo", "message"),
    [
        (np.zeros((H, H, 3), np.float32), "uint8"),
        (np.zeros((H, H), np.uint8), "H x W x 3"),
        (np.zeros((8, 8, 3), np.uint8), "smaller than the model's frames"),
    ],
)
def test_bad_photo(bad_photo: np.ndarray, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        list(render(bad_photo, model_frames(photo()), flows(0.0)))


def test_bad_model_outputs() -> None:
    image = photo()
    model = model_frames(image)
    with pytest.raises(ArtifactError, match="not of even sides"):
        GuidedRenderer(image, np.zeros((15, 15, 3), np.uint8))
    renderer = GuidedRenderer(image, model[0])
    renderer.frame(0, model[0])
    with pytest.raises(ArtifactError, match="re-export the artifact"):
        renderer.frame(1, model[1], np.zeros((2, S, S), np.float32))
    with pytest.raises(ArtifactError, match="re-export the artifact"):
        renderer.frame(1, model[1], None)
    with pytest.raises(ArtifactError, match="like its frame 0"):
        renderer.frame(1, np.zeros((S + 2, S + 2, 3), np.uint8), np.zeros((2, S // 2, S // 2), np.float32))
    with pytest.raises(ArtifactError, match="not H x W x 3"):
        renderer.frame(1, np.zeros((S, S), np.uint8), np.zeros((2, S // 2, S // 2), np.float32))
    with pytest.raises(ArtifactError, match="needs the model's flows"):
        list(render(image, model))


def test_frames_stream_in_order() -> None:
    image = photo()
    model = model_frames(image)
    renderer = GuidedRenderer(image, model[0])
    renderer.frame(0, model[0])
    with pytest.raises(ValueError, match="frame 1 comes next, not 2"):
        renderer.frame(2, model[2], flows(0.0)[2])
    renderer.frame(1, model[1], flows(0.0)[1])
    np.testing.assert_array_equal(renderer.frame(0, model[0]), image)  # frame 0 restarts the stream


def test_unknown_render_mode() -> None:
    with pytest.raises(ValueError, match="guided, resize"):
        list(render(photo(), model_frames(photo()), flows(0.0), mode="sharp"))  # type: ignore[arg-type]
