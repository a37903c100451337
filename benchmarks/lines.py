"""The benchmark's lines: one engine at one precision, loaded from the artifacts of one checkpoint.

Every line but the reference runs through `runtime.backends`, i.e. exactly what `runtime.Generator`
runs; the reference is the generator as the reference code runs it (PyTorch eager, float32, EqualLinear
scaled at run time, video and flows returned, batch standardization of the motion left out). GPU lines
are real code that runs where their engine exists and says why not elsewhere.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from export.fp16 import FP16_DIR
from export.int8 import INT8_DIR
from export.trt import engine_dir
from runtime.backends import load_checked, open_artifact
from runtime.manifest import GENERATOR_DIR

Run = Callable[[Mapping[str, np.ndarray]], np.ndarray]  # feeds -> video
CHECKPOINT = "checkpoint"  # the `artifact` of lines that run the checkpoint itself


@dataclass(frozen=True)
class Line:
    """One row of the results: an engine, a precision, the artifact it runs, where it runs."""

    key: str
    engine: str
    precision: str
    artifact: str  # folder under the exports, or CHECKPOINT
    device: str  # "cpu" or "cuda"
    runtime_backend: str | None  # the runtime backend that runs it end to end; None: engine-only line
    note: str = ""
    reference: bool = False  # the line every ratio is against
    loader: str = "backend"  # "reference" (the reference's module), "autocast", or a runtime backend
    env: tuple[tuple[str, str], ...] = ()  # environment of its process (see benchmarks.worker)
    natural_of: str = ""  # the line it repeats on the natural model's artifacts (Context.natural)

    @property
    def natural(self) -> bool:
        return bool(self.natural_of)

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}"


@dataclass
class Context:
    """Where a benchmark's model lives; `natural`: where the same preset fitted to time-lapses lives, when
    the benchmarked model has random weights (`benchmarks.fps.natural_context`)."""

    checkpoint: Path
    exports: Path
    natural: Context | None = None

    def of(self, item: Line) -> Context:
        """The context a line runs in: its natural model's, or this one."""
        if not item.natural:
            return self
        if self.natural is None:
            raise ValueError(f"line {item.key} needs a natural model; the benchmark made none")
        return self.natural


@dataclass
class Loaded:
    """A loaded line: run(feeds) -> video, what ran it, and the largest batch it takes (None: any)."""

    run: Run
    device: str
    close: Callable[[], None]
    max_batch: int | None = None


