"""OpenVINO backend: .onnx artifacts (fp32, int8) on OpenVINO's CPU runtime. Torch-free.

OpenVINO reads the ONNX file itself and compiles it with oneDNN kernels for this CPU: fused
convolutions, int8 (VNNI) kernels for the QDQ convolutions of an int8 artifact, and, on CPUs with
bfloat16 instructions, bfloat16 arithmetic where an artifact says its float parts may run in bf16.

Numerics follow the manifest, so that what runs is what was verified: an artifact runs in float32
unless its manifest's `extra.openvino.inference_precision` says otherwise (the int8 export records
"bf16" and checks its parity that way). On a CPU without bfloat16 support OpenVINO computes in float32.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from export.manifest import Manifest
from runtime.backends import check_graph_io, numpy_dtype, parse_device
from runtime.errors import ArtifactError, BackendUnavailableError

CPU = "CPU"
PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16"}
OV_TYPES = {"f32": "float32", "f16": "float16"}


def inference_precision(manifest: Manifest) -> str:
    """OpenVINO's inference precision hint for an artifact: its manifest's choice, else f32."""
    asked = str(manifest.extra.get("openvino", {}).get("inference_precision", "f32"))
    if asked not in PRECISIONS:
        raise ArtifactError(
            f"The manifest asks OpenVINO for inference precision {asked!r}; this runtime knows "
            f"{', '.join(sorted(PRECISIONS))}: re-export the artifact."
        )
    return PRECISIONS[asked]


def cpu_threads() -> int:
    """Threads for one inference: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def compile_model(
    model: str | Path | bytes, precision: str = "f32", threads: int | None = None
) -> ov.CompiledModel:
    """Compile an ONNX model (path or serialized bytes) for the CPU: one stream over `threads` cores,
    arithmetic in `precision` ("f32" or "bf16") outside the int8 layers."""
    core = ov.Core()
    source = core.read_model(model, b"") if isinstance(model, bytes) else core.read_model(str(model))
    config = {
        "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads or cpu_threads(),
    }
    return core.compile_model(source, CPU, config)


def cpu_name() -> str:
    """The CPU as OpenVINO names it."""
    return str(ov.Core().get_property(CPU, "FULL_DEVICE_NAME"))


class OpenVinoBackend:
    """One compiled model and infer request; outputs are copied, so they outlive the next call."""

    name = "openvino"
    max_batch: int | None = None

    def __init__(self, manifest: Manifest, model_path: Path, device: str | None = None) -> None:
        where = repr(str(model_path))
        kind, _ = parse_device(device)
        if kind not in ("auto", "cpu"):
            raise BackendUnavailableError(
                f"The openvino backend runs on the CPU, not on {device!r}; use device='cpu' or another "
                "backend."
            )
        if model_path.suffix != ".onnx":
            raise BackendUnavailableError(
                f"The openvino backend runs .onnx artifacts, not {where}; use backend='auto'."
            )
        self.precision = inference_precision(manifest)
        try:
            self.compiled = compile_model(model_path, self.precision)
        except RuntimeError as exc:  # OpenVINO reports unreadable models and unsupported ops this way
            raise ArtifactError(f"OpenVINO cannot load {where} ({exc}); re-export it.") from None
        check_graph_io(manifest, self._io(self.compiled.inputs), self._io(self.compiled.outputs), where)
        self.request = self.compiled.create_infer_request()
        self.input_types = {spec.name: numpy_dtype(spec, where) for spec in manifest.inputs}
        self.output_names = [spec.name for spec in manifest.outputs]
        used = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.device = f"OpenVINO CPU ({cpu_name()}, {used})"

    @staticmethod
    def _io(ports: Any) -> list[tuple[str, list[int | str | None], str]]:
        described = []
        for port in ports:
            shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
            kind = OV_TYPES.get(
                port.get_element_type().get_type_name(), port.get_element_type().get_type_name()
            )
            described.append((port.get_any_name(), shape, kind))
        return described

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        typed = {
            name: np.ascontiguousarray(feeds[name], dtype=kind) for name, kind in self.input_types.items()
        }
        results = self.request.infer(typed)
        return {name: np.array(results[name], dtype=np.float32) for name in self.output_names}

    def close(self) -> None:
        self.__dict__.pop("request", None)
        self.__dict__.pop("compiled", None)


def load(manifest: Manifest, model_path: Path, device: str | None) -> OpenVinoBackend:
    return OpenVinoBackend(manifest, model_path, device)
