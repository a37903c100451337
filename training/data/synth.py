"""Procedural time-lapse landscapes with exactly known motion, made by this project.

Each clip is a scene drawn from its own seed: a sky gradient, a layer of fractal clouds, one or two
terrain silhouettes and, for some clips, water that mirrors the sky. The clouds drift with a per-clip
wind (speed and direction) and slowly change shape. Because the cloud layer is a periodic field
synthesized in the Fourier domain, the drift is an exact sub-pixel translation and the ground-truth
motion is known: `wind` pixels per frame in the sky, zero on the terrain, and the wind mirrored
vertically on the water.

They serve the tests, CPU training and the bundled demo model. `dtvnet data synth` writes them in the
Sky Time-lapse layout (`<split>/<video>/<clip>/<clip>_frames_XXXX.jpg`) so that the same loader reads
real and procedural data. Torch-free.

Usage:
    dtvnet data synth --out data/synth --clips 1000 [--test-clips 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from runtime.fsutil import atomic_dir, refuse_overwrite

log = logging.getLogger(__name__)

TRAIN_SPLIT, TEST_SPLIT = "sky_train", "sky_test"
MOTION_FILE = "motion.json"  # per clip: the scene parameters, wind in pixels per frame
JPEG_QUALITY = 95
# Wind speed range in pixels per frame at 128 x 128 (scaled with the rendered size).
SPEED_RANGE_128 = (0.6, 2.0)

_PALETTES = {  # (zenith, horizon, cloud light, cloud shadow) RGB in [0, 1]
    "day": ((0.16, 0.36, 0.72), (0.62, 0.78, 0.95), (0.98, 0.98, 0.98), (0.55, 0.60, 0.70)),
    "sunset": ((0.20, 0.22, 0.48), (0.98, 0.62, 0.32), (1.00, 0.82, 0.65), (0.42, 0.28, 0.38)),
    "dusk": ((0.06, 0.08, 0.22), (0.55, 0.35, 0.55), (0.85, 0.70, 0.85), (0.22, 0.18, 0.32)),
    "overcast": ((0.45, 0.50, 0.58), (0.78, 0.80, 0.82), (0.92, 0.92, 0.93), (0.40, 0.42, 0.46)),
}


@dataclass(frozen=True)
class SceneParams:
    """Everything that defines one clip; drawn from the clip's seed by `draw_scene`."""

    palette: str
    wind: tuple[float, float]  # (u, v) pixels per frame at the rendered size; v points down
    spectral_slope: float  # amplitude ~ |k|^-slope: larger is smoother, bigger clouds
    coverage: float  # share of the sky under cloud, roughly
    evolution: float  # radians per frame of phase drift at the reference frequency: shape change
    horizon: float  # base of the mountains, as a fraction of the height from the top
    ridges: int  # 1 or 2 mountain ranges
    water: float  # water line as a fraction of the height, or 0 for no water


@dataclass
class SynthClip:
    frames: np.ndarray  # uint8 [T, S, S, 3] RGB
    flows: np.ndarray  # float32 [2, T, S, S] exact motion, flow 0 zero (the clip convention)
    params: SceneParams


def draw_scene(rng: np.random.Generator, size: int) -> SceneParams:
    """Random scene parameters; the wind speed range scales with `size`."""
    speed = rng.uniform(*SPEED_RANGE_128) * size / 128
    angle = rng.uniform(0, 2 * np.pi)
    has_water = rng.random() < 0.5
    horizon = rng.uniform(0.6, 0.78)
    return SceneParams(
        palette=str(rng.choice(list(_PALETTES))),
        wind=(float(speed * np.cos(angle)), float(speed * np.sin(angle))),
        spectral_slope=float(rng.uniform(1.3, 2.0)),
        coverage=float(rng.uniform(0.45, 0.8)),
        evolution=float(rng.uniform(0.003, 0.012)),
        horizon=float(horizon),
        ridges=int(rng.integers(1, 3)),
        water=float(horizon + rng.uniform(0.0, 0.04)) if has_water else 0.0,
    )


