"""Batch generation: every image in a folder to a time-lapse, for jobs of thousands of images.

    dtvnet generate --images photos/ --out clips/ --artifact A [--format mp4|gif|png|frames] [--seed S]

- Images are found under the folder recursively (hidden files and the output folder left out), in
  sorted order of their relative paths; the output folder mirrors them: photos/a/b.jpg -> clips/a/b.mp4.
- Batched: images are read and pre-processed in a background thread and run through
  `Generator.run_many` at the engine's batch size (locally, or on a Triton server given by its URL).
- Resumable: an output that exists is finished, because every writer renames it into place only
  after its last frame (`runtime.fsutil`); a killed run leaves only hidden `.NAME.tmp-*` files, which
  the next run removes. Running the same command again makes only what is missing. An output counts
  as finished by its name alone: after replacing a photo, delete its clip (or remake all with --force).
- Reproducible across resumes: image k of the sorted list gets vector k of the seed's stream, as
  `run_many` gives it, wherever a run stopped. The job's settings (seed, motion source, model, fit)
  are kept in OUT/.dtvnet-batch.json: a resumed run without --seed reuses the seed, and a run whose
  settings differ is refused (pass --force to remake everything).
- A bad image (unreadable, truncated, too small...) is reported and skipped; the job goes on and ends
  with a summary, and the exit status is 1 if any image failed. Errors that concern the whole job (a
  bad artifact or motion source, an unwritable output folder) stop it with status 2.
One job per output folder at a time: a second one would remove the first one's temporary files.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from runtime import motion as motion_lib
from runtime import output_size
from runtime.errors import ImageError, OutputPathError
from runtime.fsutil import atomic_file, ensure_writable_dir
from runtime.generator import Generator
from runtime.image_input import load_image
from runtime.imaging import Fit
from runtime.output_size import Render, SizeRequest
from runtime.writers import write_frames

log = logging.getLogger(__name__)

FORMATS = {"mp4": ".mp4", "gif": ".gif", "png": ".png", "frames": ""}  # png: a contact sheet
STATE_FILE = ".dtvnet-batch.json"
TEMPORARY = ".*.tmp-*"  # what runtime.fsutil's atomic writes leave behind when a process is killed


@dataclass(frozen=True)
class Item:
    """One image of the job: its index in the sorted list (which picks its motion) and its output."""

    index: int
    source: Path
    output: Path


@dataclass
class BatchReport:
    """What a job did: clips written, outputs found finished, images that failed (path, reason)."""

    total: int = 0
    written: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    seed: int | None = None

    @property
    def clips_per_second(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class JobSettings:
    """What decides the clips' content; a resumed job must match the one that made the finished outputs."""

    model_sha256: str
    seed: int | None
    motion_from: str | None
    fit: str
    size: int | str | None  # output size (runtime.output_size): None, a side in pixels or "input"
    render: str | None


def find_images(folder: Path, out: Path) -> list[Path]:
    """Image files under `folder` (by suffix), sorted, without hidden ones and without anything in `out`."""
    if not folder.is_dir():
        raise ImageError(f"--images {str(folder)!r} is not a folder; pass a folder of photos.")
    out = out.resolve()
    if folder.resolve().is_relative_to(out):
        raise OutputPathError(
            f"--out {str(out)!r} contains the images {str(folder)!r}; write the clips to a folder of "
            "their own."
        )
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if (
            any(part.startswith(".") for part in relative.parts)
            or path.suffix.lower() not in motion_lib.FRAME_SUFFIXES
        ):
            continue
        if path.resolve().is_relative_to(out) or not path.is_file():
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def plan(images: list[Path], folder: Path, out: Path, fmt: str) -> tuple[list[Item], list[tuple[Path, str]]]:
    """Items with their output paths, and the images whose output another image already claims
    (photos/a.jpg and photos/a.png would both make a.mp4)."""
    items: list[Item] = []
    clashes: list[tuple[Path, str]] = []
    claimed: dict[Path, Path] = {}
    for index, path in enumerate(images):
        output = out / path.relative_to(folder).with_suffix(FORMATS[fmt])
        if output in claimed:
            clashes.append(
                (path, f"its output {str(output)!r} is also {str(claimed[output])!r}'s; rename one of them")
            )
            continue
        claimed[output] = path
        items.append(Item(index, path, output))
    return items, clashes


def remove_temporaries(out: Path) -> int:
    """Delete what killed runs left behind (hidden `.NAME.tmp-*` files and folders); returns how many."""
    removed = 0
    for path in sorted(out.rglob(TEMPORARY), reverse=True):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


