"""Parity of an exported artifact against the PyTorch model it came from: the checks every export runs.

Runs the artifact and the checkpoint's PyTorch model on the same fresh random inputs at batch 1 and
a larger batch, reports max/mean absolute error and the PSNR of each of the artifact's outputs (a
generator's `video` and `flows`) against PyTorch's, and raises ParityError if a bound for the
artifact's engine, precision and output is missed.
Every export calls `write_verified` on the artifact before it is moved into place, with the runners of
its engine, so an artifact that fails never lands, and stores the report in the manifest's `parity`
field. `export.verify` (`python -m export.verify`) checks an artifact of any engine after the fact.

Generic over artifact kinds (generator, flow encoder), engines (ONNX Runtime here; each export module
passes its engine's runners, e.g. `export.trt.engine_runners`) and precisions: add a `Bound` to BOUNDS,
or pass `bound=`, for a new one.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.errors import CheckpointError, ExportError, ParityError
from runtime.manifest import FLOWS, Manifest, resolve_artifact, verify_integrity, write_manifest

if TYPE_CHECKING:
    from export.progress import Steps

log = logging.getLogger(__name__)

Runner = Callable[[Mapping[str, np.ndarray]], np.ndarray]  # inputs by name -> first output
TensorsRunner = Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]  # inputs by name -> every output
# What parity checks run: every output in the manifest's order (a lone array: a one-output graph)
ParityRunner = Callable[[Mapping[str, np.ndarray]], np.ndarray | Sequence[np.ndarray]]
Inputs = Callable[["Manifest", int, np.random.Generator], dict[str, np.ndarray]]  # batch of parity inputs
# An engine's runners of an artifact, by label: what `check_artifact` compares with PyTorch
RunnerFactory = Callable[[Manifest, Path], dict[str, ParityRunner]]
LARGER_BATCH = 4
FLOW_STD = 2.0  # random flows, in pixels at model scale


@dataclass(frozen=True)
class Bound:
    """Pass criteria; None means not checked. `max_abs` is absolute, `min_psnr` in dB."""

    max_abs: float | None = None
    min_psnr: float | None = None

    def failures(self, metrics: Mapping[str, Any]) -> list[str]:
        """One phrase per missed criterion, empty if the metrics pass."""
        out = []
        if self.max_abs is not None and not metrics["max_abs"] <= self.max_abs:
            out.append(f"max abs error {metrics['max_abs']:.3g} exceeds {self.max_abs:g}")
        psnr = metrics["psnr_db"]
        if self.min_psnr is not None and psnr is not None and not psnr >= self.min_psnr:
            out.append(f"PSNR {psnr:.2f} dB is below {self.min_psnr:g} dB")
        return out


# (engine, precision) -> bound. fp32 on ONNX Runtime CPU is the 1e-4; GPU fp32 kernels (TF32
# off) sum in other orders, so they get 1e-3; mixed precision is judged by PSNR of the frames.
BOUNDS: dict[tuple[str, str], Bound] = {
    ("onnx", "fp32"): Bound(max_abs=1e-4),
    ("tensorrt", "fp32"): Bound(max_abs=1e-3),
    ("onnx", "fp16"): Bound(min_psnr=40.0),
    ("tensorrt", "fp16"): Bound(min_psnr=40.0),
    ("aoti", "fp32"): Bound(max_abs=1e-4),
    # int8 is judged on realistic inputs (landscape_inputs), where the issue asks for 35 dB.
    ("onnx", "int8"): Bound(min_psnr=35.0),
}
# The generator's flows, in pixels at half resolution (no declared range: PSNR is against the reference
# flows' own range, about 1 px for the demo and tiny models, 5 px for a random paper one). Worst measured
# on 2026-12-06 (AMD EPYC, AVX-512 with bf16; demo, random tiny and random paper models): ONNX Runtime
# fp32 max abs 2.7e-5, AOTInductor fp32 1.0e-4, fp16 66.6 dB (simulated activations), int8 28.3 dB on
# OpenVINO with bf16 outside int8 layers for the random tiny model (41.9 dB on ONNX Runtime; the trained
# demo model: 54.0 dB). TensorRT is not measured here: its bounds keep the video's ratio to ONNX Runtime's.
FLOW_BOUNDS: dict[tuple[str, str], Bound] = {
    ("onnx", "fp32"): Bound(max_abs=3e-4),
    ("tensorrt", "fp32"): Bound(max_abs=3e-3),
    ("onnx", "fp16"): Bound(min_psnr=40.0),
    ("tensorrt", "fp16"): Bound(min_psnr=40.0),
    ("aoti", "fp32"): Bound(max_abs=1e-3),
    ("onnx", "int8"): Bound(min_psnr=20.0),  # 24.0 dB seen on the random tiny model (fresh parity seed)
}


def bound_for(engine: str, precision: str, output: str | None = None) -> Bound:
    """The parity bound for an artifact's output (`flows` has its own; any other output, `video` or a flow
    encoder's `motion`, the artifact's), or ExportError if none is defined (pass `bound=` then)."""
    try:
        return (FLOW_BOUNDS if output == FLOWS else BOUNDS)[(engine, precision)]
    except KeyError:
        raise ExportError(
            f"No parity bound is defined for {precision} {engine} artifacts; add one to "
            "export.parity.BOUNDS or pass bound= to check_artifact."
        ) from None


def compare(actual: np.ndarray, expected: np.ndarray, peak_to_peak: float) -> dict[str, Any]:
    """max/mean absolute error and PSNR (dB, against `peak_to_peak`; None if identical)."""
    if actual.shape != expected.shape:
        raise ParityError(f"Output shape {actual.shape} differs from PyTorch's {expected.shape}.")
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    mse = float(np.mean(diff**2))
    finite = bool(np.isfinite(actual).all())
    return {
        "max_abs": float(diff.max()) if finite else math.inf,
        "mean_abs": float(diff.mean()) if finite else math.inf,
        "psnr_db": (10 * math.log10(peak_to_peak**2 / mse) if mse > 0 else None) if finite else -math.inf,
        "reference_rms": float(np.sqrt(np.mean(expected.astype(np.float64) ** 2))),
    }


def random_inputs(manifest: Manifest, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs of the artifact's kind: images uniform in [-1, 1], motion N(0, 1), flows N(0, FLOW_STD)."""
    arrays = {}
    for spec in manifest.inputs:
        shape = [batch if d == "batch" else int(d) for d in spec.shape]
        if spec.value_range is not None:
            lo, hi = spec.value_range
            value = rng.uniform(lo, hi, shape)
        elif spec.name == "flows":
            value = rng.normal(0.0, FLOW_STD, shape)
        else:
            value = rng.standard_normal(shape)
        arrays[spec.name] = value.astype(spec.dtype)
    return arrays