@dataclass(frozen=True)
class _Spectrum:
    """A periodic fractal field's spectrum where it is nonzero: a ring of low frequencies, ~9% of the grid.

    Kept sparse because rendering is on the critical path of every int8 export and quality check
    (`export.calibration` renders 512 px scenes): exponentials and inverse transforms over the whole
    grid cost three times what the ring needs, for the same numbers."""

    period: int
    rows: np.ndarray  # grid position of each frequency in the ring
    cols: np.ndarray
    used_rows: np.ndarray  # rows with a frequency in the ring (the others stay zero)
    values: np.ndarray  # complex amplitude
    kx: np.ndarray  # cycles per period
    ky: np.ndarray
    rate: np.ndarray  # phase change per unit of evolution


def _cloud_spectrum(rng: np.random.Generator, period: int, slope: float) -> _Spectrum:
    """Random phases on a 1/f^slope ring of frequencies, and random phase rates (shape change)."""
    k = np.fft.fftfreq(period, d=1.0 / period)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    radius = np.hypot(kx, ky)
    rows, cols = np.nonzero((radius >= 1.5) & (radius <= period / 6))
    phase = rng.uniform(0, 2 * np.pi, radius.shape)  # drawn over the whole grid: the seed's stream of
    rate = rng.normal(0.0, 1.0, radius.shape)  # random numbers, hence every scene, stays as it was
    ring = radius[rows, cols]
    return _Spectrum(
        period,
        rows,
        cols,
        np.unique(rows),
        ring**-slope * np.exp(1j * phase[rows, cols]),
        kx[rows, cols],
        ky[rows, cols],
        rate[rows, cols] * np.sqrt(ring / 8.0),
    )


def _field(spectrum: _Spectrum, values: np.ndarray, size: int) -> np.ndarray:
    """The top-left size x size corner of the real field with `values` on the ring: the inverse 2-D
    transform row by row (rows off the ring stay zero), then only the `size` columns that are kept."""
    period = spectrum.period
    grid = np.zeros((period, period), np.complex128)
    grid[spectrum.rows, spectrum.cols] = values
    used = spectrum.used_rows
    grid[used] = np.fft.ifft(grid[used], axis=1)
    return np.fft.ifft(grid[:, :size], axis=0)[:size].real


def _cloud_density(spectrum: _Spectrum, shift: np.ndarray, phase_t: float, size: int) -> np.ndarray:
    """The field translated by `shift` (x, y) pixels, phases advanced by `phase_t` (shape change).

    Translation is a linear phase in the Fourier domain, so it is exact at any sub-pixel amount.
    The real part of a non-Hermitian spectrum is still a real periodic field with the same motion.
    """
    s = spectrum
    ramp = np.exp(-2j * np.pi * (s.kx * shift[0] + s.ky * shift[1]) / s.period + 1j * s.rate * phase_t)
    return _field(s, s.values * ramp, size)


def _ridge(rng: np.random.Generator, width: int, roughness: float) -> np.ndarray:
    """A 1-D fractal profile in [-1, 1] of length `width` (sum of random sines, 1/f amplitudes)."""
    x = np.arange(width) / width
    profile = np.zeros(width)
    for octave in range(1, 6):
        freq = rng.uniform(0.6, 1.4) * 2 ** (octave - 1)
        profile += np.sin(2 * np.pi * (freq * x + rng.random())) * roughness**octave
    return profile / (np.abs(profile).max() + 1e-9)


def _water(p: SceneParams, size: int) -> tuple[int, np.ndarray]:
    """The first water row (`size` when the scene has none) and, per row, the row it mirrors: shared by
    the rendering and its ground-truth flows, which must agree."""
    water_row = round(p.water * size) if p.water else size
    return water_row, np.clip(2 * water_row - 1 - np.arange(size), 0, size - 1)