# fmt: off
LINES: tuple[Line, ...] = (
    Line(
        "reference", "PyTorch eager (reference)", "fp32", CHECKPOINT, "cpu", "torch",
        "training.model.Generator as the reference code runs it, torch.no_grad, video and flows",
        reference=True, loader="reference",
    ),
    Line(
        "reference-passive", "PyTorch eager (reference, OMP passive)", "fp32", CHECKPOINT, "cpu", None,
        "the reference with OMP_WAIT_POLICY=PASSIVE: as fast on an idle machine, far faster when "
        "another process holds a core (OpenMP's default spin-waiting then stalls every layer)",
        loader="reference", env=(("OMP_WAIT_POLICY", "PASSIVE"),),
    ),
    Line(
        "torch-bf16", "PyTorch eager", "bf16", CHECKPOINT, "cpu", None,
        "torch.autocast(cpu, bfloat16) around the deployed graph (equalized lr folded)",
        loader="autocast",
    ),
    Line("ort-fp32", "ONNX Runtime CPU", "fp32", GENERATOR_DIR, "cpu", "onnxruntime"),
    Line(
        "ort-fp16", "ONNX Runtime CPU", "fp16", FP16_DIR, "cpu", None,
        "no float16 kernels on ORT's CPU provider: float32 math on float16 weights, plus casts",
    ),
    Line(
        "ort-int8", "ONNX Runtime CPU", "int8", INT8_DIR, "cpu", "onnxruntime",
        "ORT fuses QDQ convolutions into int8 kernels only with quantized outputs; this model keeps "
        "outputs float, so ORT dequantizes and convolves in float32",
    ),
    Line("ov-fp32", "OpenVINO CPU", "fp32", GENERATOR_DIR, "cpu", "openvino"),
    Line(
        "ov-bf16", "OpenVINO CPU", "bf16", GENERATOR_DIR, "cpu", None,
        "the fp32 artifact with OpenVINO's bf16 inference precision",
    ),
    Line(
        "ov-int8", "OpenVINO CPU", "int8", INT8_DIR, "cpu", "openvino",
        "int8 convolutions chosen by the export, bf16 elsewhere (the manifest's precision)",
    ),
    Line(
        "ov-int8-natural", "OpenVINO CPU (fitted weights)", "int8", INT8_DIR, "cpu", None,
        "the same preset fitted to time-lapses, exported with the int8 layers its own quality allows: "
        "how fast the int8 export of a model with natural frames runs (random weights let fewer layers "
        "into int8); another model, so never the best path",
        natural_of="ov-int8",
    ),
    Line("ort-cuda-fp32", "ONNX Runtime CUDA EP", "fp32", GENERATOR_DIR, "cuda", "onnxruntime"),
    Line("ort-cuda-fp16", "ONNX Runtime CUDA EP", "fp16", FP16_DIR, "cuda", "onnxruntime"),
    Line("ort-trt-fp16", "ONNX Runtime TensorRT EP", "fp16", FP16_DIR, "tensorrt", "onnxruntime"),
    Line("trt-fp32", "TensorRT", "fp32", engine_dir("fp32"), "cuda", "tensorrt"),
    Line("trt-fp16", "TensorRT", "fp16", engine_dir("fp16"), "cuda", "tensorrt"),
    Line("torch-cuda-fp32", "PyTorch eager CUDA", "fp32", CHECKPOINT, "cuda", "torch"),
    Line(
        "torch-cuda-fp16", "PyTorch eager CUDA", "fp16", CHECKPOINT, "cuda", None,
        "torch.autocast(cuda, float16)", loader="autocast",
    ),
)
# fmt: on
CPU_KEYS = tuple(line.key for line in LINES if line.device == "cpu" and not line.natural)


def line(key: str) -> Line:
    return next(candidate for candidate in LINES if candidate.key == key)


@functools.cache
def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@functools.cache
def _ort_providers() -> tuple[str, ...]:
    import onnxruntime as ort

    return tuple(ort.get_available_providers())


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


NO_BF16 = "this CPU has no bfloat16 arithmetic (avx512_bf16 or AMX)"


@functools.cache
def _torch_bf16() -> bool:
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _openvino_bf16() -> bool:
    from runtime.backends.openvino import bf16_supported

    return bf16_supported()


def _no_bf16(item: Line) -> str | None:
    """Why a CPU bf16 line would not measure bf16 here: without the instructions PyTorch emulates
    bfloat16 (a paper clip takes minutes) and OpenVINO silently computes in float32."""
    if item.device != "cpu" or item.precision != "bf16":
        return None
    if item.loader == "autocast" and not _torch_bf16():
        return f"{NO_BF16}: PyTorch would emulate it, hundreds of times slower than fp32"
    if item.engine.startswith("OpenVINO") and not _openvino_bf16():
        return f"{NO_BF16}: OpenVINO would compute in float32, as the ov-fp32 line does"
    return None


def unavailable(item: Line, context: Context) -> str | None:
    """Why `item` cannot run on this machine, or None if it can."""
    if item.device in ("cuda", "tensorrt") and not _cuda():
        return "no CUDA GPU"
    if item.engine.startswith("OpenVINO") and not _installed("openvino"):
        return "openvino is not installed (pip install openvino)"
    reason = _no_bf16(item)
    if reason:
        return reason
    if item.engine.startswith("ONNX Runtime") and item.device != "cpu":
        wanted = "TensorrtExecutionProvider" if item.device == "tensorrt" else "CUDAExecutionProvider"
        if wanted not in _ort_providers():
            return f"onnxruntime has no {wanted} (needs onnxruntime-gpu)"
    if item.engine == "TensorRT":
        trt = importlib.import_module("tensorrt") if _installed("tensorrt") else None
        if trt is None or not hasattr(trt, "Builder"):
            return "TensorRT is not installed (pip install 'dtvnet[gpu]')"
    if item.natural and context.natural is None:
        return NO_NATURAL
    context = context.of(item)
    if item.artifact != CHECKPOINT and not (context.exports / item.artifact).is_dir():
        return f"no {item.artifact} artifact was exported"
    return None


