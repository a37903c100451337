"""`dtvnet export`: one command from a checkpoint to every artifact this machine can make.

Usage:
    dtvnet export CKPT [--out DIR] [--force] [--batch MIN,OPT,MAX] [--fp16 | --fp32] [--no-engine]
                       [--int8 [--int8-psnr DB]] [--triton REPO]

Writes, each verified against PyTorch before it is moved into place:
    OUT/onnx-fp32/   generator, float32 ONNX (the CPU artifact and the source of the others)
    OUT/onnx-fp16/   generator, mixed-precision ONNX (with --fp16, the default)
    OUT/onnx-int8/   generator, int8 convolutions where quality allows (with --int8; CPU, OpenVINO)
    OUT/ofe-fp32/    flow encoder, float32 ONNX (when the checkpoint has one)
    OUT/trt-fp16/    TensorRT engine (or trt-fp32 with --fp32), when TensorRT and a GPU are present
    REPO/            with --triton: a Triton model repository serving them (see export.triton)
Without TensorRT or a GPU, `dtvnet export` says why the engine was skipped and succeeds;
`python -m export.trt` (same options) treats the missing engine as an error.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from export import fp16, int8, onnx, trt
from export.parity import describe
from export.progress import Steps
from runtime.errors import BackendUnavailableError
from runtime.fsutil import ensure_writable_dir, refuse_overwrite
from training import checkpoint as ckpt_io


@dataclass
class ExportResult:
    """The artifact folders written, and why the engine was not built (None if it was or not asked)."""

    artifacts: list[Path] = field(default_factory=list)
    engine_skipped: str | None = None


def planned_artifacts(
    has_flow_encoder: bool, precision: str, engine: bool, with_int8: bool = False
) -> list[str]:
    """Artifact folder names an export writes, in order."""
    names = [onnx.GENERATOR_DIR]
    if precision == "fp16":
        names.append(fp16.FP16_DIR)
    if with_int8:
        names.append(int8.INT8_DIR)
    if has_flow_encoder:
        names.append(onnx.FLOW_ENCODER_DIR)
    if engine:
        names.append(trt.engine_dir(precision))
    return names


def export_all(
    checkpoint: str | Path,
    out_dir: str | Path | None = None,
    *,
    precision: str = "fp16",
    profile: trt.BatchProfile | None = None,
    engine: str = "auto",
    force: bool = False,
    opset: int = onnx.DEFAULT_OPSET,
    exporter: str = "dynamo",
    weak_typing: bool = False,
    workspace_gib: float = trt.DEFAULT_WORKSPACE_GIB,
    timing_cache: str | Path | None = None,
    seed: int | None = None,
    with_int8: bool = False,
    int8_psnr: float = int8.DEFAULT_TARGET_PSNR,
) -> ExportResult:
    """Export every artifact; `engine` is "auto" (build the engine if TensorRT and a GPU are here,
    else say why in `engine_skipped`) or "skip"; `with_int8` adds the int8 model (`export.int8`)."""
    if precision not in trt.PRECISIONS:
        raise ValueError(f"precision must be one of {trt.PRECISIONS}, not {precision!r}")
    out = Path(out_dir) if out_dir is not None else onnx.default_out_dir(checkpoint)
    with_ofe = onnx.has_flow_encoder(checkpoint)
    status = trt.probe_tensorrt() if engine != "skip" else None
    build = status is not None and status.missing is None
    names = planned_artifacts(with_ofe, precision, build, with_int8)
    for name in names:  # refuse before doing any work, not halfway through
        refuse_overwrite(out / name, force, "artifact folder")
    ensure_writable_dir(out)
    steps = Steps(
        onnx.STEPS_PER_ARTIFACT * (1 + with_ofe)
        + fp16.STEPS * (precision == "fp16")
        + int8.STEPS * with_int8
        + trt.BUILD_STEPS * build,
        desc=f"export {ckpt_io.checkpoint_dir(checkpoint).name}",
    )
    result = ExportResult()
    try:
        common = {"force": force, "steps": steps, "seed": seed}
        result.artifacts.append(
            onnx.export_onnx(checkpoint, out, "generator", opset=opset, exporter=exporter, **common)
        )
        if precision == "fp16":
            result.artifacts.append(fp16.export_fp16(checkpoint, out, **common))
        if with_int8:
            result.artifacts.append(int8.export_int8(checkpoint, out, target_psnr=int8_psnr, **common))
        if with_ofe:
            result.artifacts.append(
                onnx.export_onnx(checkpoint, out, "flow_encoder", opset=opset, exporter=exporter, **common)
            )
        if build:
            result.artifacts.append(
                trt.export_engine(
                    checkpoint,
                    out,
                    precision=precision,
                    profile=profile,
                    weak_typing=weak_typing,
                    workspace_gib=workspace_gib,
                    timing_cache=timing_cache,
                    status=status,
                    **common,
                )
            )
    finally:
        steps.close()
    if status is not None and status.missing:
        doing = f"build the {precision} TensorRT engine"
        result.engine_skipped = trt.missing_backend_message(status.missing, doing, out / onnx.GENERATOR_DIR)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `dtvnet export` and `python -m export.trt`."""
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (see `dtvnet checkpoint`)")
    parser.add_argument("--out", type=Path, help="output folder (default: exports/<checkpoint name>)")
    parser.add_argument(
        "--force", action="store_true", help="replace artifact folders already in --out (no other folder)"
    )
    trt.add_batch_argument(parser, "TensorRT optimization profile over the batch")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", dest="precision", action="store_const", const="fp16", help="(default)")
    precision.add_argument("--fp32", dest="precision", action="store_const", const="fp32")
    parser.set_defaults(precision="fp16")
    parser.add_argument("--opset", type=int, default=onnx.DEFAULT_OPSET)
    parser.add_argument("--exporter", choices=onnx.EXPORTERS, default="dynamo", help="torch ONNX exporter")
    parser.add_argument("--workspace-gib", type=float, default=trt.DEFAULT_WORKSPACE_GIB)
    parser.add_argument("--timing-cache", type=Path, help="TensorRT timing cache file (default: ~/.cache)")
    parser.add_argument(
        "--weak-typing", action="store_true", help="TensorRT 10 only: fp32 ONNX + FP16 builder flag"
    )
    parser.add_argument("--seed", type=int, help="seed of the parity inputs (default: fresh)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write onnx-int8/: int8 convolutions where the frames keep --int8-psnr (CPU, OpenVINO)",
    )
    parser.add_argument(
        "--int8-psnr",
        type=float,
        default=int8.DEFAULT_TARGET_PSNR,
        metavar="DB",
        help=f"PSNR the int8 model must keep against float32 (default {int8.DEFAULT_TARGET_PSNR:g} dB)",
    )


