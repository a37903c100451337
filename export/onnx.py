"""Checkpoint -> ONNX artifacts: the generator (`image`, `motion` -> `video`) and the flow encoder
(`flows` -> normalized `motion`), each in its own folder with `model.onnx` and `manifest.json`.

Each export is simplified (onnxslim) and checked against PyTorch (export.parity) inside a temporary
folder that is renamed into place only when parity holds.

Usage:
    python -m export.onnx CKPT [--out exports/NAME] [--opset 18] [--exporter dynamo|legacy] [--force]
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
from typing import Any

import onnx
import torch
from torch import nn

from export.graph import simplify
from export.progress import Steps, steps_or_new
from runtime.errors import ExportError
from runtime.fsutil import atomic_dir, ensure_writable_dir, refuse_overwrite, sha256_file
from runtime.manifest import FLOW_ENCODER_DIR, FLOWS, GENERATOR_DIR, Manifest, graph_io, model_manifest
from training import checkpoint as ckpt_io
from training.model.deployed import FlowEncoderGraph, GeneratorGraph, reference_module

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
MODEL_FILE = "model.onnx"
MAX_BATCH = 4096
EXPORTERS = ("dynamo", "legacy")
STEPS_PER_ARTIFACT = 3  # export, simplify, verify


# kind -> (wrapper, artifact folder, input names, output names)
KINDS: dict[str, tuple[type[nn.Module], str, list[str], list[str]]] = {
    "generator": (GeneratorGraph, GENERATOR_DIR, ["image", "motion"], ["video", FLOWS]),
    "flow_encoder": (FlowEncoderGraph, FLOW_ENCODER_DIR, ["flows"], ["motion"]),
}


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
    exporter: str = "dynamo",
) -> None:
    """Export with batch dynamic into one self-contained .onnx file.

    `dynamo` (default): torch.export with `dynamic_shapes`, BatchNorm folded by its optimizer.
    `legacy`: the TorchScript exporter with `dynamic_axes`, kept as a tested fallback; it is
    deprecated in torch 2.9+ and emits 319 nodes for the tiny generator (onnxslim brings both to 86-88).
    """
    if exporter not in EXPORTERS:
        raise ExportError(f"Unknown ONNX exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}.")
    quiet = io.StringIO()
    torch_onnx_log = logging.getLogger("torch.onnx")
    level = torch_onnx_log.level
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            torch_onnx_log.setLevel(logging.ERROR)  # "torchvision is not installed" notices
            if exporter == "dynamo":
                batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
                program = torch.onnx.export(
                    module,
                    example,
                    dynamo=True,
                    input_names=input_names,
                    output_names=output_names,
                    dynamic_shapes={name: {0: batch} for name in input_names},
                    opset_version=opset,
                    optimize=True,
                )
                program.save(str(path), external_data=False)
            else:
                torch.onnx.export(
                    module,
                    example,
                    str(path),
                    dynamo=False,
                    input_names=input_names,
                    output_names=output_names,
                    dynamic_axes={name: {0: "batch"} for name in [*input_names, *output_names]},
                    opset_version=opset,
                )
    except Exception as exc:  # the exporters raise many types; the user needs the cause, once
        raise ExportError(f"ONNX export of {type(module).__name__} failed: {exc}") from exc
    finally:
        torch_onnx_log.setLevel(level)


def make_manifest(
    kind: str,
    folder: Path,
    source: ckpt_io.Checkpoint,
    *,
    precision: str = "fp32",
    opset: int | None = DEFAULT_OPSET,
    engine: str = "onnx",
    model_file: str = MODEL_FILE,
    versions: dict[str, str] | None = None,
    **fields: Any,
) -> Manifest:
    """The manifest of an artifact (ONNX unless `engine` says otherwise) whose model file is in `folder`."""
    return model_manifest(
        kind,
        engine,
        precision,
        model_file,
        sha256_file(folder / model_file),
        source.config,
        source_checkpoint=str(source.path),
        source_sha256=source.weights_sha256,
        opset=opset,
        versions=versions
        or library_versions("torch", "onnx", "onnxscript", "onnxruntime", "onnxslim", "onnxconverter-common"),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        **fields,
    )


def export_onnx(
    checkpoint: str | Path,
    out_dir: str | Path,
    kind: str = "generator",
    *,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    force: bool = False,
    steps: Steps | None = None,
    seed: int | None = None,
) -> Path:
    """Write `out_dir/onnx-fp32/` (generator) or `out_dir/ofe-fp32/` (flow encoder); returns the folder."""
    from export.parity import module_runner, write_verified

    source = ckpt_io.load(checkpoint, components=[kind])
    cfg = source.config
    _, dirname, input_names, output_names = KINDS[kind]
    folder = Path(out_dir) / dirname
    refuse_overwrite(folder, force, "artifact folder")
    ensure_writable_dir(out_dir)
    module = reference_module(source, kind)
    example = tuple(torch.zeros([2, *s.shape[1:]]) for s in graph_io(kind, cfg)[0])  # type: ignore[misc]
    timings: dict[str, float] = {}
    with steps_or_new(steps, STEPS_PER_ARTIFACT, dirname) as bar, atomic_dir(folder) as tmp:
        with bar.step("export", timings, dirname):
            raw = tmp / "exported.onnx"
            to_onnx(module, example, input_names, output_names, raw, opset, exporter)
            model = onnx.load(str(raw))
            raw.unlink()
        with bar.step("simplify", timings, dirname):
            model, simplified = simplify(model)
            onnx.save(model, str(tmp / MODEL_FILE))
        companions = (
            {"flow_encoder": f"../{FLOW_ENCODER_DIR}"}
            if kind == "generator" and has_flow_encoder(source.path)
            else {}
        )
        manifest = make_manifest(
            kind,
            tmp,
            source,
            opset=opset,
            companions=companions,
            extra={"exporter": exporter, "simplify": simplified.to_dict()},
        )
        write_verified(tmp, manifest, module_runner(module), bar, timings, dirname, seed=seed)
    log.debug("wrote %s", folder)
    return folder


def export_generator(checkpoint: str | Path, out_dir: str | Path, **kwargs: Any) -> Path:
    """Write `out_dir/onnx-fp32/` (model.onnx + manifest.json); options as for `export_onnx`."""
    return export_onnx(checkpoint, out_dir, "generator", **kwargs)


def export_flow_encoder(checkpoint: str | Path, out_dir: str | Path, **kwargs: Any) -> Path:
    """Write `out_dir/ofe-fp32/` (the flow encoder, for motion transfer); options as for `export_onnx`."""
    return export_onnx(checkpoint, out_dir, "flow_encoder", **kwargs)


def has_flow_encoder(checkpoint: str | Path) -> bool:
    """Whether the checkpoint holds a trained flow encoder (a converted reference one does not)."""
    return "flow_encoder" in ckpt_io.read_info(checkpoint).get("components", [])


def derived_source(source: ckpt_io.Checkpoint, out_dir: str | Path, dirname: str) -> tuple[Manifest, Path]:
    """The ONNX artifact `out_dir/dirname` that a derived artifact (fp16, int8, engine) is made from,
    checked to come from the same checkpoint as `source`."""
    from runtime.manifest import resolve_artifact

    manifest, model_path = resolve_artifact(Path(out_dir) / dirname)
    if manifest.source_sha256 != source.weights_sha256:
        raise ExportError(
            f"{str(model_path.parent)!r} was exported from another checkpoint than {str(source.path)!r}; "
            "export this checkpoint's ONNX first (`dtvnet export` does everything) or pass --force."
        )
    return manifest, model_path


def default_out_dir(checkpoint: str | Path) -> Path:
    """exports/<checkpoint folder name>."""
    return Path("exports") / ckpt_io.checkpoint_dir(checkpoint).name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.onnx", description="Export a checkpoint to ONNX.")
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (see `dtvnet checkpoint`)")
    parser.add_argument("--out", type=Path, help="output folder (default: exports/<checkpoint name>)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--exporter", choices=EXPORTERS, default="dynamo", help="torch ONNX exporter")
    parser.add_argument("--force", action="store_true", help="overwrite existing artifacts")
    args = parser.parse_args(argv)
    out = args.out or default_out_dir(args.checkpoint)
    kinds = ["generator", "flow_encoder"] if has_flow_encoder(args.checkpoint) else ["generator"]
    with steps_or_new(None, STEPS_PER_ARTIFACT * len(kinds), "export") as steps:
        folders = [
            export_onnx(
                args.checkpoint,
                out,
                kind,
                opset=args.opset,
                exporter=args.exporter,
                force=args.force,
                steps=steps,
            )
            for kind in kinds
        ]
    from export.parity import describe

    for folder in folders:
        print(describe(folder))
    return 0


if __name__ == "__main__":
    import sys

    from runtime.console import run_cli

    sys.exit(run_cli(main))