def render_clip(seed: int | Sequence[int], frames: int = 48, size: int = 128) -> SynthClip:
    """Render one clip deterministically from `seed`: frames and their exact ground-truth flows."""
    rng = np.random.default_rng(seed)
    p = draw_scene(rng, size)
    zenith, horizon_rgb, light, shadow = (np.array(c) for c in _PALETTES[p.palette])
    rows = np.linspace(0.0, 1.0, size)[:, None, None]
    sky = zenith + (horizon_rgb - zenith) * np.clip(rows / p.horizon, 0, 1) ** 0.8  # [S, 1, 3]
    sky = np.broadcast_to(sky, (size, size, 3))

    # Terrain: masks and colours of each range (far first), constant over time.
    y = np.arange(size)[:, None] / size
    # Static texture (rock, grass) on the terrain: real landscapes have it, and it keeps the optical
    # flow of still ground well defined, where a flat dark band would leave it to noise.
    grain_spectrum = _cloud_spectrum(rng, size, 1.0)
    grain = _field(grain_spectrum, grain_spectrum.values, size)
    grain = (grain / (grain.std() + 1e-9))[:, :, None]
    terrain_alpha = np.zeros((size, size, 1))
    terrain_rgb = np.zeros((size, size, 3))
    for i in range(p.ridges):
        height = rng.uniform(0.08, 0.22) * (1.0 if i == 0 else 0.6)
        base = p.horizon + 0.05 * i
        line = base - height * (0.5 + 0.5 * _ridge(rng, size, rng.uniform(0.45, 0.6)))
        alpha = np.clip((y - line[None, :]) * size, 0, 1)[:, :, None]  # one-pixel soft edge
        haze = 0.55 - 0.35 * i
        colour = (1 - haze) * rng.uniform(0.12, 0.35, 3) + haze * horizon_rgb
        shade = colour * (0.75 + 0.25 * np.clip((y - line[None, :]) * 4, 0, 1)[:, :, None])
        shade = shade * (1 + 0.12 * grain)
        terrain_rgb = terrain_rgb * (1 - alpha) + shade * alpha
        terrain_alpha = terrain_alpha + alpha * (1 - terrain_alpha)
    # Foreground below the ranges (water takes its place when the scene has water).
    ground = np.clip((y - (p.horizon + 0.06))[:, :, None] * size, 0, 1) * (p.water == 0)
    earth = np.array([0.22, 0.34, 0.14]) + rng.random() * np.array([0.14, -0.06, 0.04])  # grass to soil
    ground_rgb = earth * rng.uniform(0.7, 1.3) * (1.0 - 0.4 * np.clip(y - p.horizon, 0, 1))[:, :, None]
    ground_rgb = ground_rgb * (1 + 0.18 * grain)
    terrain_rgb = terrain_rgb * (1 - ground) + ground_rgb * ground
    terrain_alpha = terrain_alpha + ground * (1 - terrain_alpha)

    period = 2 * size
    spectrum = _cloud_spectrum(rng, period, p.spectral_slope)
    wind = np.array(p.wind)
    water_row, mirror = _water(p, size)  # mirror: the row reflected into each water row
    depth = np.clip((np.arange(size) - water_row) / size, 0, 1)[:, None]  # water darkens towards the viewer
    shade = 0.85 - 0.5 * depth
    is_water = (np.arange(size) >= water_row)[:, None, None]
    threshold = None
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        density = _cloud_density(spectrum, wind * t, p.evolution * t, size)
        if threshold is None:  # normalize once, from the first frame, so the clip does not flicker
            scale = density.std() + 1e-9
            threshold = np.quantile(density / scale, 1 - p.coverage)
        d = density / scale - threshold
        alpha = np.clip(d * 1.5, 0, 1)[:, :, None]
        cloud = light + (shadow - light) * np.clip(d * 0.5, 0, 1)[:, :, None]
        image = sky * (1 - alpha) + cloud * alpha
        image = image * (1 - terrain_alpha) + terrain_rgb * terrain_alpha
        if p.water:
            reflected = image[mirror] * shade[:, :, None] + 0.05 * np.array([0.1, 0.2, 0.3])
            image = np.where(is_water, reflected, image)
        out[t] = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return SynthClip(out, ground_truth_flows(p, frames, size, terrain_alpha[:, :, 0]), p)


