"""ONNX -> TensorRT engine (`OUT/trt-fp16/model.plan` + manifest), verified against PyTorch on the GPU.

Usage:
    python -m export.trt CKPT [--out DIR] [--fp16 | --fp32] [--batch MIN,OPT,MAX] [--force]
                              [--workspace-gib N] [--timing-cache FILE] [--weak-typing]

Runs the whole export (fp32 ONNX, fp16 ONNX, flow encoder ONNX, then the engine). Without TensorRT
or without a GPU it still writes the ONNX artifacts, then exits non-zero saying what is missing.

Every decision (profile, version dispatch, flags, paths, manifest, messages) is a plain function
tested on CPU; only `build_engine` and `engine_runner` touch TensorRT, and tests/test_trt_api.py
checks them against TensorRT's published Python API (tensorrt-stubs). Precision by version:
- TensorRT 11 builds only strongly typed networks (no FP16 builder flag): fp16 engines are built from
  the mixed-precision ONNX (`onnx-fp16`), whose Casts fix every layer's precision.
- TensorRT 10 does the same by default, so engines of both versions have the precisions that were
  verified on CPU. `--weak-typing` (TensorRT 10 only) instead parses the fp32 ONNX and sets the FP16
  builder flag, letting TensorRT choose fp16 or fp32 per layer where that is faster; the
  instance-norm statistics are then not pinned to fp32, and only the parity check guards them.
- fp32 engines clear the TF32 flag (on by default), so they are a true fp32 reference.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.errors import BackendUnavailableError, EngineMismatchError, ExportError
from runtime.manifest import Manifest, TensorSpec

if TYPE_CHECKING:
    import tensorrt as trt

    from export.parity import ParityRunner, TensorsRunner
    from export.progress import Steps

log = logging.getLogger(__name__)

ENGINE_FILE = "model.plan"
PRECISIONS = ("fp16", "fp32")
DEFAULT_BATCH = "1,4,8"
DEFAULT_WORKSPACE_GIB = 4.0
MIN_TENSORRT_MAJOR = 10
SUPPORTED_MAJORS = (10, 11)
BUILD_STEPS = 2  # build, verify
INSTALL_HINT = "pip install 'dtvnet[gpu]'"


# ---------------------------------------------------------------------------------------------
# Plain decisions (tested on CPU)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchProfile:
    """The optimization profile over the batch dimension: min <= opt <= max."""

    min: int
    opt: int
    max: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def shapes(self, spec: TensorSpec) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) shapes of one input whose shape names its batch dimension "batch"."""

        def at(batch: int) -> tuple[int, ...]:
            return tuple(batch if d == "batch" else int(d) for d in spec.shape)

        return at(self.min), at(self.opt), at(self.max)


def parse_batch_profile(text: str) -> BatchProfile:
    """ "1,4,8" -> BatchProfile(1, 4, 8); ValueError with one sentence if malformed."""
    from export.onnx import MAX_BATCH

    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(
            f"--batch must be three whole numbers MIN,OPT,MAX such as {DEFAULT_BATCH}, not {text!r}"
        )
    lo, opt, hi = (int(p) for p in parts)
    if not 1 <= lo <= opt <= hi <= MAX_BATCH:
        raise ValueError(f"--batch {text} must satisfy 1 <= MIN <= OPT <= MAX <= {MAX_BATCH}")
    return BatchProfile(lo, opt, hi)


def batch_argument(text: str) -> BatchProfile:
    """argparse `type=` for --batch (argparse prints the sentence and exits 2)."""
    try:
        return parse_batch_profile(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_batch_argument(parser: argparse.ArgumentParser, purpose: str) -> None:
    """--batch MIN,OPT,MAX (default DEFAULT_BATCH), for the exports that build or serve a batch profile."""
    parser.add_argument(
        "--batch",
        type=batch_argument,
        default=parse_batch_profile(DEFAULT_BATCH),
        metavar="MIN,OPT,MAX",
        help=f"{purpose} (default {DEFAULT_BATCH})",
    )


def tensorrt_major(version: str) -> int:
    """Major version of a TensorRT version string ("10.13.0.35" -> 10)."""
    head = version.split(".")[0]
    if not head.isdigit():
        raise ValueError(f"unrecognised TensorRT version {version!r}")
    return int(head)


@dataclass(frozen=True)
class BuildPlan:
    """How to build one engine: which ONNX artifact, network typing and builder flags."""

    tensorrt_version: str
    precision: str
    source_dir: str  # ONNX artifact folder the network is parsed from
    strongly_typed: bool
    set_flags: tuple[str, ...] = ()  # trt.BuilderFlag names
    clear_flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "strongly_typed": self.strongly_typed,
            "set_flags": list(self.set_flags),
            "clear_flags": list(self.clear_flags),
            "source": self.source_dir,
        }


