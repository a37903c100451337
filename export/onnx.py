"""Checkpoint -> ONNX artifacts: the generator (`image`, `motion` -> `video`) and the flow encoder
(`flows` -> normalized `motion`), each in its own folder with `model.onnx` and `manifest.json`.

Usage:
    python -m export.onnx CKPT [--out exports/NAME] [--opset 18] [--force]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from export.manifest import Manifest, flow_encoder_io, generator_io, write_manifest
from runtime.errors import ExportError
from runtime.fsutil import atomic_dir, ensure_writable_dir, refuse_overwrite, sha256_file
from training import checkpoint as ckpt_io
from training.model import FlowEncoder, Generator

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
GENERATOR_DIR = "onnx-fp32"
FLOW_ENCODER_DIR = "ofe-fp32"
MODEL_FILE = "model.onnx"
MAX_BATCH = 4096


class GeneratorGraph(nn.Module):
    """The deployed generator: video only (flows are a training output), equalized-lr folded."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator.eval().fold_equalized_lr()

    def forward(self, image: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        return self.generator(image, motion).video


class FlowEncoderGraph(nn.Module):
    """The deployed flow encoder: flows -> motion vector normalized with training statistics."""

    def __init__(self, flow_encoder: FlowEncoder) -> None:
        super().__init__()
        self.flow_encoder = flow_encoder.eval()

    def forward(self, flows: torch.Tensor) -> torch.Tensor:
        return self.flow_encoder.encode(flows)


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions (absent ones are left out)."""
    versions = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def to_onnx(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    input_names: list[str],
    output_names: list[str],
    path: Path,
    opset: int = DEFAULT_OPSET,
) -> None:
    """Export with the dynamo exporter, batch dynamic, into one self-contained .onnx file."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dynamic_shapes = {name: {0: batch} for name in input_names}
    quiet = io.StringIO()
    torch_onnx_log = logging.getLogger("torch.onnx")
    level = torch_onnx_log.level
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            torch_onnx_log.setLevel(logging.ERROR)  # "torchvision is not installed" notices
            program = torch.onnx.export(
                module,
                example,
                dynamo=True,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                optimize=True,
            )
    except Exception as exc:  # the exporter raises many types; the user needs the cause, once
        raise ExportError(f"ONNX export of {type(module).__name__} failed: {exc}") from exc
    finally:
        torch_onnx_log.setLevel(level)
    program.save(str(path), external_data=False)


def _manifest(
    kind: str,
    folder: Path,
    source: ckpt_io.Checkpoint,
    opset: int | None,
    inputs,
    outputs,
    *,
    engine: str = "onnx",
    model_file: str = MODEL_FILE,
    versions: dict[str, str] | None = None,
    **extra,
) -> Manifest:
    cfg = source.config
    return Manifest(
        kind=kind,
        engine=engine,
        precision="fp32",
        model_file=model_file,
        model_sha256=sha256_file(folder / model_file),
        inputs=inputs,
        outputs=outputs,
        image_size=cfg.image_size,
        frames=cfg.frames,
        motion_dim=cfg.motion_dim,
        model_config=cfg.to_dict(),
        source_checkpoint=str(source.path),
        source_sha256=source.weights_sha256,
        opset=opset,
        versions=versions or library_versions("torch", "onnx", "onnxscript", "onnxruntime"),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    )


def prepare_generator_export(
    checkpoint: str | Path, out_dir: str | Path, folder_name: str, force: bool
) -> tuple[ckpt_io.Checkpoint, GeneratorGraph, tuple[torch.Tensor, torch.Tensor], Path]:
    """Load a checkpoint's generator for export and check the artifact folder can be written.

    Returns the checkpoint, the deployed graph, an example input (batch 2) and the artifact folder.
    """
    source = ckpt_io.load(checkpoint, components=["generator"])
    cfg = source.config
    folder = Path(out_dir) / folder_name
    refuse_overwrite(folder, force, "artifact folder")
    ensure_writable_dir(out_dir)
    example = (torch.zeros(2, 3, cfg.image_size, cfg.image_size), torch.zeros(2, cfg.motion_dim))
    return source, GeneratorGraph(source.generator()), example, folder


def export_generator(
    checkpoint: str | Path, out_dir: str | Path, *, opset: int = DEFAULT_OPSET, force: bool = False
) -> Path:
    """Write `out_dir/onnx-fp32/` (model.onnx + manifest.json) from a checkpoint; returns the folder."""
    source, graph, example, folder = prepare_generator_export(checkpoint, out_dir, GENERATOR_DIR, force)
    cfg = source.config
    with atomic_dir(folder) as tmp:
        to_onnx(graph, example, ["image", "motion"], ["video"], tmp / MODEL_FILE, opset)
        inputs, outputs = generator_io(cfg.image_size, cfg.frames, cfg.motion_dim)
        companions = {"flow_encoder": f"../{FLOW_ENCODER_DIR}"} if has_flow_encoder(source.path) else {}
        manifest = _manifest("generator", tmp, source, opset, inputs, outputs, companions=companions)
        write_manifest(tmp, manifest)
    log.debug("wrote %s", folder)
    return folder


def export_flow_encoder(
    checkpoint: str | Path, out_dir: str | Path, *, opset: int = DEFAULT_OPSET, force: bool = False
) -> Path:
    """Write `out_dir/ofe-fp32/` (the flow encoder, for motion transfer); returns the folder."""
    source = ckpt_io.load(checkpoint, components=["flow_encoder"])
    cfg = source.config
    folder = Path(out_dir) / FLOW_ENCODER_DIR
    refuse_overwrite(folder, force, "artifact folder")
    ensure_writable_dir(out_dir)
    graph = FlowEncoderGraph(source.flow_encoder())
    example = (torch.zeros(2, 2, cfg.frames, cfg.image_size, cfg.image_size),)
    with atomic_dir(folder) as tmp:
        to_onnx(graph, example, ["flows"], ["motion"], tmp / MODEL_FILE, opset)
        inputs, outputs = flow_encoder_io(cfg.image_size, cfg.frames, cfg.motion_dim)
        write_manifest(tmp, _manifest("flow_encoder", tmp, source, opset, inputs, outputs))
    log.debug("wrote %s", folder)
    return folder


def has_flow_encoder(checkpoint: str | Path) -> bool:
    """Whether the checkpoint holds a trained flow encoder (a converted reference one does not)."""
    return "flow_encoder" in ckpt_io.read_info(checkpoint).get("components", [])


def default_out_dir(checkpoint: str | Path) -> Path:
    """exports/<checkpoint folder name>."""
    return Path("exports") / ckpt_io.checkpoint_dir(checkpoint).name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.onnx", description="Export a checkpoint to ONNX.")
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (see `dtvnet checkpoint`)")
    parser.add_argument("--out", type=Path, help="output folder (default: exports/<checkpoint name>)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--force", action="store_true", help="overwrite existing artifacts")
    args = parser.parse_args(argv)
    out = args.out or default_out_dir(args.checkpoint)
    print(f"wrote {export_generator(args.checkpoint, out, opset=args.opset, force=args.force)}")
    if has_flow_encoder(args.checkpoint):
        print(f"wrote {export_flow_encoder(args.checkpoint, out, opset=args.opset, force=args.force)}")
    return 0


if __name__ == "__main__":
    import sys

    from runtime.cli import run_cli

    sys.exit(run_cli(main))
