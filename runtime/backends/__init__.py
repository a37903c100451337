"""One interface over the engines that run an artifact: ONNX Runtime, OpenVINO, TensorRT and PyTorch,
and a model served by a Triton Inference Server (given by its URL instead of an artifact path).

A backend runs one graph (the generator, or the flow encoder for motion transfer) on named numpy
arrays. Each lives in its own module, named in BACKEND_MODULES and imported only when chosen, so that
the ONNX Runtime and TensorRT paths never import torch, and the PyTorch backend (it runs a checkpoint,
so it needs `training`) lives above the runtime without the runtime importing it. Decisions that do
not need the engine itself (which backend fits an artifact, whether a loaded graph matches its
manifest) live here, where CPU tests reach them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from runtime.errors import ArtifactError, BackendUnavailableError, ManifestError
from runtime.manifest import MANIFEST_NAME, Manifest, TensorSpec, resolve_artifact, verify_integrity

BACKENDS = ("onnxruntime", "openvino", "tensorrt", "torch", "triton")
# backend -> module with load(manifest, model_path, device) (and checkpoint_manifest / connect where needed)
BACKEND_MODULES = {name: f"runtime.backends.{name}" for name in BACKENDS}
BACKEND_MODULES["torch"] = "training.torch_backend"  # above the runtime: it runs checkpoints
SERVER_SCHEMES = ("http://", "https://")  # a model on a Triton server (runtime.backends.triton)
ENGINE_BACKENDS = {"onnx": "onnxruntime", "tensorrt": "tensorrt", "torch": "torch"}
ALSO_RUN_BY = {"onnx": ("openvino",)}  # engines other backends can run too, on request
TENSORRT_SUFFIXES = (".plan", ".engine")
CHECKPOINT_CONFIG = (
    "config.json"  # a checkpoint folder's config (training.checkpoint.CONFIG_FILE, torch-free)
)
DTYPES: dict[str, type[np.floating[Any]]] = {"float32": np.float32, "float16": np.float16}


class Backend(Protocol):
    """A loaded graph: named float arrays in, named float32 arrays out, batch in the first dimension."""

    name: str  # one of BACKENDS
    device: str  # what it runs on, in words (execution provider, GPU name, torch device)
    max_batch: int | None  # the largest batch it accepts; None: any

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


INSTALL_HINTS = {
    "onnxruntime": "pip install onnxruntime (or, instead of it, onnxruntime-gpu)",
    "openvino": "pip install openvino",
    "tensorrt": "install TensorRT and cuda-python beside an NVIDIA GPU (pip install 'dtvnet[gpu]')",
    "torch": "pip install torch",
    "triton": "pip install 'dtvnet[triton]'",
}


THIRD_PARTY = {
    "onnx",
    "onnxruntime",
    "openvino",
    "tensorrt",
    "torch",
    "cuda",
    "tritonclient",
    "gevent",
    "geventhttpclient",
}


class RemoteBackend(Backend, Protocol):
    """A backend for a model on a server: its manifest comes from the server, not from a file."""

    manifest: Manifest
    url: str  # where the model is served

    def companion(self, kind: str) -> RemoteBackend: ...


def is_server_url(source: object) -> bool:
    """Whether an artifact argument names a model on a server (http[s]://...) rather than a local path."""
    return isinstance(source, str) and source.startswith(SERVER_SCHEMES)


def is_checkpoint(path: Path) -> bool:
    """A checkpoint folder (config.json, no manifest.json): run with the PyTorch backend."""
    return path.is_dir() and (path / CHECKPOINT_CONFIG).is_file() and not (path / MANIFEST_NAME).exists()


def open_artifact(path: str | os.PathLike[str], kind: str = "generator") -> tuple[Manifest, Path]:
    """The manifest and model file of an artifact (folder, manifest or model file) or checkpoint folder."""
    p = Path(path)
    if is_checkpoint(p):
        torch_backend = _backend_module("torch")  # only checkpoints need torch (and training)
        manifest, model_path = torch_backend.checkpoint_manifest(p, kind)
        return manifest, model_path
    return resolve_artifact(p)


def choose_backend(
    manifest: Manifest, model_path: Path, requested: str = "auto", device: str | None = None
) -> str:
    """The backend for an artifact: TensorRT for engines, ONNX Runtime for .onnx, PyTorch for checkpoints;
    OpenVINO for int8 .onnx on the CPU where it is installed (the int8 export verifies it there).

    An explicit request must fit the artifact; the error says which backend does.
    """
    if requested not in ("auto", *BACKENDS):
        raise BackendUnavailableError(f"Unknown backend {requested!r}; choose auto, {', '.join(BACKENDS)}.")
    if model_path.suffix in TENSORRT_SUFFIXES and manifest.engine != "tensorrt":
        raise ManifestError(
            f"{str(model_path)!r} looks like a TensorRT engine but its manifest says engine "
            f"{manifest.engine!r}; re-export the artifact."
        )
    if requested == "triton":
        raise BackendUnavailableError(
            f"The triton backend runs a model on a Triton server, not the file {str(model_path)!r}; pass the "
            "model's URL (http://HOST:8000/v2/models/NAME) as the artifact, or use backend='auto'."
        )
    fitting = ENGINE_BACKENDS.get(manifest.engine)
    if fitting is None:
        raise BackendUnavailableError(
            f"Artifact {str(model_path)!r} is a {manifest.engine} artifact, which this runtime does not run; "
            "export an ONNX model or a TensorRT engine instead."
        )
    if requested not in ("auto", fitting, *ALSO_RUN_BY.get(manifest.engine, ())):
        raise BackendUnavailableError(
            f"Artifact {str(model_path)!r} is a {manifest.engine} artifact, which the {requested} backend "
            f"cannot run; use backend={fitting!r} (or auto)."
        )
    if requested == "auto" and prefers_openvino(manifest, device):
        return "openvino"
    return fitting if requested == "auto" else requested


def prefers_openvino(manifest: Manifest, device: str | None) -> bool:
    """int8 ONNX on the CPU goes to OpenVINO when it is installed: its int8 kernels are the fast path the
    int8 export chose layers for and verified."""
    return (
        manifest.engine == "onnx"
        and manifest.precision == "int8"
        and parse_device(device)[0] in ("auto", "cpu")
        and importlib.util.find_spec("openvino") is not None
    )


def open_backend(name: str, manifest: Manifest, model_path: Path, device: str | None = None) -> Backend:
    """Import the chosen backend's module (only now) and load the artifact with it."""
    backend: Backend = _backend_module(name).load(manifest, model_path, device)
    return backend


def load_remote(url: str, kind: str, backend: str = "auto", device: str | None = None) -> RemoteBackend:
    """Connect to a model served at `url` (the triton backend), checked against the manifest it serves."""
    if backend not in ("auto", "triton"):
        raise BackendUnavailableError(
            f"{url!r} is a model on a server, which the {backend} backend cannot run; use backend='triton' "
            "(or auto)."
        )
    if device is not None:
        raise BackendUnavailableError(
            f"The server behind {url!r} picks its own devices (its model config's instance groups); drop the "
            "device argument."
        )
    remote: RemoteBackend = _backend_module("triton").connect(url, kind)
    return remote


def _backend_module(name: str) -> Any:
    """Import a backend's module only now, turning a missing third-party package into one sentence."""
    if name not in BACKENDS:
        raise BackendUnavailableError(f"Unknown backend {name!r}; choose one of {', '.join(BACKENDS)}.")
    try:
        return importlib.import_module(BACKEND_MODULES[name])
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in THIRD_PARTY:
            raise
        raise BackendUnavailableError(
            f"The {name} backend needs {exc.name or 'a package'}, which is not installed; "
            f"{INSTALL_HINTS[name]}."
        ) from None


def parse_device(device: str | None) -> tuple[str, int]:
    """ "cuda:1" -> ("cuda", 1); None -> ("auto", 0). Kinds: auto, cpu, cuda, tensorrt (ONNX Runtime's EP)."""
    if device is None or device == "auto":
        return "auto", 0
    kind, _, index = device.partition(":")
    if (
        kind not in ("cpu", "cuda", "tensorrt")
        or (index and not index.isdigit())
        or (kind == "cpu" and index)
    ):
        raise BackendUnavailableError(
            f"Unknown device {device!r}; use cpu, cuda, cuda:N or tensorrt[:N], or None for the best one."
        )
    return kind, int(index or 0)


def load_checked(
    manifest: Manifest, model_path: Path, kind: str, backend: str = "auto", device: str | None = None
) -> Backend:
    """Check an artifact against its manifest (kind, tensor shapes, sha256), then load it on a backend
    (which checks the rest: the graph's tensors and precision, an engine's TensorRT version and GPU)."""
    where = repr(str(model_path))
    require_kind(manifest, kind, where)
    check_manifest_shapes(manifest, where)
    verify_integrity(manifest, model_path)
    return open_backend(choose_backend(manifest, model_path, backend, device), manifest, model_path, device)


def numpy_dtype(spec: TensorSpec, where: str) -> type[np.floating[Any]]:
    """The numpy type of a manifest tensor (float32 or float16)."""
    try:
        return DTYPES[spec.dtype]
    except KeyError:
        raise ManifestError(
            f"{where} declares {spec.name!r} as {spec.dtype}; this runtime feeds float32 or float16."
        ) from None


def concrete_shape(spec: TensorSpec, batch: int) -> tuple[int, ...]:
    """A manifest shape with its "batch" dimension replaced by `batch`."""
    return tuple(batch if isinstance(d, str) else int(d) for d in spec.shape)


def check_graph_io(
    manifest: Manifest,
    inputs: Sequence[tuple[str, Sequence[int | str | None], str]],
    outputs: Sequence[tuple[str, Sequence[int | str | None], str]],
    where: str,
) -> None:
    """Check a loaded graph's (name, shape, dtype) inputs and outputs against the manifest.

    Dynamic dimensions may be given as a string, None or -1; they must be the manifest's batch dimension.
    dtype is a numpy-style name ("float32", "float16").
    """
    for role, declared, actual in (("input", manifest.inputs, inputs), ("output", manifest.outputs, outputs)):
        declared_names = [spec.name for spec in declared]
        actual_names = [name for name, _, _ in actual]
        if sorted(declared_names) != sorted(actual_names):
            raise ManifestError(
                f"{where} has {role}s {actual_names} but its manifest declares {declared_names}; "
                "re-export the artifact."
            )
        specs = {spec.name: spec for spec in declared}
        for name, shape, dtype in actual:
            spec = specs[name]
            if not _shape_fits(spec.shape, shape):
                raise ManifestError(
                    f"{where} has {role} {name!r} of shape {list(shape)} but its manifest declares "
                    f"{spec.shape}; re-export the artifact."
                )
            if dtype != spec.dtype:
                raise ManifestError(
                    f"{where} has {role} {name!r} of type {dtype} but its manifest declares {spec.dtype}; "
                    "re-export the artifact."
                )


def _shape_fits(declared: Sequence[int | str], actual: Sequence[int | str | None]) -> bool:
    if len(declared) != len(actual):
        return False
    for want, got in zip(declared, actual, strict=True):
        dynamic = got is None or isinstance(got, str) or got == -1
        if isinstance(want, str) != dynamic or (not dynamic and int(want) != got):  # type: ignore[arg-type]
            return False
    return True


def check_manifest_shapes(manifest: Manifest, where: str) -> None:
    """The manifest's graph I/O must agree with its own image size, frames and motion size."""
    s, t, d = manifest.image_size, manifest.frames, manifest.motion_dim
    expected = {
        "generator": (
            {"image": ["batch", 3, s, s], "motion": ["batch", d]},
            {"video": ["batch", 3, t, s, s], "flows": ["batch", 2, t, s // 2, s // 2]},
        ),
        "flow_encoder": ({"flows": ["batch", 2, t, s, s]}, {"motion": ["batch", d]}),
    }[manifest.kind]
    for declared, want in zip((manifest.inputs, manifest.outputs), expected, strict=True):
        got = {spec.name: list(spec.shape) for spec in declared}
        if declared is manifest.outputs and manifest.kind == "generator" and not manifest.has_flows:
            want = {"video": want["video"]}  # exported before flows were part of the artifact: still runs
        if got != want:
            raise ManifestError(
                f"{where} declares tensors {got} for a {manifest.kind} of {s}x{s}, {t} frames and motion "
                f"size {d} (expected {want}); re-export the artifact."
            )


def require_kind(manifest: Manifest, kind: str, where: str) -> None:
    if manifest.kind != kind:
        raise ArtifactError(
            f"{where} is a {manifest.kind.replace('_', ' ')} artifact, not a {kind.replace('_', ' ')}; "
            f"pass the {kind.replace('_', ' ')} folder (for example exports/NAME/onnx-fp32)."
        )
