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

from export.onnx import (
    MAX_BATCH,
    default_out_dir,
    library_versions,
    make_manifest,
    reference_module,
)
from export.parity import ParityRunner, module_runner, write_verified
from export.progress import steps_or_new
from runtime.errors import ExportError
from runtime.fsutil import atomic_dir, ensure_writable_dir, refuse_overwrite
from runtime.manifest import Manifest, graph_io
from training import checkpoint as ckpt_io

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


def package_runner(path: Path) -> ParityRunner:
    """An AOTInductor package run from Python (the C++ host runs the same .pt2), for parity checks: every
    output (a generator's video and flows)."""
    package = torch._inductor.aoti_load_package(str(path))
    return module_runner(lambda *inputs: package(*inputs))


def package_runners(manifest: Manifest, model_path: Path) -> dict[str, ParityRunner]:
    """An AOTInductor artifact's parity runner, by label."""
    return {"aotinductor package (torch, CPU)": package_runner(model_path)}


def export_aoti(
    checkpoint: str | Path, out_dir: str | Path, *, force: bool = False, seed: int | None = None
) -> Path:
    """Write `out_dir/aoti-fp32/` (model.pt2 + manifest.json), parity-checked against PyTorch before it
    lands; returns the folder."""
    source = ckpt_io.load(checkpoint, components=["generator"])
    folder = Path(out_dir) / AOTI_DIR
    refuse_overwrite(folder, force, "artifact folder")
    ensure_writable_dir(out_dir)
    module = reference_module(source, "generator")
    example = tuple(torch.zeros([2, *spec.shape[1:]]) for spec in graph_io("generator", source.config)[0])
    timings: dict[str, float] = {}
    with steps_or_new(None, 2, AOTI_DIR) as bar, atomic_dir(folder) as tmp:
        with bar.step("compile", timings, AOTI_DIR):
            log.info("compiling the generator with AOTInductor (tens of seconds)")
            compile_package(module, example, ["image", "motion"], tmp / MODEL_FILE)  # type: ignore[arg-type]
        manifest = make_manifest(
            "generator",
            tmp,
            source,
            opset=None,
            engine="aoti",
            model_file=MODEL_FILE,
            versions=library_versions("torch"),
            extra={"cpu_isa": cpu_isa(), "device": "cpu"},
        )
        write_verified(
            tmp,
            manifest,
            module_runner(module),
            bar,
            timings,
            AOTI_DIR,
            runners_for=package_runners,
            seed=seed,
        )
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

    from runtime.console import run_cli

    sys.exit(run_cli(main))