def ground_truth_flows(p: SceneParams, frames: int, size: int, terrain_alpha: np.ndarray) -> np.ndarray:
    """[2, T, S, S]: the wind where the sky shows, zero on terrain, the mirrored wind on water."""
    sky = (terrain_alpha < 0.5).astype(np.float32)
    u = np.float32(p.wind[0]) * sky
    v = np.float32(p.wind[1]) * sky
    if p.water:
        water_row, mirror = _water(p, size)
        u[water_row:] = np.float32(p.wind[0]) * sky[mirror][water_row:]
        v[water_row:] = -np.float32(p.wind[1]) * sky[mirror][water_row:]
    flows = np.zeros((2, frames, size, size), np.float32)
    flows[0, 1:] = u
    flows[1, 1:] = v
    return flows


def clip_seed(seed: int, split: str, index: int) -> list[int]:
    """The seed of clip `index` of `split`: train and test scenes never share a seed."""
    return [seed, 0 if split == TRAIN_SPLIT else 1, index]


def write_dataset(
    out: str | Path,
    clips: int,
    *,
    test_clips: int | None = None,
    seed: int = 0,
    frames: int = 48,
    size: int = 128,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Write `clips` training and `test_clips` held-out clips in the Sky Time-lapse layout (atomically).

    Each clip folder also holds motion.json (its scene parameters, wind in pixels per frame), which the
    loaders ignore.
    """
    if clips < 1 or frames < 2 or size < 8:
        raise ValueError(f"need clips >= 1, frames >= 2 and size >= 8 (got {clips}, {frames}, {size})")
    refuse_overwrite(out, force, "data folder")
    test_clips = max(1, clips // 10) if test_clips is None else test_clips
    jobs = [(TRAIN_SPLIT, i) for i in range(clips)] + [(TEST_SPLIT, i) for i in range(test_clips)]
    with atomic_dir(out) as tmp:
        for split, index in tqdm(jobs, desc="synth clips", unit="clip", disable=not progress):
            video = f"synth_{seed}_{index:06d}"
            name = f"{video}_1"
            folder = tmp / split / video / name
            folder.mkdir(parents=True)
            scene_seed = clip_seed(seed, split, index)
            clip = render_clip(scene_seed, frames, size)
            for t, frame in enumerate(clip.frames):
                bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                path = folder / f"{name}_frames_{t + 1:08d}.jpg"
                cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            meta = {
                "seed": scene_seed,
                "frames": frames,
                "size": size,
                **asdict(clip.params),
            }
            (folder / MOTION_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / "synth.json").write_text(
            json.dumps(
                {
                    "generator": "training.data.synth",
                    "seed": seed,
                    "clips": clips,
                    "test_clips": test_clips,
                    "frames": frames,
                    "size": size,
                },
                indent=2,
            )
            + "\n"
        )
    return Path(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dtvnet data", description="Training data tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("synth", help="write procedural time-lapse clips in the Sky Time-lapse layout")
    p.add_argument("--out", type=Path, required=True, help="folder to create (sky_train/ and sky_test/)")
    p.add_argument("--clips", type=int, required=True, help="number of training clips")
    p.add_argument("--test-clips", type=int, default=None, help="held-out clips (default: clips // 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=48, help="frames per clip (default 48)")
    p.add_argument("--size", type=int, default=128, help="frame side in pixels (default 128)")
    p.add_argument(
        "--force", action="store_true", help="replace a synthetic data set already at --out (nothing else)"
    )
    args = parser.parse_args(argv)
    try:
        out = write_dataset(
            args.out,
            args.clips,
            test_clips=args.test_clips,
            seed=args.seed,
            frames=args.frames,
            size=args.size,
            force=args.force,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {out}")
    return 0
