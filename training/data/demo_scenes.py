"""The demo's scenes: procedural time-lapses from a seed namespace no training or held-out clip uses.

`dtvnet demo` animates their first frames, and `export.calibration` varies them into the realistic
inputs int8 ranges are fitted to. Numpy-only (torch-free), like `training.data.synth` they come from.
"""

from __future__ import annotations

import numpy as np

from training.data.synth import render_clip

# Seed namespace of demo scenes in `training.data.synth`: never a training (0) or held-out (1) clip.
DEMO_SCENES = 2


def demo_scene(size: int = 256, frames: int = 32, seed: int = 0) -> np.ndarray:
    """A procedural time-lapse (`training.data.synth`: sky, drifting clouds, ridges, maybe a lake),
    frames x size x size x 3 uint8 RGB: the scene the demo model was trained to animate, with a real
    per-scene wind. The one place the demo's input comes from."""
    return render_clip([seed, DEMO_SCENES, 0], frames, size).frames


def demo_landscape(size: int = 256, seed: int = 0) -> np.ndarray:
    """The first frame of `demo_scene`: a landscape photo, size x size x 3 uint8 RGB."""
    return demo_scene(size, 1, seed)[0]