def landscape_inputs(manifest: Manifest, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Generator inputs like a user's: fresh procedural landscapes and seeded motion (export.calibration)
    drawn from `rng`, never the calibration ones. For artifacts calibrated on such inputs (int8)."""
    from export.calibration import check_seeds, landscape_batch

    return landscape_batch(check_seeds(rng, batch), manifest.image_size, manifest.motion_dim)


def is_calibrated(manifest: Manifest) -> bool:
    """int8 generators are calibrated on landscapes and judged on them, over several clips at once:
    clips differ by several dB, and the bound is on the error of a set of clips, not of the worst one."""
    return manifest.kind == "generator" and manifest.precision == "int8"


def default_inputs(manifest: Manifest) -> Inputs:
    """Parity inputs for an artifact: landscapes for calibrated (int8) ones, random tensors otherwise."""
    return landscape_inputs if is_calibrated(manifest) else random_inputs


def default_batches(manifest: Manifest) -> tuple[int, ...]:
    """Parity batch sizes: 1 and a larger one; for calibrated artifacts two batches of several clips."""
    if is_calibrated(manifest) and manifest.batch is None:
        return (LARGER_BATCH, 2 * LARGER_BATCH)
    return parity_batches(manifest.batch)


def parity_batches(profile: Mapping[str, int] | None, larger: int = LARGER_BATCH) -> tuple[int, ...]:
    """Batch 1 and a larger batch, clamped into an engine's optimization profile."""
    lo, hi = (profile["min"], profile["max"]) if profile else (1, None)
    big = max(larger, lo) if hi is None else min(max(larger, lo), hi)
    return (lo,) if big == lo else (lo, big)


def peak_to_peak(manifest: Manifest, reference: np.ndarray, output: str | None = None) -> float:
    """The output's declared value range (2 for video in [-1, 1]), else the reference's own range."""
    spec = manifest.output(output) if output else manifest.outputs[0]
    if spec.value_range is not None:
        return float(spec.value_range[1] - spec.value_range[0])
    return float(reference.max() - reference.min()) or 1.0


def named_outputs(
    manifest: Manifest, result: np.ndarray | Sequence[np.ndarray], label: str
) -> dict[str, Any]:
    """A runner's outputs by the manifest's names; ParityError if it gave another number of them."""
    arrays = [result] if isinstance(result, np.ndarray) else list(result)
    names = [spec.name for spec in manifest.outputs]
    if len(arrays) != len(names):
        raise ParityError(
            f"{label} gave {len(arrays)} output(s) but the manifest declares {', '.join(names)}; re-export "
            "the artifact."
        )
    return dict(zip(names, arrays, strict=True))


def check_parity(
    manifest: Manifest,
    runner: ParityRunner,
    reference: ParityRunner,
    *,
    batches: Sequence[int],
    seed: int,
    bounds: Mapping[str, Bound],
    label: str,
    inputs: Inputs = random_inputs,
) -> dict[str, Any]:
    """Compare `runner` with `reference` at each batch size, output by output; the report (the first
    output's metrics at the top, the others' under `outputs`) says whether each output's bound held.

    Sample 0 of every batch is the same, so the report also shows whether a sample's output depends
    on the rest of its batch (`batch_consistency_max_abs`, informational).
    """
    rng = np.random.default_rng(seed)
    largest = inputs(manifest, max(batches), rng)
    names = [spec.name for spec in manifest.outputs]
    cases: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    first_sample: dict[str, np.ndarray] = {}
    for batch in batches:
        feeds = {name: array[:batch] for name, array in largest.items()}
        expected = named_outputs(manifest, reference(feeds), "PyTorch")
        actual = named_outputs(manifest, runner(feeds), label)
        for name in names:
            metrics = compare(actual[name], expected[name], peak_to_peak(manifest, expected[name], name))
            cases[name].append({"batch": batch, **metrics})
            first = first_sample.setdefault(name, actual[name][:1])
            if batch != batches[0]:
                cases[name][-1]["batch_consistency_max_abs"] = float(np.abs(actual[name][:1] - first).max())
    checks = {name: _summarize(cases[name], bounds[name]) for name in names}
    failures = [
        f if name == names[0] else f"{name}: {f}" for name, c in checks.items() for f in c["failures"]
    ]
    main = checks.pop(names[0])
    return {
        "runner": label,
        **{k: v for k, v in main.items() if k != "failures"},
        **({"outputs": {name: _without(c, "failures") for name, c in checks.items()}} if checks else {}),
        "passed": not failures,
        "failures": failures,
    }


def _summarize(cases: list[dict[str, Any]], bound: Bound) -> dict[str, Any]:
    """One output's cases, their worst metrics and the bound's verdict."""
    failures = [f"{f} at batch {c['batch']}" for c in cases for f in bound.failures(c)]
    psnrs = [c["psnr_db"] for c in cases if c["psnr_db"] is not None]
    return {
        "bound": {k: v for k, v in asdict(bound).items() if v is not None},
        "max_abs": max(c["max_abs"] for c in cases),
        "mean_abs": float(np.mean([c["mean_abs"] for c in cases])),
        "psnr_db": min(psnrs) if psnrs else None,
        "cases": cases,
        "failures": failures,
    }


def _without(mapping: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def first_output(run: TensorsRunner) -> Runner:
    return lambda inputs: run(inputs)[0]


def onnxruntime_outputs(model: str | Path | bytes, threads: int = 0) -> TensorsRunner:
    """ONNX Runtime on CPU, every output in the graph's order; `model` is a path or serialized bytes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    def run(inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(output) for output in session.run(None, dict(inputs))]

    return run


def onnxruntime_runner(model: str | Path | bytes, threads: int = 0) -> Runner:
    """ONNX Runtime on CPU; `model` is a path or serialized bytes."""
    return first_output(onnxruntime_outputs(model, threads))


def openvino_outputs(model: str | Path | bytes, precision: str = "f32") -> TensorsRunner:
    """OpenVINO on CPU with float parts in `precision` ("f32" or "bf16"), every output; `model` a path or
    ONNX bytes."""
    from runtime.backends.openvino import compile_model

    compiled = compile_model(model, precision)
    request = compiled.create_infer_request()
    count = len(compiled.outputs)

    def run(inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        result = request.infer(dict(inputs))
        return [np.array(result[i]) for i in range(count)]

    return run


def openvino_runner(model: str | Path | bytes, precision: str = "f32") -> Runner:
    """OpenVINO on CPU with float parts in `precision` ("f32" or "bf16"); `model` a path or ONNX bytes."""
    return first_output(openvino_outputs(model, precision))


def module_runner(module: Any) -> ParityRunner:
    """A PyTorch module (float32, CPU, eval mode) as a runner of every output (a tuple's in order); inputs
    are passed in manifest order."""
    import torch

    def run(inputs: Mapping[str, np.ndarray]) -> np.ndarray | list[np.ndarray]:
        with torch.no_grad():
            out = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs.values()))
        return [t.numpy() for t in out] if isinstance(out, tuple | list) else out.numpy()

    return run


def torch_reference(checkpoint: str | Path, kind: str, expect_sha256: str | None = None) -> ParityRunner:
    """The checkpoint's PyTorch module for `kind`, exactly as exported (float32, CPU, eval mode)."""
    from training import checkpoint as ckpt_io
    from training.model.deployed import reference_module

    source = ckpt_io.load(checkpoint, components=[kind])
    if expect_sha256 and source.weights_sha256 and source.weights_sha256 != expect_sha256:
        raise CheckpointError(
            f"Checkpoint {str(source.path)!r} is not the one this artifact was exported from (weights "
            f"sha256 {source.weights_sha256[:12]}... instead of {expect_sha256[:12]}...); pass the source "
            "checkpoint with --checkpoint."
        )
    return module_runner(reference_module(source, kind))


def onnx_runners(manifest: Manifest, model_path: Path) -> dict[str, ParityRunner]:
    """The runners an ONNX artifact is checked with, by label: ONNX Runtime, and OpenVINO for int8 where it
    is installed (it runs int8 artifacts on the CPU). The default of `check_artifact`."""
    import onnxruntime as ort

    runners: dict[str, ParityRunner] = {
        f"onnxruntime {ort.__version__} CPUExecutionProvider": onnxruntime_outputs(model_path)
    }
    if manifest.precision == "int8" and importlib.util.find_spec("openvino") is not None:
        from runtime.backends.openvino import inference_precision

        precision = inference_precision(manifest)
        label = f"openvino {_version('openvino')} CPU ({precision} outside int8 layers)"
        runners[label] = openvino_outputs(model_path, precision)
    return runners


def check_artifact(
    artifact: str | Path,
    checkpoint: str | Path | None = None,
    *,
    reference: ParityRunner | None = None,
    runners: Mapping[str, ParityRunner] | None = None,
    runners_for: RunnerFactory = onnx_runners,
    batches: Sequence[int] | None = None,
    seed: int | None = None,
    bound: Bound | None = None,
    record: bool = False,
    failure_hint: str = "do not deploy it; re-export it from its checkpoint",
    inputs: Inputs | None = None,
) -> dict[str, Any]:
    """Check an artifact folder against PyTorch; returns the report, raises ParityError on a miss.

    `checkpoint` defaults to the manifest's source checkpoint; `reference` / `runners` replace the
    PyTorch model / the artifact's runners (an export passes the model it already holds), which give every
    output in the manifest's order; without `runners`, `runners_for(manifest, model_path)` makes them
    (`export.verify.artifact_runners` knows every engine; each export passes its own); `bound` replaces
    the first output's bound (`flows` keep theirs); `inputs` makes the parity inputs (default:
    `default_inputs` of the artifact). With `record` the report is written into the manifest's `parity`
    field, pass or fail. `failure_hint` ends the ParityError sentence (what happens now, what to do).
    """
    manifest, model_path = resolve_artifact(artifact)
    verify_integrity(manifest, model_path)
    if reference is None:
        source = checkpoint or manifest.source_checkpoint
        if source is None:
            raise CheckpointError(
                f"The manifest of {str(artifact)!r} names no source checkpoint; pass one with --checkpoint."
            )
        reference = torch_reference(source, manifest.kind, expect_sha256=manifest.source_sha256)
    runners = runners if runners is not None else runners_for(manifest, model_path)
    bounds = {
        spec.name: bound_for(manifest.engine, manifest.precision, spec.name) for spec in manifest.outputs
    }
    if bound is not None:
        bounds[manifest.outputs[0].name] = bound
    seed = secrets.randbits(32) if seed is None else seed
    batches = tuple(batches or default_batches(manifest))
    inputs = inputs or default_inputs(manifest)
    checks = [
        check_parity(
            manifest, run, reference, batches=batches, seed=seed, bounds=bounds, label=label, inputs=inputs
        )
        for label, run in runners.items()
    ]
    main = checks[0]
    report: dict[str, Any] = {
        "reference": f"pytorch {_version('torch')} float32 CPU",
        **{
            k: main[k]
            for k in ("runner", "bound", "max_abs", "mean_abs", "psnr_db", "cases", "outputs")
            if k in main
        },
        "seed": seed,
        "inputs": inputs.__name__,
        "batches": list(batches),
        "passed": all(c["passed"] for c in checks),
        "checked": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if len(checks) > 1:
        report["extra_checks"] = {
            c["runner"]: {k: v for k, v in c.items() if k != "runner"} for c in checks[1:]
        }
    if record:
        write_manifest(model_path.parent, replace(manifest, parity=_json_safe(report)))
    failures = [f"{c['runner']}: {f}" for c in checks for f in c["failures"]]
    if failures:
        raise ParityError(
            f"{manifest.precision} {manifest.engine} artifact {str(artifact)!r} does not match PyTorch "
            f"({'; '.join(failures)}; seed {seed}): {failure_hint}."
        )
    log.debug(
        "parity ok: %s %s max abs %.3g, PSNR %s dB",
        manifest.precision,
        manifest.engine,
        report["max_abs"],
        "inf" if report["psnr_db"] is None else f"{report['psnr_db']:.2f}",
    )
    return _json_safe(report)


def write_verified(
    folder: Path,
    manifest: Manifest,
    reference: ParityRunner,
    steps: Steps,
    timings: dict[str, float],
    label: str,
    runners_for: RunnerFactory = onnx_runners,
    **verify_args: Any,
) -> Manifest:
    """Write the manifest, check parity (ParityError aborts the export), store the report.

    `folder` is the temporary folder of an atomic_dir, so an artifact that fails never lands;
    `runners_for` makes the runners of the artifact's engine (default: ONNX).
    """
    write_manifest(folder, manifest)
    with steps.step("verify", timings, label):
        report = check_artifact(
            folder,
            reference=reference,
            runners_for=runners_for,
            failure_hint="nothing was written",
            **verify_args,
        )
    manifest = replace(manifest, parity=report, extra={**manifest.extra, "export_seconds": timings})
    write_manifest(folder, manifest)
    return manifest


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats by strings: manifests are strict JSON, read by the C++ host too."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def summary(report: Mapping[str, Any]) -> str:
    """One line per check, for the CLIs."""
    lines = []
    checks = {report["runner"]: report, **report.get("extra_checks", {})}
    for label, check in checks.items():
        verdict = "ok" if check["passed"] else "FAILED"
        for name, metrics in {"": check, **check.get("outputs", {})}.items():
            psnr = "inf" if metrics["psnr_db"] is None else f"{metrics['psnr_db']:.2f}"
            lines.append(
                f"{label}{f' {name}' if name else ''}: max abs {metrics['max_abs']:.3g}, mean abs "
                f"{metrics['mean_abs']:.3g}, PSNR {psnr} dB (bound {metrics['bound']}) -> {verdict}"
            )
    return "\n".join(lines)


def describe(folder: Path) -> str:
    """'wrote FOLDER (parity ...)' for one artifact."""
    manifest, _ = resolve_artifact(folder)
    parity = manifest.parity or {}
    psnr, max_abs = parity.get("psnr_db"), parity.get("max_abs", float("nan"))
    return (
        f"wrote {folder}  ({manifest.precision} {manifest.engine}: max abs {max_abs:.2g}, "
        f"PSNR {'inf' if psnr is None else f'{psnr:.1f}'} dB vs PyTorch)"
    )
