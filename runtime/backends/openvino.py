"""OpenVINO backend: .onnx artifacts (fp32, int8) on OpenVINO's CPU runtime. Torch-free.

OpenVINO reads the ONNX file itself and compiles it with oneDNN kernels for this CPU: fused
convolutions, int8 (VNNI) kernels for the QDQ convolutions of an int8 artifact, and, on CPUs with
bfloat16 instructions, bfloat16 arithmetic where an artifact says its float parts may run in bf16.

Numerics follow the manifest, so that what runs is what was verified: an artifact runs in float32
unless its manifest's `extra.openvino.inference_precision` says otherwise (the int8 export records
"bf16" and checks its parity that way). On a CPU without bfloat16 support OpenVINO computes in float32.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from runtime.backends import check_graph_io, concrete_shape, numpy_dtype, parse_device
from runtime.backends.parallel_streams import BusyClock
from runtime.errors import ArtifactError, BackendUnavailableError
from runtime.manifest import Manifest

CPU = "CPU"
PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16"}
OV_TYPES = {"f32": "float32", "f16": "float16"}
REQUESTS_PER_STREAM = 2  # run_each: one waits in each stream's queue, so no stream waits for Python


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


@functools.cache
def core() -> ov.Core:
    """One OpenVINO Core per process (it holds the plugins and their caches)."""
    return ov.Core()


def compile_model(
    model: str | Path | bytes | ov.Model,
    precision: str = "f32",
    threads: int | None = None,
    streams: int = 1,
    properties: Mapping[str, Any] | None = None,
) -> ov.CompiledModel:
    """Compile an ONNX model (path, serialized bytes or read model) for the CPU: `streams` independent
    streams sharing `threads` cores, arithmetic in `precision` ("f32" or "bf16") outside int8 layers;
    `properties` adds OpenVINO properties (PERF_COUNT for the profiler)."""
    if isinstance(model, bytes):
        model = core().read_model(model, b"")
    elif not isinstance(model, ov.Model):
        model = core().read_model(str(model))
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
        "INFERENCE_NUM_THREADS": threads or cpu_threads(),
        "NUM_STREAMS": streams,
    }
    if streams == 1:
        config["PERFORMANCE_HINT"] = "LATENCY"
    config.update(properties or {})
    return core().compile_model(model, CPU, config)


def bf16_supported() -> bool:
    """Whether this CPU has bfloat16 arithmetic for OpenVINO (avx512_bf16 or AMX); without it a "bf16"
    hint computes in float32."""
    return "BF16" in core().get_property(CPU, "OPTIMIZATION_CAPABILITIES")


def cpu_name() -> str:
    """The CPU as OpenVINO names it."""
    return str(core().get_property(CPU, "FULL_DEVICE_NAME"))


class OpenVinoBackend:
    """A compiled model per thread layout; outputs are copied, so they outlive the next call.

    One inference of one clip uses every core (one stream, `cpu_threads()` threads): the latency path
    of `stream`. A batch of at least as many clips as cores goes clip by clip to one single-threaded
    stream per core, each taking the next clip when it is free: no core waits for another at the end
    of each layer, and a core taken by other work (writing the video, another process) just does fewer
    of the clips. `run_each` keeps those streams busy across a whole run instead of batch by batch.
    """

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
        cores = cpu_threads()
        try:
            model = core().read_model(str(model_path))
            self.compiled = compile_model(model, self.precision, cores)
            parallel = compile_model(model, self.precision, cores, streams=cores) if cores > 1 else None
        except RuntimeError as exc:  # OpenVINO reports unreadable models and unsupported ops this way
            raise ArtifactError(f"OpenVINO cannot load {where} ({exc}); re-export it.") from None
        check_graph_io(manifest, self._io(self.compiled.inputs), self._io(self.compiled.outputs), where)
        self.request = self.compiled.create_infer_request()
        self.parallel = parallel
        self.streams = cores if parallel else 0  # single-threaded streams for batches and run_each
        self.queue = ov.AsyncInferQueue(parallel, cores) if parallel else None
        self.busy = BusyClock()  # engine time of run_each, whose requests overlap
        self.input_types = {spec.name: numpy_dtype(spec, where) for spec in manifest.inputs}
        self.output_names = [spec.name for spec in manifest.outputs]
        self.outputs = manifest.outputs
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

    def _typed(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        types = self.input_types
        return {name: np.ascontiguousarray(feeds[name], dtype=kind) for name, kind in types.items()}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        typed = self._typed(feeds)
        batch = len(next(iter(typed.values())))
        if self.queue is None or batch < len(self.queue):
            results = self.request.infer(typed)
            return {name: np.array(results[name], dtype=np.float32) for name in self.output_names}
        outputs = {spec.name: np.empty(concrete_shape(spec, batch), np.float32) for spec in self.outputs}

        def store(request: ov.InferRequest, index: int) -> None:
            for name, out in outputs.items():
                out[index] = request.get_tensor(name).data[0]

        self.queue.set_callback(store)
        for index in range(batch):  # one clip per request: an idle stream takes the next clip
            self.queue.start_async({name: array[index : index + 1] for name, array in typed.items()}, index)
        self.queue.wait_all()
        return outputs

    def run_each(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        """One request per item of `feeds` (batch 1 each), a request in flight on every stream at once,
        outputs yielded in order as they finish.

        A batched `run` ends when its slowest clip does, so whenever other work slows one stream (the
        video being written, the next photo being decoded) the other stream idles at the end of every
        batch. Here a free stream always takes the next clip: work beside the engine costs only its own
        CPU time. Each call has its own requests, so calls may overlap.
        """
        if self.parallel is None:
            raise RuntimeError("run_each needs at least two cores; use run")
        queue = ov.AsyncInferQueue(self.parallel, REQUESTS_PER_STREAM * self.streams)
        done: dict[int, dict[str, np.ndarray]] = {}
        lock = threading.Lock()

        def store(request: ov.InferRequest, index: int) -> None:
            out = {name: np.array(request.get_tensor(name).data, np.float32) for name in self.output_names}
            with lock:
                done[index] = out
            self.busy.leave()

        def finished(index: int) -> dict[str, np.ndarray] | None:
            with lock:
                return done.pop(index, None)

        queue.set_callback(store)
        submitted = taken = 0
        try:
            for feed in feeds:
                typed = self._typed(feed)
                self.busy.enter()
                try:
                    queue.start_async(typed, submitted)  # waits for a free stream
                except BaseException:
                    self.busy.leave()
                    raise
                submitted += 1
                while (out := finished(taken)) is not None:
                    taken += 1
                    yield out
            queue.wait_all()
            while taken < submitted:
                out = finished(taken)
                if out is None:
                    raise RuntimeError(f"OpenVINO finished without the output of request {taken}")
                taken += 1
                yield out
        finally:
            queue.wait_all()  # never leave a request running on buffers that are about to go

    def close(self) -> None:
        for name in ("request", "queue", "parallel", "compiled"):
            self.__dict__.pop(name, None)


def load(manifest: Manifest, model_path: Path, device: str | None) -> OpenVinoBackend:
    return OpenVinoBackend(manifest, model_path, device)
