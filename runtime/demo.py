"""`dtvnet demo`: no arguments, no network. The bundled demo model makes a time-lapse of a procedural
landscape and writes an mp4 and a contact sheet.

The first run exports the demo checkpoint to ONNX in the user cache ($XDG_CACHE_HOME/dtvnet or
~/.cache/dtvnet, keyed by the checkpoint); later runs reuse that export and never import torch.

Usage:
    dtvnet demo [--checkpoint CKPT] [--out dtvnet-demo] [--seed 0] [--clips 4] [--fps 25]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from export.manifest import resolve_artifact, verify_integrity
from runtime.backends import CHECKPOINT_CONFIG, is_checkpoint
from runtime.errors import CheckpointError, DTVNetError
from runtime.fsutil import atomic_file, ensure_writable_dir, sha256_file, user_cache_dir
from runtime.generate import frame_count, write_stream
from runtime.generator import Generator

log = logging.getLogger(__name__)


def default_checkpoint() -> Path:
    """The bundled demo model (`training.demo.demo_checkpoint()`), if this install has one."""
    try:
        from training.demo import demo_checkpoint
    except ModuleNotFoundError as exc:
        if exc.name not in ("training.demo", "training"):
            raise
        raise CheckpointError(
            "This install has no bundled demo model (training.demo is missing); pass a checkpoint with "
            "`dtvnet demo --checkpoint CKPT`, for example one from "
            "`dtvnet checkpoint init runs/tiny --preset tiny`."
        ) from None
    return Path(demo_checkpoint())


def demo_landscape(size: int = 256, seed: int = 0) -> np.ndarray:
    """A procedural landscape photo, size x size x 3 uint8 RGB: sky, sun, clouds, two mountain ridges
    and a lake. The one place the demo's input comes from."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    sky = np.stack([0.35 + 0.5 * y, 0.55 + 0.35 * y, 0.95 - 0.1 * y], axis=-1)
    sun = np.exp(-((x - 0.75) ** 2 + (y - 0.3) ** 2) / 0.003)[..., None] * np.array(
        (1.0, 0.8, 0.4), np.float32
    )
    noise = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), size / 24)
    fade = np.clip((0.55 - y) / 0.2, 0, 1)  # clouds thin out towards the horizon
    clouds = (np.clip((noise - noise.mean()) / (noise.std() + 1e-6), 0, None) * fade)[..., None]
    image = sky + 0.8 * sun + 0.25 * clouds
    for height, colour, phase in ((0.55, (0.35, 0.40, 0.55), 0.0), (0.68, (0.15, 0.30, 0.15), 2.0)):
        ridge = height - 0.08 * np.sin(6 * x + phase + rng.random()) - 0.04 * np.sin(17 * x + phase)
        image = np.where(
            (y > ridge)[..., None], np.array(colour, np.float32) * (1.1 - 0.4 * y[..., None]), image
        )
    lake = y > 0.85
    image[lake] = image[lake] * 0.5 + np.array((0.25, 0.4, 0.6), np.float32) * 0.5
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def demo_artifact(checkpoint: Path) -> Path:
    """The checkpoint's generator as ONNX in the user cache: exported on first use, checked after."""
    if not is_checkpoint(checkpoint):
        raise CheckpointError(
            f"{str(checkpoint)!r} is not a dtvnet checkpoint folder (with {CHECKPOINT_CONFIG}); pass one to "
            "--checkpoint."
        )
    root = user_cache_dir() / "demo" / sha256_file(checkpoint / CHECKPOINT_CONFIG)[:16]
    folder = root / "onnx-fp32"
    try:
        manifest, model = resolve_artifact(folder)
        verify_integrity(manifest, model)
        return folder
    except DTVNetError:
        pass
    from export.onnx import export_generator  # torch: only on the first run

    print(f"first run: exporting the demo model to {folder}")
    return export_generator(checkpoint, root, force=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dtvnet demo", description="A time-lapse of a procedural landscape."
    )
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the bundled demo model)")
    parser.add_argument(
        "--out", type=Path, default=Path("dtvnet-demo"), help="output folder (default dtvnet-demo)"
    )
    parser.add_argument("--seed", type=int, default=0, help="motion seed (default 0)")
    parser.add_argument("--clips", type=int, default=4, help="chained clips (default 4)")
    parser.add_argument("--fps", type=float, default=25.0)
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error("--clips must be at least 1")
    start = time.perf_counter()
    out = ensure_writable_dir(args.out)
    artifact = demo_artifact(args.checkpoint or default_checkpoint())
    landscape = demo_landscape()
    with atomic_file(out / "landscape.png") as tmp:
        Image.fromarray(landscape).save(tmp, format="PNG")
    video, sheet = out / "timelapse.mp4", out / "contact_sheet.png"
    with Generator(artifact) as gen:
        frames = gen.stream(landscape, clips=args.clips, seed=args.seed)
        written = write_stream(
            frames, video, args.fps, frame_count(gen.frames, args.clips), sheet, gen.frames
        )
        print(f"wrote {video} ({written} frames at {gen.image_size}x{gen.image_size}, seed {gen.last_seed})")
        print(f"wrote {sheet} (the first clip) and {out / 'landscape.png'} (the input)")
        seconds = time.perf_counter() - start
        print(f"{gen.stats} ({gen.backend.name}, {gen.backend.device}); {seconds:.1f} s in all")
    return 0


if __name__ == "__main__":
    import sys

    from runtime.cli import run_cli

    sys.exit(run_cli(main))
