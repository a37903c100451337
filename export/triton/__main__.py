"""Checkpoint -> Triton Inference Server model repository, built from the verified export artifacts.

`python -m export.triton` exports the artifacts first (`export.pipeline`) where they are missing or
stale, then writes the repository with `export.triton`.

Usage:
    python -m export.triton CKPT --repo models/ [--exports exports/NAME] [--name dtvnet] [--batch 1,4,8]
                            [--max-queue-delay-us 2000] [--instances 1] [--cpu] [--version 1]
                            [--no-engine] [--force]

The repository's layout: `export.triton`'s docstring. This command is a module of its own above the
export pipeline, which the library (imported by the pipeline for `dtvnet export --triton`) must not
import.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from export import onnx, trt
from export.pipeline import export_all, planned_artifacts
from export.triton import (
    DEFAULT_NAME,
    DEFAULT_QUEUE_DELAY_US,
    Batching,
    TritonResult,
    check_name,
    describe,
    docker_command,
    write_repository,
)
from export.trt import BatchProfile
from runtime.console import run_cli
from runtime.errors import ExportError, ManifestError
from runtime.manifest import resolve_artifact
from training import checkpoint as ckpt_io

log = logging.getLogger(__name__)


def prepare_artifacts(
    checkpoint: str | Path, exports: Path, profile: BatchProfile, *, engine: bool, force: bool
) -> str | None:
    """Reuse the checkpoint's artifacts in `exports` or export them (`export_all`) if any is missing;
    returns why no engine was built (None if one was, or exists, or was not asked for)."""
    status = trt.probe_tensorrt() if engine else None
    build = status is not None and status.missing is None
    planned = planned_artifacts(onnx.has_flow_encoder(checkpoint), "fp16", build)
    source = ckpt_io.read_info(checkpoint).get("weights_sha256")
    stale = [n for n in planned if (exports / n).exists() and _source_of(exports / n) != source]
    missing = [n for n in planned if not (exports / n).exists()]
    if stale and not force:
        raise ExportError(
            f"{', '.join(str(exports / n) for n in stale)} were not exported from {str(checkpoint)!r}; pass "
            "--force to re-export them, or --exports to use another folder."
        )
    if stale or missing:
        log.info("exporting %s to %s", ", ".join(stale + missing), exports)
        export_all(
            checkpoint,
            exports,
            precision="fp16",
            profile=profile,
            engine="auto" if engine else "skip",
            force=True,
        )
    if status is not None and status.missing:
        doing = "build the TensorRT plan model for Triton"
        return trt.missing_backend_message(status.missing, doing, exports / onnx.GENERATOR_DIR)
    return None


def _source_of(folder: Path) -> str | None:
    try:
        return resolve_artifact(folder)[0].source_sha256
    except ManifestError:
        return None


def export_triton(
    checkpoint: str | Path,
    repo: str | Path,
    *,
    exports: str | Path | None = None,
    name: str = DEFAULT_NAME,
    profile: BatchProfile | None = None,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    version: int = 1,
    instances: int = 1,
    kind: str = "gpu",
    engine: bool = True,
    force: bool = False,
) -> TritonResult:
    """Export what is missing, then write the Triton model repository; see the module docstring."""
    check_name(name)
    profile = profile or trt.parse_batch_profile(trt.DEFAULT_BATCH)
    folder = Path(exports) if exports is not None else onnx.default_out_dir(checkpoint)
    skipped = prepare_artifacts(checkpoint, folder, profile, engine=engine, force=force)
    batching = Batching.from_profile(profile.to_dict(), queue_delay_us)
    models = write_repository(
        folder,
        repo,
        name=name,
        batching=batching,
        version=version,
        instances=instances,
        kind=kind,
        engine=engine and skipped is None,
        force=force,
    )
    return TritonResult(models, skipped)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.triton", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (see `dtvnet checkpoint`)")
    parser.add_argument("--repo", required=True, type=Path, help="Triton model repository folder")
    parser.add_argument("--exports", type=Path, help="artifact folder (default: exports/<checkpoint name>)")
    trt.add_batch_argument(parser, "batch profile: engine build and Triton batching")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"model name (default {DEFAULT_NAME})")
    parser.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=DEFAULT_QUEUE_DELAY_US,
        help=f"how long Triton waits to fill a batch, microseconds (default {DEFAULT_QUEUE_DELAY_US})",
    )
    parser.add_argument("--instances", type=int, default=1, help="model instances per GPU (default 1)")
    parser.add_argument("--cpu", action="store_true", help="run the ONNX models on Triton's CPU instances")
    parser.add_argument("--version", type=int, default=1, help="model version folder (default 1)")
    parser.add_argument("--no-engine", action="store_true", help="serve the ONNX model only")
    parser.add_argument(
        "--force", action="store_true", help="overwrite versions and re-export stale artifacts"
    )
    args = parser.parse_args(argv)
    result = export_triton(
        args.checkpoint,
        args.repo,
        exports=args.exports,
        name=args.name,
        profile=args.batch,
        queue_delay_us=args.max_queue_delay_us,
        version=args.version,
        instances=args.instances,
        kind="cpu" if args.cpu else "gpu",
        engine=not args.no_engine,
        force=args.force,
    )
    for model in result.models:
        print(describe(args.repo, model))
    if result.engine_skipped:
        print(f"note: {result.engine_skipped}")
    print(f"serve it (on a machine with Docker and an NVIDIA GPU): {docker_command(args.repo)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