def settle_settings(out: Path, wanted: JobSettings, seed_given: bool, force: bool) -> JobSettings:
    """The job's settings: those of the finished outputs in `out` if it holds some (a resumed run
    without --seed reuses their seed), refused if they differ from what was asked."""
    path = out / STATE_FILE
    previous = None
    if path.is_file() and not force:
        try:
            previous = JobSettings(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            log.warning("ignoring the unreadable job settings %s", path)
    if previous is not None:
        if not seed_given and wanted.motion_from is None:
            wanted = JobSettings(**{**asdict(wanted), "seed": previous.seed})
        differ = [k for k, v in asdict(wanted).items() if getattr(previous, k) != v]
        if differ:
            said = ", ".join(f"{k} {getattr(previous, k)!r} (now {getattr(wanted, k)!r})" for k in differ)
            raise OutputPathError(
                f"The output folder {str(out)!r} holds clips made with other settings: {said}; run with "
                "those settings to resume, pass --force to remake every clip, or choose another --out."
            )
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(asdict(wanted), indent=2) + "\n")
    return wanted


def generate_folder(
    generator: Generator,
    images: str | Path,
    out: str | Path,
    *,
    fmt: str = "mp4",
    seed: int | None = None,
    motion_from: str | None = None,
    fit: Fit = "crop",
    size: SizeRequest | str = None,
    render: Render | None = None,
    upscale: bool = False,
    fps: float = 25.0,
    force: bool = False,
    on_written: Callable[[Item], None] | None = None,
) -> BatchReport:
    """Turn every image under `images` into a clip under `out`; see the module docstring."""
    if fmt not in FORMATS:
        raise OutputPathError(f"Unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    folder, out = Path(images), Path(out)
    size = output_size.INPUT if upscale else output_size.check_size(size)
    render = output_size.check_render(render)
    start = time.perf_counter()
    found = find_images(folder, out)
    ensure_writable_dir(out)
    if removed := remove_temporaries(out):
        log.info("removed %d unfinished output(s) of an interrupted run", removed)
    settings = JobSettings(
        generator.manifest.model_sha256,
        None if motion_from else motion_lib.check_seed(seed) if seed is not None else motion_lib.fresh_seed(),
        motion_from,
        fit,
        size,
        render,
    )
    settings = settle_settings(out, settings, seed is not None, force)
    items, clashes = plan(found, folder, out, fmt)
    report = BatchReport(total=len(found), failed=list(clashes), seed=settings.seed)
    pending = [item for item in items if force or not item.output.exists()]
    report.skipped = len(items) - len(pending)
    motion_for = _motion(generator, settings, fit)
    accepted: list[Item] = []  # run_many's clip i is accepted[i]
    bar = tqdm(total=len(found), initial=report.skipped + len(clashes), unit="clip", desc="generate")

    def decoded() -> Iterator[np.ndarray]:
        """Pending images, decoded in run_many's reader thread; a bad one is recorded and left out."""
        for item in pending:
            try:
                # Reduced-scale JPEG decoding down to the output's side.
                image = load_image(item.source, output_size.decode_side(size, generator.image_size))
            except ImageError as exc:
                report.failed.append((item.source, str(exc)))
                bar.write(f"failed: {exc}")
                bar.update()
                continue
            accepted.append(item)
            yield image

    with bar:
        clips = generator.run_many(
            decoded(), lambda i: motion_for(accepted[i]), fit=fit, size=size, render=render
        )
        for clip in clips:
            item = accepted[clip.index]
            write_frames(clip.frames, item.output, fps)  # atomic: renamed into place when complete
            report.written += 1
            if on_written is not None:
                on_written(item)
            bar.update()
    report.seconds = time.perf_counter() - start
    return report


def _motion(generator: Generator, settings: JobSettings, fit: Fit) -> Callable[[Item], np.ndarray]:
    """Image k's vector: vector k of the seed, or the one motion every image shares."""
    if settings.motion_from is not None:
        shared = generator.motion_vector(settings.motion_from, fit=fit)
        return lambda item: shared
    seed = settings.seed
    assert seed is not None
    return lambda item: motion_lib.seeded_vector(seed, generator.motion_dim, item.index)


def summary(report: BatchReport, out: Path) -> str:
    """The lines a job ends with: what was made, how fast, and every failure."""
    rate = f"{report.clips_per_second:.2f} clips/s" if report.written else "nothing to do"
    motion = f"seed {report.seed}" if report.seed is not None else "one shared motion"
    lines = [
        f"{report.written} clip(s) written to {out}, {report.skipped} already finished, {len(report.failed)} "
        f"failed, of {report.total} image(s) ({rate}, {report.seconds:.1f}s, {motion})"
    ]
    lines += [f"failed: {path}: {reason}" for path, reason in report.failed]
    if report.failed:
        lines.append("Fix or remove the failed images and run the same command again to finish the job.")
    return "\n".join(lines)
