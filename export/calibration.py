"""Realistic generator inputs: procedural landscapes and seeded motion vectors.

Reduced precision is judged on the inputs it will see. Uniform noise, which `export.parity` feeds to
exact artifacts, makes every activation larger and flatter than a photo does, so int8 ranges calibrated
on noise waste most of their 256 levels on a real photo, and a PSNR measured on noise says little
about one. Here each input is one of the demo's landscapes (`training.data.demo_scenes`, scenes of
`training.data.synth`) varied per seed (crop and zoom, mirror, exposure, contrast, colour balance) and
pre-processed exactly as the runtime pre-processes a photo; its motion is vector 0 of the same seed's
stream (`runtime.motion`).

Calibration and checking draw from disjoint seed ranges, so quality is never measured on the images
the int8 ranges were fitted to. Torch-free.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from runtime.imaging import prepare_image
from runtime.motion import seeded_vector
from training.data.demo_scenes import demo_landscape

CALIBRATION_SEEDS = range(1_000, 1_032)  # fit int8 ranges on these
SELECTION_SEEDS = range(2_000, 2_016)  # choose which layers are int8 on these
CHECK_SEED_OFFSET = 1 << 20  # parity and quality checks draw seeds from here up
SOURCE = (
    "procedural landscapes (training.data.demo_scenes.demo_landscape, varied per seed in crop, mirror, "
    "exposure, contrast and colour) pre-processed like photos, with seeded N(0, I) motion"
)


@functools.lru_cache(maxsize=128)
def landscape(seed: int, size: int = 256) -> np.ndarray:
    """One varied procedural landscape, size x size x 3 uint8 RGB, read-only, rendered at twice `size`
    (the zoom crops up to half of it away). Kept (128 at most): every int8 export and parity check in a
    process draws the same seeds, and rendering costs ~1 us a pixel (0.25 s at 256, 0.02 s at 64)."""
    rng = np.random.default_rng(seed)
    base = demo_landscape(2 * size, seed).astype(np.float32) / 255.0
    side = int(2 * size * rng.uniform(0.55, 1.0))  # zoom in by up to ~2x
    top, left = rng.integers(0, 2 * size - side + 1, size=2)
    image = base[top : top + side, left : left + side]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    gain = rng.uniform(0.8, 1.2, size=3).astype(np.float32)  # colour balance
    mean = image.mean()
    image = (image - mean) * np.float32(rng.uniform(0.7, 1.3)) + mean  # contrast
    image = np.clip(image * gain * np.float32(rng.uniform(0.6, 1.25)), 0.0, 1.0)  # exposure
    image = image ** np.float32(rng.uniform(0.75, 1.35))  # gamma
    out = (cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) * 255).round().astype(np.uint8)
    out.flags.writeable = False  # shared by every caller
    return out


def landscape_batch(seeds: Sequence[int], image_size: int, motion_dim: int) -> dict[str, np.ndarray]:
    """Generator feeds for `seeds`: `image` [B, 3, S, S] in [-1, 1] and `motion` [B, motion_dim]. Each
    landscape is rendered at 4x the model's side and area-averaged down, like a photo from a camera
    (512 px for the paper's 128 px; a 64 px model's costs 1/4 of that)."""
    images = [prepare_image(landscape(int(s), 2 * image_size), image_size) for s in seeds]
    motions = [seeded_vector(int(s), motion_dim) for s in seeds]
    return {"image": np.stack(images), "motion": np.stack(motions)}


def landscape_feeds(
    seeds: Iterable[int], image_size: int, motion_dim: int, batch: int = 1
) -> list[dict[str, np.ndarray]]:
    """`landscape_batch` for consecutive groups of `batch` seeds."""
    seeds = list(seeds)
    return [
        landscape_batch(seeds[i : i + batch], image_size, motion_dim) for i in range(0, len(seeds), batch)
    ]


def check_seeds(rng: np.random.Generator, count: int) -> list[int]:
    """`count` fresh seeds for a parity or quality check, never a calibration or selection seed."""
    return [int(s) for s in rng.integers(CHECK_SEED_OFFSET, 1 << 40, size=count)]
