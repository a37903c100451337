"""ONNX Runtime backend: .onnx artifacts on the TensorRT, CUDA or CPU execution provider.

With no device given, the best available provider wins, in the order TensorRT, CUDA, CPU (the GPU
providers exist only with `onnxruntime-gpu`, which replaces the CPU `onnxruntime`). Torch-free.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from runtime.backends import check_graph_io, numpy_dtype, parse_device
from runtime.errors import ArtifactError, BackendUnavailableError, ManifestError
from runtime.fsutil import user_cache_dir
from runtime.manifest import Manifest, check_external_data

log = logging.getLogger(__name__)

TENSORRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}
WEIGHT_TYPES = {
    "fp16": {onnx.TensorProto.FLOAT16},
    "int8": {onnx.TensorProto.INT8, onnx.TensorProto.UINT8},
}

Provider = str | tuple[str, dict[str, Any]]


def choose_providers(
    available: list[str], device: str | None, precision: str = "fp32", cache_dir: Path | None = None
) -> list[Provider]:
    """Execution providers for `device`, best first, each with its options; CPU always last as fallback.

    None: every available one of TensorRT, CUDA, CPU. "cpu": CPU only. "cuda[:N]": CUDA then CPU.
    "tensorrt[:N]": TensorRT, CUDA, CPU. TensorRT EP engines are cached in `cache_dir` (built once).
    """
    kind, index = parse_device(device)
    wanted = {
        "auto": [TENSORRT_EP, CUDA_EP, CPU_EP],
        "cpu": [CPU_EP],
        "cuda": [CUDA_EP, CPU_EP],
        "tensorrt": [TENSORRT_EP, CUDA_EP, CPU_EP],
    }[kind]
    if kind != "auto" and wanted[0] not in available:
        raise BackendUnavailableError(
            f"ONNX Runtime has no {wanted[0]} here (available: {', '.join(available)}); on a machine "
            "with an NVIDIA GPU run `pip uninstall -y onnxruntime && pip install onnxruntime-gpu`, "
            "or use device='cpu'."
        )
    providers: list[Provider] = []
    for name in wanted:
        if name not in available:
            continue
        if name == TENSORRT_EP:
            options: dict[str, Any] = {"device_id": index, "trt_fp16_enable": precision == "fp16"}
            if cache_dir is not None:
                options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir)}
            providers.append((name, options))
        elif name == CUDA_EP:
            providers.append((name, {"device_id": index}))
        else:
            providers.append(name)
    return providers


def weight_precision(model: onnx.ModelProto) -> str:
    """fp16 or int8 if any initializer has that type, else fp32."""
    types = {init.data_type for init in model.graph.initializer}
    for precision, kinds in WEIGHT_TYPES.items():
        if types & kinds:
            return precision
    return "fp32"


class OnnxRuntimeBackend:
    """One InferenceSession; `run` is thread-safe and releases the GIL while the graph runs."""

    name = "onnxruntime"

    def __init__(self, manifest: Manifest, model_path: Path, device: str | None = None) -> None:
        where = repr(str(model_path))
        try:
            model = onnx.load(str(model_path), load_external_data=False)
        except Exception as exc:  # protobuf raises DecodeError and friends
            raise ArtifactError(f"{where} is not a readable ONNX model ({exc}); re-export it.") from None
        check_external_data(model, model_path)  # the runtime reads those files: inside the artifact
        found = weight_precision(model)
        if found != manifest.precision:
            raise ManifestError(
                f"{where} holds {found} weights but its manifest says {manifest.precision}; re-export it."
            )
        del model
        providers = choose_providers(
            ort.get_available_providers(),
            device,
            manifest.precision,
            user_cache_dir() / "ort-tensorrt" / manifest.model_sha256[:16],
        )
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; provider fallbacks are reported below
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        except Exception as exc:  # onnxruntime's pybind errors share no useful base class
            raise ArtifactError(f"ONNX Runtime cannot load {where} ({exc}); re-export it.") from None
        self.device = self.session.get_providers()[0]
        if device is None and self.device == CPU_EP and len(providers) > 1:
            log.warning("GPU execution providers failed to start; running %s on the CPU", model_path.name)
        check_graph_io(
            manifest, self._io(self.session.get_inputs()), self._io(self.session.get_outputs()), where
        )
        self.input_types = {spec.name: numpy_dtype(spec, where) for spec in manifest.inputs}
        self.max_batch = manifest.batch.get("max") if manifest.batch else None

    @staticmethod
    def _io(args: list[Any]) -> list[tuple[str, list[int | str | None], str]]:
        return [(a.name, list(a.shape), ORT_TYPES.get(a.type, a.type)) for a in args]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        typed = {
            name: np.ascontiguousarray(feeds[name], dtype=kind) for name, kind in self.input_types.items()
        }
        names = [o.name for o in self.session.get_outputs()]
        outputs = self.session.run(names, typed)
        return {name: np.asarray(value, dtype=np.float32) for name, value in zip(names, outputs, strict=True)}

    def close(self) -> None:
        self.__dict__.pop("session", None)


def load(manifest: Manifest, model_path: Path, device: str | None) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(manifest, model_path, device)
