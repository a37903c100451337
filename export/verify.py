"""Parity of an exported artifact of any engine against the PyTorch model it came from.

Usage:
    python -m export.verify ARTIFACT [--checkpoint CKPT] [--seed N] [--record] [--polygraphy]

The checks themselves are `export.parity`'s, which every export runs before its artifact lands; this
module knows every engine's runners (ONNX Runtime and OpenVINO, the fp16 simulation, TensorRT,
AOTInductor), so it sits above the export modules and checks any artifact after the fact.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from export.parity import (
    LARGER_BATCH,
    ParityRunner,
    check_artifact,
    onnx_runners,
    summary,
)
from runtime.errors import BackendUnavailableError, ExportError
from runtime.manifest import Manifest, resolve_artifact


def artifact_runners(manifest: Manifest, model_path: Path) -> dict[str, ParityRunner]:
    """The runners an artifact is checked with, by label; fp16 ONNX also gets the stricter simulation."""
    if manifest.engine == "onnx" and manifest.precision == "fp16":
        from export.fp16 import fp16_runners

        return fp16_runners(manifest, model_path)
    if manifest.engine == "onnx":
        return onnx_runners(manifest, model_path)
    if manifest.engine == "tensorrt":
        from export.trt import engine_runners

        return engine_runners(manifest, model_path)
    if manifest.engine == "aoti":
        from export.aoti import package_runners

        return package_runners(manifest, model_path)
    raise ExportError(f"Parity checks for {manifest.engine!r} artifacts are not implemented.")


def verify_artifact(
    artifact: str | Path, checkpoint: str | Path | None = None, **kwargs: Any
) -> dict[str, Any]:
    """`export.parity.check_artifact` with the runners of the artifact's engine, whatever it is."""
    return check_artifact(artifact, checkpoint, runners_for=artifact_runners, **kwargs)


# ---------------------------------------------------------------------------------------------
# polygraphy: layer-by-layer comparison of TensorRT with ONNX Runtime (needs TensorRT and a GPU)
# ---------------------------------------------------------------------------------------------


def polygraphy_command(
    manifest: Manifest, onnx_path: Path, profile: Mapping[str, int] | None = None
) -> list[str]:
    """`polygraphy run` comparing TensorRT with ONNX Runtime on every intermediate tensor.

    For an fp16 model the network is strongly typed (precisions as in the file); marking all
    tensors as outputs disables some TensorRT fusions, so tolerances are those of the precision.
    """
    profile = profile or {"min": 1, "opt": 1, "max": LARGER_BATCH}

    def shapes(batch: int) -> list[str]:
        dims = [[batch if d == "batch" else int(d) for d in spec.shape] for spec in manifest.inputs]
        return [
            f"{spec.name}:[{','.join(map(str, d))}]" for spec, d in zip(manifest.inputs, dims, strict=True)
        ]

    tol = (
        ["--atol", "1e-4", "--rtol", "1e-3"]
        if manifest.precision == "fp32"
        else ["--atol", "2e-2", "--rtol", "2e-2"]
    )
    command = ["polygraphy", "run", str(onnx_path), "--trt", "--onnxrt"]
    command += ["--trt-min-shapes", *shapes(profile["min"]), "--trt-opt-shapes", *shapes(profile["opt"])]
    command += ["--trt-max-shapes", *shapes(profile["max"]), "--input-shapes", *shapes(profile["opt"])]
    command += ["--trt-outputs", "mark", "all", "--onnx-outputs", "mark", "all", *tol]
    if manifest.precision != "fp32":
        command.append("--strongly-typed")
    return command


def onnx_source(artifact: str | Path) -> tuple[Manifest, Path]:
    """The ONNX model behind an artifact: the artifact itself, or an engine's `onnx` companion."""
    manifest, model_path = resolve_artifact(artifact)
    if manifest.engine == "onnx":
        return manifest, model_path
    companion = manifest.companions.get("onnx")
    if not companion:
        raise ExportError(f"{str(artifact)!r} names no ONNX source in its manifest's companions.")
    return resolve_artifact(model_path.parent / companion)


def run_polygraphy(artifact: str | Path) -> int:
    """Run the `polygraphy run` comparison for an artifact; BackendUnavailableError if it cannot run."""
    manifest, onnx_path = onnx_source(artifact)
    profile = resolve_artifact(artifact)[0].batch
    command = polygraphy_command(manifest, onnx_path, profile)
    if shutil.which("polygraphy") is None:
        raise BackendUnavailableError(
            "polygraphy is not installed; on a machine with an NVIDIA GPU run `pip install 'dtvnet[gpu]'` "
            f"and then `{shlex.join(command)}`."
        )
    from export.trt import probe_tensorrt

    probe_tensorrt().require("compare TensorRT with ONNX Runtime layer by layer", onnx_path.parent)
    print("+", shlex.join(command))
    return subprocess.run(command, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", type=Path, help="artifact folder (or its manifest.json / model file)")
    parser.add_argument("--checkpoint", type=Path, help="source checkpoint (default: the manifest's)")
    parser.add_argument("--seed", type=int, help="seed of the random inputs (default: fresh)")
    parser.add_argument("--record", action="store_true", help="store the report in the manifest")
    parser.add_argument(
        "--polygraphy", action="store_true", help="also compare TensorRT with ONNX Runtime layer by layer"
    )
    args = parser.parse_args(argv)
    report = verify_artifact(args.artifact, args.checkpoint, seed=args.seed, record=args.record)
    print(summary(report))
    print(f"seed {report['seed']}, batches {report['batches']}: parity ok")
    if args.polygraphy:
        return run_polygraphy(args.artifact)
    return 0


if __name__ == "__main__":
    import sys

    from runtime.console import run_cli

    sys.exit(run_cli(main))