def run_export(argv: Sequence[str] | None, prog: str, require_engine: bool) -> int:
    """Parse arguments, export, print what was written."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    if not require_engine:
        parser.add_argument("--no-engine", action="store_true", help="do not build a TensorRT engine")
        parser.add_argument(
            "--triton", type=Path, metavar="REPO", help="also write a Triton model repository (export.triton)"
        )
    args = parser.parse_args(argv)
    if getattr(args, "triton", None) and args.precision != "fp16":
        parser.error("--triton serves the fp16 ONNX model; drop --fp32")
    result = export_all(
        args.checkpoint,
        args.out,
        precision=args.precision,
        profile=args.batch,
        engine="auto" if require_engine or not args.no_engine else "skip",
        force=args.force,
        opset=args.opset,
        exporter=args.exporter,
        weak_typing=args.weak_typing,
        workspace_gib=args.workspace_gib,
        timing_cache=args.timing_cache,
        seed=args.seed,
        with_int8=args.int8,
        int8_psnr=args.int8_psnr,
    )
    for folder in result.artifacts:
        print(describe(folder))
    if result.engine_skipped and require_engine:
        raise BackendUnavailableError(result.engine_skipped)
    if result.engine_skipped:
        print(f"note: {result.engine_skipped}")
    if getattr(args, "triton", None):
        from export import triton

        served = triton.write_repository(
            result.artifacts[0].parent,
            args.triton,
            batching=triton.Batching.from_profile(args.batch.to_dict()),
            engine=not args.no_engine,
            force=args.force,
        )
        for model in served:
            print(triton.describe(args.triton, model))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_export(argv, prog="dtvnet export", require_engine=False)


if __name__ == "__main__":
    import sys

    from runtime.console import run_cli

    sys.exit(run_cli(main))
