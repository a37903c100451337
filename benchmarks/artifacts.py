"""The benchmarked model and its artifacts: exported on first use through `export`, reused after.

A benchmark measures exactly what `dtvnet export` writes, so it calls the same export functions (each
verifies its artifact before it lands). Artifacts are cached per checkpoint (by its weights' sha256)
under the user cache, or in `--exports`; one exported from other weights, with another int8 target or by
an older int8 recipe (`export.int8.RECIPE`) is exported again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from export.int8 import RECIPE
from runtime.errors import CheckpointError, ManifestError
from runtime.fsutil import user_cache_dir
from runtime.manifest import resolve_artifact

log = logging.getLogger(__name__)


def demo_checkpoint() -> Path | None:
    """The bundled demo model, if this install has one."""
    from training.demo import demo_checkpoint as bundled

    try:
        return bundled()
    except CheckpointError:
        return None


def _cached_checkpoint(name: str, what: str, make: Callable[[Path], Path]) -> Path:
    from training import checkpoint as ckpt_io

    path = user_cache_dir() / "bench" / name
    try:
        ckpt_io.read_info(path)
    except CheckpointError:  # missing or damaged: make it
        log.info("making a checkpoint with %s in %s", what, path)
        make(path)
    return path


def benchmark_checkpoint(preset: str) -> Path:
    """A checkpoint of `preset` with realistic random weights (training.realistic), made once and cached."""
    from training.realistic import realistic_checkpoint

    return _cached_checkpoint(
        f"realistic-{preset}", f"{preset} realistic random weights", lambda p: realistic_checkpoint(p, preset)
    )


def natural_checkpoint(preset: str) -> Path:
    """A checkpoint of `preset` whose frames look like a trained model's (`training.realistic.
    fitted_checkpoint`: a minute of fitting for the paper preset), made once and cached: the content of
    the end-to-end runs that measure what writing a real model's video costs."""
    from training.realistic import fitted_checkpoint

    what = f"a {preset} generator fitted to time-lapses"
    return _cached_checkpoint(f"fitted-{preset}", what, lambda p: fitted_checkpoint(p, preset))


def _current(folder: Path, weights_sha256: str, int8_psnr: float | None) -> bool:
    try:
        manifest, _ = resolve_artifact(folder)
    except ManifestError:
        return False
    if manifest.source_sha256 != weights_sha256:
        return False
    if manifest.kind == "generator" and not manifest.has_flows:  # exported before flows were in artifacts
        return False
    if int8_psnr is None:
        return True
    made = manifest.extra.get("int8", {})
    return made.get("target_psnr") == int8_psnr and made.get("recipe") == RECIPE  # older code: redo


def export_artifacts(
    checkpoint: Path, exports: Path | None, *, fp16: bool, int8_psnr: float, engines: bool
) -> Path:
    """Every artifact the benchmark's lines run, in `exports` (default: cached per checkpoint)."""
    from export import fp16 as fp16_export
    from export import int8, onnx, trt
    from training import checkpoint as ckpt_io

    sha = ckpt_io.read_info(checkpoint).get("weights_sha256", "")
    out = exports or user_cache_dir() / "bench" / "exports" / sha[:16]
    out.mkdir(parents=True, exist_ok=True)
    if not _current(out / onnx.GENERATOR_DIR, sha, None):
        onnx.export_onnx(checkpoint, out, "generator", force=True)
    if fp16 and not _current(out / fp16_export.FP16_DIR, sha, None):
        fp16_export.export_fp16(checkpoint, out, force=True)
    if not _current(out / int8.INT8_DIR, sha, int8_psnr):
        int8.export_int8(checkpoint, out, target_psnr=int8_psnr, force=True)
    if engines:
        status = trt.probe_tensorrt()
        for precision in ("fp16", "fp32") if status.missing is None else ():
            if not _current(out / trt.engine_dir(precision), sha, None):
                trt.export_engine(checkpoint, out, precision=precision, force=True, status=status)
    return out
