"""`dtvnet demo`: no arguments, no network. The bundled demo model makes an HD time-lapse of a
procedural landscape and writes it as an H.264 mp4 with a contact sheet.

The landscape is the first frame of a procedural clip (`training.data.demo_scenes`, scenes the model never
trained on) whose clouds drift with a known wind, rendered at 512 px; the model sees its downsample and
by default is given the motion of that clip (through the flow encoder) and asked to animate the still
frame like it. timelapse.mp4 is rendered at 512 px by guided rendering (`runtime.hd`: the model's
motion and colour, the landscape's own detail); timelapse_model.mp4 holds the model's own frames.

The first run exports the demo checkpoint to ONNX in the user cache ($XDG_CACHE_HOME/dtvnet or
~/.cache/dtvnet, keyed by the checkpoint); later runs reuse that export and never import torch.

Usage:
    dtvnet demo [--checkpoint CKPT] [--out dtvnet-demo] [--seed 0] [--motion scene|seed] [--clips 4]
                [--size 512] [--crf Q] [--force]

Like `dtvnet generate`, the demo never overwrites what an earlier run wrote without --force: outputs it
would replace are refused in one sentence before any work; with --force it replaces its own outputs
(timelapse.mp4, timelapse_model.mp4, contact_sheet.png, landscape.png, scene/) and nothing else in --out.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from runtime.backends import CHECKPOINT_CONFIG, is_checkpoint
from runtime.errors import CheckpointError, DTVNetError, OutputPathError
from runtime.fsutil import atomic_file, ensure_writable_dir, refuse_overwrite, sha256_file, user_cache_dir
from runtime.generate import add_crf_argument, frame_count, size_argument, write_stream
from runtime.generator import Generator
from runtime.manifest import resolve_artifact, verify_integrity
from runtime.writers import check_crf, contact_sheet, write_frames
from training.data.demo_scenes import demo_scene

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
            "`dtvnet checkpoint init ckpt/tiny --preset tiny`."
        ) from None
    return Path(demo_checkpoint())


def demo_artifact(checkpoint: Path) -> Path:
    """The checkpoint's generator (and flow encoder, if it has one) as ONNX in the user cache: exported
    on first use, checked after."""
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
        for companion in manifest.companions.values():
            verify_integrity(*resolve_artifact(folder / companion))
        if manifest.has_flows:  # a cache written before flows were part of the artifact is exported again
            return folder
    except DTVNetError:
        pass
    from export.onnx import export_flow_encoder, export_generator, has_flow_encoder  # torch: first run only

    print(f"first run: exporting the demo model to {folder}")
    if has_flow_encoder(checkpoint):
        export_flow_encoder(checkpoint, root, force=True)
    return export_generator(checkpoint, root, force=True)


VIDEO_FILE, SHEET_FILE, INPUT_FILE, SCENE_DIR = "timelapse.mp4", "contact_sheet.png", "landscape.png", "scene"
MODEL_VIDEO_FILE = "timelapse_model.mp4"  # the model's own frames, at its size
HD_SIDE = 512  # the landscape's side, and the HD video's
SCENE_SIDE = 256  # the real clip is kept at this side (its motion is the same at any size)
SHEET_EVERY, SHEET_COLUMNS = 4, 4  # the contact sheet: every 4th HD frame of the first clip, 4 a row


def check_outputs(out: Path, with_scene: bool, force: bool) -> None:
    """Refuse, before the model loads, to overwrite an earlier demo's outputs without --force (one rule
    with `dtvnet generate`), and with it to replace anything in their place that the demo did not write."""
    names = [VIDEO_FILE, MODEL_VIDEO_FILE, SHEET_FILE, INPUT_FILE] + ([SCENE_DIR] if with_scene else [])
    existing = [name for name in names if (out / name).exists()]
    if existing and not force:
        raise OutputPathError(
            f"{str(out)!r} already holds the demo's {', '.join(existing)}; pass --force to replace them, or "
            "choose another --out."
        )
    for name in existing:
        refuse_overwrite(out / name, force, "frames folder" if name == SCENE_DIR else "output")


def _tee(frames: Iterator[np.ndarray], sheet: list[np.ndarray], clip: int) -> Iterator[np.ndarray]:
    """`frames`, keeping every SHEET_EVERY-th of the first `clip` in `sheet`."""
    for i, frame in enumerate(frames):
        if i < clip and i % SHEET_EVERY == 0:
            sheet.append(frame)
        yield frame


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dtvnet demo",
        description="A time-lapse of a procedural landscape, driven by the motion of its own clouds.",
    )
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the bundled demo model)")
    parser.add_argument(
        "--out", type=Path, default=Path("dtvnet-demo"), help="output folder (default dtvnet-demo)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="scene seed, and the motion seed with --motion seed"
    )
    parser.add_argument(
        "--motion",
        choices=("scene", "seed"),
        default="scene",
        help="scene: transfer the drift of the scene's own clouds (default; needs a flow encoder); "
        "seed: a seeded N(0, I) motion vector",
    )
    parser.add_argument("--clips", type=int, default=4, help="chained clips (default 4)")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument(
        "--size",
        type=size_argument,
        default=HD_SIDE,
        help=f"side of the landscape and of timelapse.mp4 in pixels (default {HD_SIDE}); the model sees "
        "its downsample and timelapse_model.mp4 keeps the model's size",
    )
    add_crf_argument(parser)
    parser.add_argument(
        "--force", action="store_true", help="replace the outputs of an earlier demo in --out"
    )
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error("--clips must be at least 1")
    check_crf(args.crf)
    start = time.perf_counter()
    if args.out.exists() and not args.out.is_dir():
        raise OutputPathError(
            f"--out {str(args.out)!r} is a file; the demo writes a folder, choose another --out."
        )
    checkpoint = args.checkpoint or default_checkpoint()
    check_outputs(args.out, args.motion == "scene", args.force)
    out = ensure_writable_dir(args.out)
    artifact = demo_artifact(checkpoint)
    side = args.size if isinstance(args.size, int) else HD_SIDE  # "input" is the landscape's own side
    with Generator(artifact) as gen:
        if args.motion == "scene" and "flow_encoder" not in gen.manifest.companions:
            print("this checkpoint has no flow encoder: using a seeded motion vector (--motion seed)")
            args.motion = "seed"
        scene = demo_scene(size=side, frames=gen.frames if args.motion == "scene" else 1, seed=args.seed)
        landscape = scene[0]
        with atomic_file(out / INPUT_FILE) as tmp:
            Image.fromarray(landscape).save(tmp, format="PNG")
        motion: np.ndarray | None = None
        source = f"motion seed {args.seed}"
        if args.motion == "scene":  # the real clip, whose motion the model is asked to reproduce
            small = [cv2.resize(f, (SCENE_SIDE, SCENE_SIDE), interpolation=cv2.INTER_AREA) for f in scene]
            write_frames(iter(small), out / SCENE_DIR, args.fps)
            motion = gen.motion_vector(out / SCENE_DIR)
            source = f"the motion of {out / SCENE_DIR}/"
        total = frame_count(gen.frames, args.clips)
        videos = {VIDEO_FILE: side, MODEL_VIDEO_FILE: None}
        sheet: list[np.ndarray] = []
        for name, size in videos.items():
            frames = gen.stream(landscape, clips=args.clips, motion=motion, seed=args.seed, size=size)
            if size is not None:  # the contact sheet: HD frames of the first clip
                frames = _tee(frames, sheet, gen.frames)
            written = write_stream(frames, out / name, args.fps, total, crf=args.crf)
            made = f"{side}x{side}, guided" if size is not None else f"{gen.image_size}x{gen.image_size}"
            print(f"wrote {out / name} ({written} frames at {made}, {source})")
        with atomic_file(out / SHEET_FILE) as tmp:
            Image.fromarray(contact_sheet(sheet, SHEET_COLUMNS)).save(tmp, format="PNG")
        print(
            f"wrote {out / SHEET_FILE} (every {SHEET_EVERY}th frame of the first clip) and {out / INPUT_FILE}"
        )
        seconds = time.perf_counter() - start
        print(f"{gen.stats} ({gen.backend.name}, {gen.backend.device}); {seconds:.1f} s in all")
    return 0


if __name__ == "__main__":
    import sys

    from runtime.console import run_cli

    sys.exit(run_cli(main))
