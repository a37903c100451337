"""Checkpoint -> AOTInductor package for the C++ host (`cpp/`, engine "aoti"): `out_dir/aoti-fp32/`
with `model.pt2` and `manifest.json`.

The package holds a shared library that TorchInductor compiles for this machine's CPU, plus the
weights; LibTorch's `AOTIModelPackageLoader` runs it without Python. The I/O contract is the ONNX
artifact's (`image`, `motion` -> `video`, batch dynamic). The manifest records the torch version and
the CPU vector instruction set the kernels use (`extra.cpu_isa`), which the C++ host checks: export
on (a machine like) the one that will run the package, with the torch that the C++ host links.

Usage:
    python -m export.aoti CKPT [--out exports/NAME] [--force]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from export.manifest import generator_io, write_manifest
from export.onnx import MAX_BATCH, _manifest, default_out_dir, library_versions, prepare_generator_export
from runtime.errors import ExportError
from runtime.fsutil import atomic_dir

log = logging.getLogger(__name__)

AOTI_DIR = "aoti-fp32"
MODEL_FILE = "model.pt2"


def cpu_isa() -> str:
    """The vector instruction sets TorchInductor compiles CPU kernels for here, e.g. "avx512 avx512_vnni"."""
    from torch._inductor import cpu_vec_isa

    return str(cpu_vec_isa.pick_vec_isa()).strip()


def compile_package(
    module: nn.Module, example: tuple[torch.Tensor, ...], input_names: list[str], path: Path
) -> None:
    """torch.export with a dynamic batch, then AOTInductor compilation into one .pt2 package."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dynamic_shapes = {name: {0: batch} for name in input_names}
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.export.export(module, example, dynamic_shapes=dynamic_shapes)
            torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    except Exception as exc:  # export and inductor raise many types; the user needs the cause, once
        raise ExportError(f"AOTInductor compilation of {type(module).__name__} failed: {exc}") from exc


def export_aoti(checkpoint: str | Path, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write `out_dir/aoti-fp32/` (model.pt2 + manifest.json) from a checkpoint; returns the folder."""
    source, graph, example, folder = prepare_generator_export(checkpoint, out_dir, AOTI_DIR, force)
    cfg = source.config
    with atomic_dir(folder) as tmp:
        log.info("compiling the generator with AOTInductor (tens of seconds)")
        compile_package(graph, example, ["image", "motion"], tmp / MODEL_FILE)
        inputs, outputs = generator_io(cfg.image_size, cfg.frames, cfg.motion_dim)
        manifest = _manifest(
            "generator",
            tmp,
            source,
            None,
            inputs,
            outputs,
            engine="aoti",
            model_file=MODEL_FILE,
            versions=library_versions("torch"),
            extra={"cpu_isa": cpu_isa(), "device": "cpu"},
        )
        write_manifest(tmp, manifest)
    log.debug("wrote %s", folder)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.aoti", description="Compile a checkpoint's generator for the C++ host."
    )
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (see `dtvnet checkpoint`)")
    parser.add_argument("--out", type=Path, help="output folder (default: exports/<checkpoint name>)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing artifact")
    args = parser.parse_args(argv)
    out = args.out or default_out_dir(args.checkpoint)
    print(f"wrote {export_aoti(args.checkpoint, out, force=args.force)}")
    return 0


if __name__ == "__main__":
    import sys

    from runtime.cli import run_cli

    sys.exit(run_cli(main))
