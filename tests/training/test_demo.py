"""The bundled demo model: present, small, loadable, 32 frames, and driven by its motion vector."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from runtime.flow import clip_flows
from runtime.imaging import prepare_image, to_uint8_frames
from training import checkpoint as ckpt_io
from training.data.synth import TEST_SPLIT, clip_seed, render_clip
from training.demo import demo_checkpoint
from training.evaluate import mean_flow
from training.model import preset


@pytest.fixture(scope="module")
def demo():
    return ckpt_io.load(demo_checkpoint())


def test_demo_checkpoint_is_shipped_and_small(demo):
    folder = demo_checkpoint()
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 40 * 2**20
    assert {"generator", "flow_encoder"} <= set(demo.components)
    assert demo.config == preset("demo") and demo.config.frames == 32
    assert demo.metadata["train_config"]["preset"] == "demo"


def _clip(index: int, size: int):
    """A held-out procedural clip at the model's resolution, prepared as training prepares frames."""
    clip = render_clip(clip_seed(0, TEST_SPLIT, index), 32, 128)
    frames = np.stack([to_uint8_frames(prepare_image(f, size)[:, None])[0] for f in clip.frames])
    return frames, clip.params.wind


def test_two_motion_vectors_move_the_same_image_differently(demo):
    """Motion encoded from two clips whose winds point apart drives one image in two directions."""
    generator, flow_encoder = demo.generator(), demo.flow_encoder()
    size = demo.config.image_size
    clips = [_clip(i, size) for i in range(6)]
    winds = [np.array(w) for _, w in clips]
    a, b = min(
        ((i, j) for i in range(6) for j in range(i + 1, 6)),
        key=lambda ij: (
            winds[ij[0]] @ winds[ij[1]] / np.linalg.norm(winds[ij[0]]) / np.linalg.norm(winds[ij[1]])
        ),
    )
    flows = torch.from_numpy(np.stack([clip_flows(clips[k][0]) for k in (a, b)]))
    image = (
        torch.from_numpy(clips[0][0][0].transpose(2, 0, 1)).float().div(127.5).sub(1).expand(2, -1, -1, -1)
    )
    with torch.no_grad():
        videos = to_uint8_frames(generator(image, flow_encoder.encode(flows)).video.numpy())
    moved = [mean_flow(clip_flows(v)) for v in videos]
    cosine = moved[0] @ moved[1] / (np.linalg.norm(moved[0]) * np.linalg.norm(moved[1]))
    assert cosine < 0.5, moved  # more than 60 degrees apart
    for k, m in zip((a, b), moved, strict=True):
        assert m @ winds[k] > 0, (m, winds[k])  # each follows its reference clip's wind
