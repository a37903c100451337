"""Every decision of the TensorRT backend that needs no GPU: is this engine for this machine, which
tensors does it bind, which batch sizes and shapes does it take. Kept apart from `tensorrt.py` so
that CPU tests cover it; the backend module itself only talks to TensorRT and CUDA.

TensorRT engines run only on the TensorRT version that built them and on the GPU (compute
capability) they were built for; the manifest records both ({"version", "gpu",
"compute_capability"}) and a mismatch is an EngineMismatchError that says how to rebuild.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends import check_graph_io, concrete_shape, parse_device
from runtime.errors import ArtifactError, BackendUnavailableError, EngineMismatchError, ManifestError
from runtime.manifest import Manifest


@dataclass(frozen=True)
class LocalGPU:
    """The GPU an engine is about to run on."""

    name: str
    compute_capability: tuple[int, int]


@dataclass(frozen=True)
class EngineTensor:
    """One I/O tensor as the engine reports it; -1 marks a dynamic dimension."""

    name: str
    is_input: bool
    dtype: str  # numpy name: "float32", "float16"
    shape: tuple[int, ...]
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None  # inputs: min, opt, max


@dataclass(frozen=True)
class BindingPlan:
    """What to bind for a batch: tensor names, numpy types, and the batch range of profile 0."""

    manifest: Manifest
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dtypes: dict[str, np.dtype[Any]]
    min_batch: int
    opt_batch: int
    max_batch: int
    where: str

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Every input and output shape for `batch`; raises ArtifactError outside the engine's range."""
        if not self.min_batch <= batch <= self.max_batch:
            raise ArtifactError(
                f"TensorRT engine {self.where} takes batches of {self.min_batch} to {self.max_batch}, not "
                f"{batch}; use batch_size <= {self.max_batch} or rebuild the engine with a larger profile."
            )
        specs = [*self.manifest.inputs, *self.manifest.outputs]
        return {spec.name: concrete_shape(spec, batch) for spec in specs}


def cuda_device_index(device: str | None) -> int:
    """The GPU index for the TensorRT backend: None, "cuda" or "cuda:N"."""
    kind, index = parse_device(device)
    if kind not in ("auto", "cuda"):
        raise BackendUnavailableError(
            f"TensorRT engines run on an NVIDIA GPU, not on device {device!r}; use device='cuda:N', or run "
            "the ONNX artifact with the onnxruntime backend instead."
        )
    return index


def version_triplet(version: str) -> tuple[int, ...]:
    """ "10.13.0.35" -> (10, 13, 0): engines are tied to major.minor.patch."""
    numbers = re.findall(r"\d+", str(version))
    return tuple(int(n) for n in numbers[:3])


def compute_capability(value: Any) -> tuple[int, int] | None:
    """Read "8.6", "sm_86", "86", 8.6 or [8, 6] as (8, 6); None if unreadable."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    text = str(value).strip().lower().removeprefix("sm_").removeprefix("sm")
    if match := re.fullmatch(r"(\d+)\.(\d+)", text):
        return int(match[1]), int(match[2])
    if re.fullmatch(r"\d{2,3}", text):
        return int(text[:-1]), int(text[-1])
    return None


def same_gpu_name(a: str, b: str) -> bool:
    """GPU names compared without case, spacing or the vendor prefix."""

    def norm(name: str) -> str:
        return " ".join(name.lower().replace("nvidia", " ").split())

    return norm(a) == norm(b)


def check_engine_compat(manifest: Manifest, model_path: Path, tensorrt_version: str, gpu: LocalGPU) -> None:
    """Raise EngineMismatchError if the engine was built for another TensorRT version or GPU."""
    where = repr(str(model_path))
    built = manifest.tensorrt or {}
    if not {"version", "gpu", "compute_capability"} <= built.keys():
        raise ManifestError(
            f"The manifest of TensorRT engine {where} lacks its tensorrt version/gpu/compute_capability; "
            "rebuild the engine with `python -m export.trt CHECKPOINT`."
        )
    rebuild = f"`python -m export.trt {manifest.source_checkpoint or 'CHECKPOINT'}`"
    if version_triplet(built["version"]) != version_triplet(tensorrt_version):
        raise EngineMismatchError(
            f"TensorRT engine {where} was built with TensorRT {built['version']} but this machine has "
            f"TensorRT {tensorrt_version}; rebuild it here with {rebuild}."
        )
    built_cc = compute_capability(built["compute_capability"])
    if built_cc != gpu.compute_capability or not same_gpu_name(str(built["gpu"]), gpu.name):
        cc = "unknown" if built_cc is None else f"{built_cc[0]}.{built_cc[1]}"
        local_cc = f"{gpu.compute_capability[0]}.{gpu.compute_capability[1]}"
        raise EngineMismatchError(
            f"TensorRT engine {where} was built for {built['gpu']} (compute capability {cc}) but this "
            f"machine's GPU is {gpu.name} ({local_cc}); rebuild it on this GPU with {rebuild}."
        )


def plan_bindings(manifest: Manifest, tensors: Sequence[EngineTensor], where: str) -> BindingPlan:
    """Check the engine's tensors against the manifest and read its batch range (profile 0)."""
    inputs = [t for t in tensors if t.is_input]
    outputs = [t for t in tensors if not t.is_input]
    check_graph_io(
        manifest,
        [(t.name, t.shape, t.dtype) for t in inputs],
        [(t.name, t.shape, t.dtype) for t in outputs],
        f"TensorRT engine {where}",
    )
    ranges = [
        (t.profile[0][0], t.profile[1][0], t.profile[2][0]) if t.profile else (t.shape[0],) * 3
        for t in inputs
    ]
    low, high = max(r[0] for r in ranges), min(r[2] for r in ranges)
    if low > high:
        raise ArtifactError(
            f"TensorRT engine {where} has input profiles with no batch size in common; rebuild the engine."
        )
    if manifest.batch and (manifest.batch.get("min"), manifest.batch.get("max")) != (low, high):
        raise ManifestError(
            f"TensorRT engine {where} takes batches of {low} to {high} but its manifest says "
            f"{manifest.batch.get('min')} to {manifest.batch.get('max')}; rebuild the engine."
        )
    return BindingPlan(
        manifest=manifest,
        inputs=tuple(t.name for t in inputs),
        outputs=tuple(t.name for t in outputs),
        dtypes={t.name: np.dtype(t.dtype) for t in tensors},
        min_batch=low,
        opt_batch=min(max(max(r[1] for r in ranges), low), high),
        max_batch=high,
        where=where,
    )
