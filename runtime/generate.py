"""`dtvnet generate`: one photo in, a time-lapse video out; or a folder of photos, one clip each.

Usage:
    dtvnet generate IMAGE --artifact A --out out.mp4 [--seed S] [--motion-from video.mp4] [--clips N]
                    [--fps 25] [--backend auto|onnxruntime|openvino|tensorrt|torch|triton] [--device D]
                    [--fit crop|letterbox] [--size N|input] [--render guided|resize] [--transition K]
                    [--sheet sheet.png] [--batch-size B] [--force] [--crf Q]
    dtvnet generate --images DIR --artifact A --out DIR [--format mp4|gif|png|frames] [--seed S] ...

--out picks the format by suffix: .mp4 (H.264), .webm (VP9), .gif, .png (a contact sheet) or a folder
name (png frames); --crf sets the video quality. Ctrl-C keeps the frames made so far in OUT.partial.mp4.
--size renders above the model's side: the model's motion and colour with the photo's own detail.
The artifact may also be the URL of a model on a Triton server (http://HOST:8000/v2/models/NAME).
With --images, every photo in the folder becomes a clip in --out, batched and resumable (runtime.batch).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from runtime import batch
from runtime.backends import BACKENDS
from runtime.errors import OutputPathError
from runtime.fsutil import ensure_writable_dir, refuse_overwrite
from runtime.generator import Generator
from runtime.imaging import FITS
from runtime.output_size import RENDERS, SizeError, check_size
from runtime.writers import FrameWriter, StoppedEarly, check_crf, open_writer, output_kind


def frame_count(frames_per_clip: int, clips: int) -> int:
    """Frames of `clips` chained clips: every clip after the first skips its repeated frame 0."""
    return frames_per_clip + (clips - 1) * (frames_per_clip - 1)


def check_outputs(out: Path, sheet: Path | None, force: bool) -> None:
    """Fail before the model loads: known suffixes, writable folders, nothing overwritten without --force."""
    if sheet is not None and output_kind(sheet) != "sheet":
        raise OutputPathError(
            f"The contact sheet {str(sheet)!r} must be a .png file; name it sheet.png, say."
        )
    if sheet is not None and sheet.resolve() == out.resolve():
        raise OutputPathError(
            f"--out and --sheet both name {str(out)!r}; give the contact sheet its own name."
        )
    for path in (out, sheet) if sheet is not None else (out,):
        refuse_overwrite(path, force, "frames folder" if output_kind(path) == "frames" else "output")
        ensure_writable_dir(path.parent)


def size_argument(text: str) -> int | str:
    """--size: a side in pixels or 'input', checked by the same rule as `Generator(size=)`."""
    try:
        return check_size(text)  # type: ignore[return-value]
    except SizeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_crf_argument(parser: argparse.ArgumentParser) -> None:
    """--crf, the video quality of mp4 and webm outputs (`dtvnet generate` and `dtvnet demo`)."""
    parser.add_argument(
        "--crf",
        type=int,
        help="video quality, lower is better and larger: H.264 mp4 0-51 (default 20), VP9 webm 0-63 "
        "(default 31)",
    )


def write_stream(
    frames: Iterator,  # type: ignore[type-arg]
    out: Path,
    fps: float,
    total: int,
    sheet: Path | None = None,
    sheet_frames: int = 0,
    crf: int | None = None,
) -> int:
    """Write `frames` to `out` (and the first `sheet_frames` to a contact sheet) with a progress bar.

    Ctrl-C keeps the frames made so far, playable, in OUT.partial.SUFFIX (said in one line on stderr)
    and raises on; the next complete run replaces it. The contact sheet is all or nothing.
    """
    written = 0
    try:
        with contextlib.ExitStack() as stack:
            writer: FrameWriter = stack.enter_context(open_writer(out, fps, crf=crf, keep_partial=True))
            sheet_writer = stack.enter_context(open_writer(sheet)) if sheet is not None else None
            bar = stack.enter_context(tqdm(total=total, unit="frame", desc=out.name, leave=False))
            for frame in frames:
                writer.write(frame)
                if sheet_writer is not None and written < sheet_frames:
                    sheet_writer.write(frame)
                written += 1
                bar.update()
    except StoppedEarly as stopped:
        if stopped.partial is not None:
            print(
                f"stopped: the {stopped.frames} frames made so far are in {stopped.partial} (a complete run "
                "replaces it)",
                file=sys.stderr,
            )
        raise
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dtvnet generate", description="Turn one photo into a time-lapse video."
    )
    parser.add_argument(
        "image", type=Path, nargs="?", help="input photo (any size; PNG, JPEG, WebP, BMP, TIFF)"
    )
    parser.add_argument("--images", type=Path, help="instead of one photo: a folder of photos, one clip each")
    parser.add_argument(
        "--artifact", required=True, help="generator artifact folder / model / checkpoint, or a Triton URL"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="output: .mp4, .gif, .png (contact sheet) or a folder"
    )
    parser.add_argument(
        "--format", choices=tuple(batch.FORMATS), help="with --images: the clips' format (default mp4)"
    )
    parser.add_argument("--seed", type=int, help="motion seed (default: a fresh one, printed)")
    parser.add_argument("--motion-from", help="reference video, folder of frames, or .npy motion vector")
    parser.add_argument(
        "--clips", type=int, default=1, help="chained clips, each from the last frame (default 1)"
    )
    parser.add_argument(
        "--transition", type=int, default=4, help="clips over which seeded motion glides (slerp)"
    )
    parser.add_argument(
        "--fps", type=float, default=25.0, help="frames per second of the output (default 25)"
    )
    parser.add_argument("--backend", default="auto", choices=("auto", *BACKENDS))
    parser.add_argument("--device", help="cpu, cuda, cuda:N or tensorrt[:N] (default: the best available)")
    parser.add_argument("--batch-size", type=int, help="engine batch size (default: from the artifact)")
    parser.add_argument("--fit", default="crop", choices=FITS, help="crop the central square or letterbox")
    parser.add_argument(
        "--size",
        type=size_argument,
        help="frames at N pixels (crop: the square's side; letterbox: the long side) or 'input' (the "
        "photo's own size) instead of the model's",
    )
    parser.add_argument(
        "--render",
        choices=RENDERS,
        help="above the model's size: 'guided' (default: the model's motion, the photo's detail) or "
        "'resize' (plain interpolation)",
    )
    parser.add_argument("--upscale", action="store_true", help="the same as --size input")
    parser.add_argument("--sheet", type=Path, help="also write the first clip as a contact sheet png")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_crf_argument(parser)
    args = parser.parse_args(argv)
    if (args.image is None) == (args.images is None):
        parser.error("give one photo, or a folder of photos with --images")
    if args.images is not None and (args.clips != 1 or args.sheet is not None or args.crf is not None):
        parser.error("--clips, --sheet and --crf apply to one photo, not to --images")
    if args.images is None and args.format is not None:
        parser.error("--format applies to --images; for one photo the suffix of --out picks the format")
    if args.clips < 1:
        parser.error("--clips must be at least 1")
    if args.fps <= 0:
        parser.error("--fps must be positive")
    if args.images is not None:
        return generate_batch(args)
    check_outputs(args.out, args.sheet, args.force)
    check_crf(args.crf, output_kind(args.out))

    with open_generator(args) as gen:
        frames = gen.stream(
            args.image,
            clips=args.clips,
            motion=args.motion_from,
            seed=args.seed,
            transition=args.transition,
            fit=args.fit,
            size=args.size,
            render=args.render,
            upscale=args.upscale,
        )
        total = frame_count(gen.frames, args.clips)
        written = write_stream(frames, args.out, args.fps, total, args.sheet, gen.frames, args.crf)
        motion = f"motion from {args.motion_from}" if args.motion_from else f"seed {gen.last_seed}"
        print(f"wrote {args.out} ({written} frames, {motion})")
        if args.sheet:
            print(f"wrote {args.sheet}")
        print(f"{gen.stats} ({gen.backend.name}, {gen.backend.device})")
    return 0


def open_generator(args: argparse.Namespace) -> Generator:
    """The generator the artifact options name (a local artifact or a served model's URL)."""
    return Generator(args.artifact, backend=args.backend, device=args.device, batch_size=args.batch_size)


def generate_batch(args: argparse.Namespace) -> int:
    """--images: a clip per photo; exit status 1 if any photo failed (the others are written)."""
    with open_generator(args) as gen:
        try:
            report = batch.generate_folder(
                gen,
                args.images,
                args.out,
                fmt=args.format or "mp4",
                seed=args.seed,
                motion_from=args.motion_from,
                fit=args.fit,
                size=args.size,
                render=args.render,
                upscale=args.upscale,
                fps=args.fps,
                force=args.force,
            )
        except KeyboardInterrupt:
            print("finished clips are kept; run the same command again to resume", file=sys.stderr)
            raise
        done, *failures = batch.summary(report, args.out).splitlines()
        print(done)
        for line in failures:
            print(line, file=sys.stderr)
        print(f"{gen.stats} ({gen.backend.name}, {gen.backend.device})")
    return 1 if report.failed else 0


if __name__ == "__main__":
    import sys

    from runtime.console import run_cli

    sys.exit(run_cli(main))
