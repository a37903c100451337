"""TensorRT backend: a serialized engine (.plan / .engine) on one NVIDIA GPU, buffers through cuda-python.

Thin on purpose: it asks TensorRT and CUDA for facts and hands every decision (is the engine for
this TensorRT and GPU, what to bind, which shapes) to `tensorrt_checks`. Uses only the name-based
tensor API (`num_io_tensors`, `set_input_shape`, `set_tensor_address`, `execute_async_v3`) that
TensorRT 10 introduced and TensorRT 11 keeps. Torch-free.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

from runtime.backends.tensorrt_checks import (
    EngineTensor,
    LocalGPU,
    check_engine_compat,
    cuda_device_index,
    plan_bindings,
)
from runtime.errors import BackendUnavailableError, EngineMismatchError
from runtime.manifest import Manifest

INSTALL = "install TensorRT and cuda-python on a machine with an NVIDIA GPU (pip install 'dtvnet[gpu]')"


def require_tensorrt() -> str:
    """TensorRT's version; BackendUnavailableError if only the type stubs (or nothing) are installed."""
    if not hasattr(trt, "Runtime"):
        raise BackendUnavailableError(f"TensorRT is not installed here (only its type stubs); {INSTALL}.")
    return str(trt.__version__)


def import_cudart() -> Any:
    """cuda-python's runtime API: `cuda.bindings.runtime` (12.6+), else the older `cuda.cudart`."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise BackendUnavailableError(
        f"The TensorRT backend needs cuda-python, which is not installed; {INSTALL}."
    )


def cuda_check(cudart: Any, result: Any, what: str) -> Any:
    """Unpack a cuda-python (error, value...) tuple, raising on any error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise RuntimeError(f"CUDA call {what} failed: {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else tuple(values)


def local_gpu(cudart: Any, index: int) -> LocalGPU:
    """Name and compute capability of GPU `index`; BackendUnavailableError if there is none."""
    try:
        cuda_check(cudart, cudart.cudaSetDevice(index), "cudaSetDevice")
        props = cuda_check(cudart, cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    except RuntimeError as exc:
        raise BackendUnavailableError(f"No usable NVIDIA GPU cuda:{index} here ({exc}); {INSTALL}.") from None
    name = props.name.split(b"\0")[0].decode() if isinstance(props.name, bytes) else str(props.name)
    return LocalGPU(name=name, compute_capability=(int(props.major), int(props.minor)))


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))


class TensorRTBackend:
    """One engine, one execution context, one CUDA stream; device buffers grow to the largest batch seen."""

    name = "tensorrt"

    def __init__(self, manifest: Manifest, model_path: Path, device: str | None = None) -> None:
        index = cuda_device_index(device)
        version = require_tensorrt()
        self.cudart = import_cudart()
        gpu = local_gpu(self.cudart, index)
        check_engine_compat(manifest, model_path, version, gpu)  # before TensorRT reads a byte of it
        where = repr(str(model_path))
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        engine = self.runtime.deserialize_cuda_engine(model_path.read_bytes())
        if engine is None:
            raise EngineMismatchError(
                f"TensorRT {version} could not load the engine {where} (see its log above); rebuild it here "
                "with `python -m export.trt CHECKPOINT`."
            )
        self.engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.plan = plan_bindings(manifest, [self._describe(name) for name in names], where)
        self.context = engine.create_execution_context()
        self.stream = cuda_check(self.cudart, self.cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self.device = f"cuda:{index} ({gpu.name})"
        self.max_batch: int | None = self.plan.max_batch

    def _describe(self, name: str) -> EngineTensor:
        engine = self.engine
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        profile = None
        if is_input:
            low, opt, high = (_dims(d) for d in engine.get_tensor_profile_shape(name, 0))
            profile = (low, opt, high)
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
        return EngineTensor(name, is_input, dtype, _dims(engine.get_tensor_shape(name)), profile)

    def _device_buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                cuda_check(self.cudart, self.cudart.cudaFree(pointer), "cudaFree")
            pointer = int(cuda_check(self.cudart, self.cudart.cudaMalloc(nbytes), "cudaMalloc"))
            self.buffers[name] = (pointer, nbytes)
        return pointer

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, plan, stream = self.cudart, self.plan, self.stream
        batch = int(next(iter(feeds.values())).shape[0])
        shapes = plan.shapes(batch)
        host: dict[str, np.ndarray] = {}
        for name in plan.inputs:
            host[name] = np.ascontiguousarray(feeds[name], dtype=plan.dtypes[name])
            if not self.context.set_input_shape(name, shapes[name]):
                raise RuntimeError(f"TensorRT rejected shape {shapes[name]} for input {name!r}")
        for name in plan.outputs:
            host[name] = np.empty(shapes[name], dtype=plan.dtypes[name])
        for name, array in host.items():
            pointer = self._device_buffer(name, array.nbytes)
            if not self.context.set_tensor_address(name, pointer):
                raise RuntimeError(f"TensorRT rejected the buffer of {name!r}")
        to_device = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        for name in plan.inputs:
            array = host[name]
            result = cudart.cudaMemcpyAsync(
                self.buffers[name][0], array.ctypes.data, array.nbytes, to_device, stream
            )
            cuda_check(cudart, result, "cudaMemcpyAsync")
        if not self.context.execute_async_v3(int(stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see its log above)")
        to_host = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in plan.outputs:
            array = host[name]
            result = cudart.cudaMemcpyAsync(
                array.ctypes.data, self.buffers[name][0], array.nbytes, to_host, stream
            )
            cuda_check(cudart, result, "cudaMemcpyAsync")
        cuda_check(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return {name: host[name].astype(np.float32, copy=False) for name in plan.outputs}

    def close(self) -> None:
        for pointer, _ in self.buffers.values():
            self.cudart.cudaFree(pointer)
        self.buffers.clear()
        if getattr(self, "stream", None) is not None:
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None
        self.__dict__.pop("context", None)
        self.__dict__.pop("engine", None)


def load(manifest: Manifest, model_path: Path, device: str | None) -> TensorRTBackend:
    return TensorRTBackend(manifest, model_path, device)