def plan_build(tensorrt_version: str, precision: str, *, weak_typing: bool = False) -> BuildPlan:
    """Version dispatch: see the module docstring for why each combination is built this way."""
    from export.fp16 import FP16_DIR
    from runtime.manifest import GENERATOR_DIR

    major = tensorrt_major(tensorrt_version)
    if major < MIN_TENSORRT_MAJOR:
        raise BackendUnavailableError(
            f"TensorRT {tensorrt_version} is too old: dtvnet builds engines with TensorRT 10 or 11; "
            f"upgrade with `{INSTALL_HINT}`."
        )
    if major not in SUPPORTED_MAJORS:
        log.warning(
            "TensorRT %s is newer than the versions dtvnet was written for (10, 11)", tensorrt_version
        )
    if precision not in PRECISIONS:
        raise ExportError(f"Unknown engine precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision == "fp32":
        if weak_typing:
            raise ExportError("--weak-typing only applies to fp16 engines; drop it or build with --fp16.")
        return BuildPlan(tensorrt_version, "fp32", GENERATOR_DIR, strongly_typed=True, clear_flags=("TF32",))
    if not weak_typing:
        return BuildPlan(tensorrt_version, "fp16", FP16_DIR, strongly_typed=True)
    if major >= 11:
        raise ExportError(
            f"TensorRT {tensorrt_version} builds only strongly typed networks (it has no FP16 builder flag); "
            "drop --weak-typing to build from the mixed-precision ONNX."
        )
    return BuildPlan(tensorrt_version, "fp16", GENERATOR_DIR, strongly_typed=False, set_flags=("FP16",))


def engine_dir(precision: str) -> str:
    """Artifact folder of an engine: trt-fp16, trt-fp32."""
    return f"trt-{precision}"


def timing_cache_path(
    tensorrt_version: str, compute_capability: str, cache_dir: str | Path | None = None
) -> Path:
    """Timing cache file for one TensorRT version and GPU architecture (caches do not transfer).

    Default folder: $XDG_CACHE_HOME/dtvnet/tensorrt (~/.cache/dtvnet/tensorrt), shared by every
    export on the machine so rebuilds skip kernel timing.
    """
    if cache_dir is None:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        cache_dir = Path(base) / "dtvnet" / "tensorrt"
    sm = compute_capability.replace(".", "")
    return Path(cache_dir) / f"trt{tensorrt_version}-sm{sm}.cache"


@dataclass(frozen=True)
class TensorRTStatus:
    """What this machine has for building and running engines; `missing` says what is not there."""

    version: str | None
    gpu: str | None
    compute_capability: str | None
    missing: str | None

    def require(self, doing: str, onnx_dir: str | Path) -> None:
        """Raise BackendUnavailableError (one sentence) if TensorRT or the GPU is missing."""
        if self.missing:
            raise BackendUnavailableError(missing_backend_message(self.missing, doing, onnx_dir))


def missing_backend_message(missing: str, doing: str, onnx_dir: str | Path) -> str:
    """The one sentence: what is missing, how to get it, and how to run the ONNX artifact instead."""
    return (
        f"Cannot {doing}: {missing}; on a machine with an NVIDIA GPU run `{INSTALL_HINT}` (with a CUDA "
        f"build of PyTorch) and run the command again, or run the ONNX artifact {str(onnx_dir)!r} with "
        f"ONNX Runtime instead (runtime.Generator({str(onnx_dir)!r}))."
    )


def describe_missing(
    tensorrt_version: str | None, stubs_only: bool, cuda: bool, torch_version: str
) -> str | None:
    """The phrase naming what is missing (None if nothing is), from what `probe_tensorrt` found."""
    problems = []
    if tensorrt_version is None:
        stubs = " (only its type stubs, tensorrt-stubs, are)" if stubs_only else ""
        problems.append(f"TensorRT is not installed{stubs}")
    elif tensorrt_major(tensorrt_version) < MIN_TENSORRT_MAJOR:
        problems.append(f"TensorRT {tensorrt_version} is installed but dtvnet needs TensorRT 10 or 11")
    if not cuda:
        cpu_only = f" (PyTorch {torch_version} is a CPU-only build)" if "+cpu" in torch_version else ""
        problems.append(f"no NVIDIA GPU is visible to PyTorch{cpu_only}")
    return " and ".join(problems) or None


def probe_tensorrt() -> TensorRTStatus:
    """Import TensorRT and query the GPU through PyTorch, without failing."""
    import importlib

    import torch

    version, stubs_only = None, False
    try:
        trt_module = importlib.import_module("tensorrt")
    except ImportError:
        pass
    else:
        # tensorrt-stubs alone leaves an empty `tensorrt` namespace package behind
        stubs_only = not hasattr(trt_module, "Builder")
        version = None if stubs_only else str(getattr(trt_module, "__version__", "0"))
    cuda = bool(torch.cuda.is_available())
    gpu = torch.cuda.get_device_name(0) if cuda else None
    capability = ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None
    missing = describe_missing(version, stubs_only, cuda, torch.__version__)
    return TensorRTStatus(version, gpu, capability, missing)


def engine_manifest(
    onnx_manifest: Manifest,
    plan: BuildPlan,
    profile: BatchProfile,
    status: TensorRTStatus,
    *,
    model_sha256: str,
    workspace_bytes: int,
    timing_cache: Path | None,
) -> Manifest:
    """The engine's manifest: the ONNX artifact's I/O and config plus TensorRT version, GPU and profile."""
    return replace(
        onnx_manifest,
        engine="tensorrt",
        precision=plan.precision,
        model_file=ENGINE_FILE,
        model_sha256=model_sha256,
        batch=profile.to_dict(),
        versions={**onnx_manifest.versions, "tensorrt": str(status.version)},
        tensorrt={
            "version": status.version,
            "gpu": status.gpu,
            "compute_capability": status.compute_capability,
            "precision": plan.precision,
            "profile": profile.to_dict(),
            "workspace_bytes": workspace_bytes,
            "timing_cache": str(timing_cache) if timing_cache else None,
            **plan.to_dict(),
        },
        companions={**onnx_manifest.companions, "onnx": f"../{plan.source_dir}"},
        parity=None,
        extra={},
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def check_engine(manifest: Manifest, status: TensorRTStatus, where: str | Path) -> None:
    """EngineMismatchError if an engine was built for another TensorRT version or GPU architecture.

    A serialized engine only loads on the TensorRT version and compute capability it was built
    for; the runtime's TensorRT backend can call this before deserializing.
    """
    built = manifest.tensorrt or {}
    here = {"version": status.version, "compute_capability": status.compute_capability}
    wrong = [
        f"{key} {built.get(key)} (this machine: {value})"
        for key, value in here.items()
        if built.get(key) != value
    ]
    if wrong:
        raise EngineMismatchError(
            f"The TensorRT engine {str(where)!r} was built for another setup ({', '.join(wrong)}); rebuild "
            "it here with `python -m export.trt CHECKPOINT --force`, or run its ONNX companion instead."
        )


@dataclass(frozen=True)
class ParserErrorInfo:
    """One ONNX parser error, copied out of TensorRT's ParserError."""

    desc: str
    code: str = ""
    node: int = -1
    node_name: str = ""
    node_operator: str = ""
    file: str = ""
    line: int = 0
    func: str = ""


def format_parser_errors(
    onnx_path: str | Path, tensorrt_version: str, errors: Sequence[ParserErrorInfo]
) -> str:
    """All parser errors in one message: node, operator, description, code and parser source location."""
    parts = []
    for i, e in enumerate(errors, 1):
        where = f"node {e.node} {e.node_name!r} ({e.node_operator})" if e.node >= 0 else "model"
        source = f"{e.file}:{e.line} in {e.func}" if e.file else "unknown location"
        parts.append(f"[{i}] {where}: {e.desc} (code {e.code or '?'}, parser {source})")
    detail = "; ".join(parts) or "no error details were reported"
    return (
        f"TensorRT {tensorrt_version} could not parse {str(onnx_path)!r} ({len(errors)} error(s)): {detail}; "
        "re-export the ONNX artifact with this dtvnet, or report the failing node."
    )


# ---------------------------------------------------------------------------------------------
# TensorRT (thin; needs TensorRT and an NVIDIA GPU; checked against tensorrt-stubs in CI)
# ---------------------------------------------------------------------------------------------


def _logger() -> tuple[trt.ILogger, list[str]]:
    """A TensorRT logger that forwards to `logging` and keeps error messages for exceptions."""
    import tensorrt as trt

    errors: list[str] = []

    class Recorder(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                errors.append(msg)
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.warning("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    return Recorder(), errors


def build_engine(
    onnx_path: Path,
    plan: BuildPlan,
    profile: BatchProfile,
    inputs: Sequence[TensorSpec],
    *,
    workspace_bytes: int,
    timing_cache: Path | None,
) -> bytes:
    """Parse the ONNX model and build a serialized engine; parser and builder errors in full."""
    import tensorrt as trt

    logger, errors = _logger()
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        infos = []
        for i in range(parser.num_errors):
            err: trt.ParserError = parser.get_error(i)
            infos.append(
                ParserErrorInfo(
                    desc=err.desc(),
                    code=str(err.code()),
                    node=err.node(),
                    node_name=err.node_name(),
                    node_operator=err.node_operator(),
                    file=err.file(),
                    line=err.line(),
                    func=err.func(),
                )
            )
        raise ExportError(format_parser_errors(onnx_path, plan.tensorrt_version, infos))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if "FP16" in plan.set_flags:
        config.set_flag(trt.BuilderFlag.FP16)
    if "TF32" in plan.clear_flags:
        config.clear_flag(trt.BuilderFlag.TF32)
    optimization_profile = builder.create_optimization_profile()
    for spec in inputs:
        low, opt, high = (trt.Dims(list(shape)) for shape in profile.shapes(spec))
        optimization_profile.set_shape(spec.name, low, opt, high)
    config.add_optimization_profile(optimization_profile)
    cached = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cached)
    if cache is None or not config.set_timing_cache(cache, False):
        log.warning(
            "timing cache %s is unreadable or for another GPU/TensorRT; starting a new one", timing_cache
        )
        config.set_timing_cache(config.create_timing_cache(b""), False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(
            f"TensorRT {plan.tensorrt_version} could not build an engine from {str(onnx_path)!r}: "
            f"{' | '.join(errors) or 'no error was logged'}; try a larger --workspace-gib or --batch range."
        )
    if timing_cache is not None:
        _save_timing_cache(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def _save_timing_cache(path: Path, data: bytes) -> None:
    from runtime.fsutil import atomic_file

    try:
        with atomic_file(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:  # the cache is an optimization; never fail an export over it
        log.warning("could not save the timing cache %s: %s", path, exc)


def engine_runner(plan_path: str | Path, outputs: Sequence[str] | None = None) -> TensorsRunner:
    """Run a serialized engine on the current CUDA device with torch tensors as buffers; every output, in
    the order of `outputs` (the manifest's: a generator's video, then flows), else the engine's."""
    import tensorrt as trt
    import torch

    logger, errors = _logger()
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
    if engine is None:
        raise EngineMismatchError(
            f"TensorRT {trt.__version__} cannot load {str(plan_path)!r} ({' | '.join(errors) or 'unknown'}); "
            "rebuild it on this machine with `python -m export.trt CHECKPOINT --force`."
        )
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    output_names = [n for n in names if n not in input_names]

    def torch_dtype(name: str) -> torch.dtype:
        return torch.from_numpy(np.empty(0, dtype=trt.nptype(engine.get_tensor_dtype(name)))).dtype

    def run(arrays: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        buffers = {}
        for name in input_names:
            tensor = torch.from_numpy(np.ascontiguousarray(arrays[name])).to("cuda", torch_dtype(name))
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, tensor.data_ptr())
            buffers[name] = tensor
        for name in output_names:
            dims = context.get_tensor_shape(name)
            shape = [dims[i] for i in range(len(dims))]
            buffers[name] = torch.empty(shape, dtype=torch_dtype(name), device="cuda")
            context.set_tensor_address(name, buffers[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not context.execute_async_v3(stream.cuda_stream):
            raise ExportError(
                f"TensorRT failed to run {str(plan_path)!r}: {' | '.join(errors) or 'unknown'}."
            )
        stream.synchronize()
        return [buffers[name].float().cpu().numpy() for name in outputs or output_names]

    return run


# ---------------------------------------------------------------------------------------------
# Export of one engine artifact
# ---------------------------------------------------------------------------------------------


def engine_runners(manifest: Manifest, model_path: Path) -> dict[str, ParityRunner]:
    """A TensorRT artifact's parity runner: its engine on this machine's GPU, checked against the manifest
    (TensorRT version, GPU) first."""
    status = probe_tensorrt()
    status.require("run a TensorRT engine", model_path.parent / manifest.companions.get("onnx", ""))
    check_engine(manifest, status, model_path)
    names = [spec.name for spec in manifest.outputs]
    return {f"tensorrt {status.version} on {status.gpu}": engine_runner(model_path, names)}


def export_engine(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    precision: str = "fp16",
    profile: BatchProfile | None = None,
    force: bool = False,
    weak_typing: bool = False,
    workspace_gib: float = DEFAULT_WORKSPACE_GIB,
    timing_cache: str | Path | None = None,
    steps: Steps | None = None,
    seed: int | None = None,
    status: TensorRTStatus | None = None,
) -> Path:
    """Build and verify `out_dir/trt-<precision>/` from the ONNX artifact of the same checkpoint."""
    from export.onnx import GENERATOR_DIR, derived_source, reference_module
    from export.parity import module_runner, write_verified
    from export.progress import steps_or_new
    from runtime.fsutil import atomic_dir, ensure_writable_dir, refuse_overwrite, sha256_file
    from training import checkpoint as ckpt_io

    status = status or probe_tensorrt()
    status.require("build a TensorRT engine", Path(out_dir) / GENERATOR_DIR)
    assert status.version is not None and status.compute_capability is not None
    plan = plan_build(status.version, precision, weak_typing=weak_typing)
    profile = profile or parse_batch_profile(DEFAULT_BATCH)
    source = ckpt_io.load(checkpoint, components=["generator"])
    onnx_manifest, onnx_path = derived_source(source, out_dir, plan.source_dir)
    folder = Path(out_dir) / engine_dir(precision)
    refuse_overwrite(folder, force, "artifact folder")
    ensure_writable_dir(out_dir)
    cache = (
        Path(timing_cache) if timing_cache else timing_cache_path(status.version, status.compute_capability)
    )
    workspace = int(workspace_gib * (1 << 30))
    timings: dict[str, float] = {}
    with steps_or_new(steps, BUILD_STEPS, folder.name) as bar, atomic_dir(folder) as tmp:
        with bar.step("build", timings, folder.name):
            start = time.perf_counter()
            data = build_engine(
                onnx_path, plan, profile, onnx_manifest.inputs, workspace_bytes=workspace, timing_cache=cache
            )
            (tmp / ENGINE_FILE).write_bytes(data)
            log.info("built %s engine in %.0fs", precision, time.perf_counter() - start)
        manifest = engine_manifest(
            onnx_manifest,
            plan,
            profile,
            status,
            model_sha256=sha256_file(tmp / ENGINE_FILE),
            workspace_bytes=workspace,
            timing_cache=cache,
        )
        reference = module_runner(reference_module(source, "generator"))
        write_verified(
            tmp, manifest, reference, bar, timings, folder.name, runners_for=engine_runners, seed=seed
        )
    return folder