NO_NATURAL = "the benchmarked model is a checkpoint, not random weights: its frames are its own natural ones"


def artifact_path(item: Line, context: Context) -> Path:
    context = context.of(item)
    return context.checkpoint if item.artifact == CHECKPOINT else context.exports / item.artifact


def flop_mix(item: Line, context: Context) -> dict[str, float] | None:
    """How a CPU line's FLOPs split over the precisions its arithmetic runs in ("fp32", "bf16", "int8" ->
    share), for its compute ceiling; None where that is not known here (GPU lines; ONNX Runtime's int8
    and fp16 lines, which dequantize or cast and then convolve in float32, whatever the artifact holds).
    An OpenVINO int8 line's share is its manifest's; the rest runs in the artifact's float precision."""
    if item.device != "cpu" or item.precision not in ("fp32", "bf16", "int8"):
        return None
    if item.precision != "int8":
        return {item.precision: 1.0}
    if not item.engine.startswith("OpenVINO"):
        return None
    from runtime.backends.openvino import inference_precision

    manifest, _ = open_artifact(artifact_path(item, context))
    share = manifest.extra.get("int8", {}).get("int8_flop_share")
    if share is None:
        return None
    rest = "bf16" if inference_precision(manifest) == "bf16" and _openvino_bf16() else "fp32"
    return {"int8": float(share), rest: 1.0 - float(share)}


def load(item: Line, context: Context) -> Loaded:
    """Load a line for timing (engine only: arrays in, video out)."""
    if item.loader == "reference":
        return _load_reference(context.of(item).checkpoint)
    if item.loader == "autocast":
        return _load_autocast(context.of(item).checkpoint, item.device)
    manifest, model_path = open_artifact(artifact_path(item, context))
    if item.key == "ov-bf16":  # the fp32 artifact, told to compute in bf16
        manifest = replace(manifest, extra={**manifest.extra, "openvino": {"inference_precision": "bf16"}})
    backend = load_checked(manifest, model_path, "generator", item.runtime_backend or "openvino", item.device)
    return Loaded(lambda feeds: backend.run(feeds)["video"], backend.device, backend.close, backend.max_batch)


def _load_reference(checkpoint: Path) -> Loaded:
    import torch

    from training import checkpoint as ckpt_io

    generator = ckpt_io.load(checkpoint, components=["generator"]).generator()

    def run(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        image, motion = (torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in ("image", "motion"))
        with torch.no_grad():
            return generator(image, motion).video.numpy()

    return Loaded(run, f"torch {torch.__version__} CPU, {torch.get_num_threads()} threads", lambda: None)


def _load_autocast(checkpoint: Path, device: str) -> Loaded:
    import torch

    from training import checkpoint as ckpt_io
    from training.model.deployed import GeneratorGraph

    module = GeneratorGraph(ckpt_io.load(checkpoint, components=["generator"]).generator()).to(device)
    dtype = torch.bfloat16 if device == "cpu" else torch.float16

    def run(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        image, motion = (
            torch.from_numpy(np.ascontiguousarray(feeds[n])).to(device) for n in ("image", "motion")
        )
        with torch.inference_mode(), torch.autocast(device, dtype=dtype):
            return module(image, motion)[0].float().cpu().numpy()  # video; flows come with it

    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return Loaded(run, f"torch {torch.__version__} {name}", lambda: None)


def runtime_artifact(item: Line, context: Context) -> tuple[Path, dict[str, Any]]:
    """What `runtime.Generator` is given for a line's end-to-end run: artifact and keyword arguments."""
    return artifact_path(item, context), {"backend": item.runtime_backend, "device": item.device}
