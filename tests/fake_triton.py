"""A stand-in for Triton Inference Server in tests: the KServe v2 HTTP endpoints that tritonclient
uses, serving a model repository written by `export.triton` with ONNX Runtime, on 127.0.0.1 only.

It reads every config.pbtxt with Triton's own protobuf schema and refuses what Triton refuses in a
request: an unknown model or version, unknown or missing inputs, a wrong data type, dims that
differ after the batch dimension, a batch above max_batch_size. Tensors come and go in the binary
tensor extension or as JSON, as the client asks. What it is not: no dynamic batching across
requests (each request runs alone, and `batches` records its size), no TensorRT plans (a
tensorrt_plan model is listed but never ready, as on a server without a GPU), no gRPC, no metrics.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import np_to_triton_dtype, triton_to_np_dtype

ROUTE = re.compile(
    r"/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>\d+))?(?P<action>/ready|/config|/infer)?"
)
HEADER_LENGTH = "Inference-Header-Content-Length"


class RequestError(Exception):
    """Answered with HTTP 400 and {"error": message}, as Triton does."""


class Model:
    """One model folder: its parsed config and an ONNX Runtime session per version."""

    def __init__(self, folder: Path) -> None:
        self.config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        self.versions = sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
        self.sessions: dict[int, ort.InferenceSession] = {}
        if self.config.platform == "onnxruntime_onnx":
            for version in self.versions:
                path = folder / str(version) / (self.config.default_model_filename or "model.onnx")
                self.sessions[version] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def session(self, version: str | None) -> tuple[int, ort.InferenceSession]:
        chosen = int(version) if version else max(self.versions)
        if chosen not in self.sessions:
            raise RequestError(
                f"Request for unknown model: '{self.config.name}' version {chosen} is not ready"
            )
        return chosen, self.sessions[chosen]

    def metadata(self) -> dict[str, Any]:
        def tensors(items: Any) -> list[dict[str, Any]]:
            return [
                {
                    "name": t.name,
                    "datatype": model_config_pb2.DataType.Name(t.data_type).removeprefix("TYPE_"),
                    "shape": [-1, *t.dims] if self.config.max_batch_size else list(t.dims),
                }
                for t in items
            ]

        return {
            "name": self.config.name,
            "versions": [str(v) for v in self.versions],
            "platform": self.config.platform,
            "inputs": tensors(self.config.input),
            "outputs": tensors(self.config.output),
        }

    def infer(
        self, version: str | None, header: dict[str, Any], binary: bytes
    ) -> tuple[dict[str, Any], bytes]:
        chosen, session = self.session(version)
        declared = {t.name: t for t in self.config.input}
        given = {item["name"]: item for item in header.get("inputs", [])}
        if set(given) != set(declared):
            raise RequestError(
                f"expected inputs {sorted(declared)} for model '{self.config.name}', got {sorted(given)}"
            )
        feeds, offset = {}, 0
        for item in header["inputs"]:
            spec = declared[item["name"]]
            want = model_config_pb2.DataType.Name(spec.data_type).removeprefix("TYPE_")
            if item["datatype"] != want:
                raise RequestError(
                    f"inference input '{item['name']}' data-type is '{item['datatype']}', but model "
                    f"expects '{want}'"
                )
            shape = [int(d) for d in item["shape"]]
            name, dims = self.config.name, ",".join(map(str, spec.dims))
            if shape[1:] != list(spec.dims):
                raise RequestError(
                    f"unexpected shape for input '{item['name']}' for model '{name}'. Expected [-1,{dims}], "
                    f"got {shape}"
                )
            if shape[0] > self.config.max_batch_size:
                raise RequestError(
                    f"inference request batch-size must be <= {self.config.max_batch_size} for '{name}'"
                )
            dtype = triton_to_np_dtype(item["datatype"])
            size = (item.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                array = np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape)
                offset += size
            else:
                array = np.asarray(item["data"], dtype=dtype).reshape(shape)
            feeds[item["name"]] = array
        batches = {array.shape[0] for array in feeds.values()}
        if len(batches) != 1:
            raise RequestError(f"inputs of one request must share a batch size, got {sorted(batches)}")
        requested = {o["name"]: o for o in header.get("outputs", [])} or {
            o.name: {} for o in self.config.output
        }
        results = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
        outputs, blobs = [], []
        for name, options in requested.items():
            array = np.ascontiguousarray(results[name])
            entry: dict[str, Any] = {
                "name": name,
                "datatype": np_to_triton_dtype(array.dtype),
                "shape": list(array.shape),
            }
            if (options.get("parameters") or {}).get("binary_data", False):
                blobs.append(array.tobytes())
                entry["parameters"] = {"binary_data_size": len(blobs[-1])}
            else:
                entry["data"] = array.ravel().tolist()
            outputs.append(entry)
        response = {"model_name": self.config.name, "model_version": str(chosen), "outputs": outputs}
        if "id" in header:
            response["id"] = header["id"]
        return response, b"".join(blobs)


class FakeTriton:
    """`with FakeTriton(repo) as server:` serves every model folder of `repo` on 127.0.0.1 (a free port)."""

    def __init__(self, repo: Path) -> None:
        self.models = {
            p.name: Model(p) for p in sorted(Path(repo).iterdir()) if (p / "config.pbtxt").is_file()
        }
        self.batches: list[tuple[str, int]] = []  # (model, batch size) of every inference request
        self.binary: list[bool] = []  # whether each inference request sent its tensors as raw bytes
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def url(self, model: str) -> str:
        return f"http://{self.address}/v2/models/{model}"

    def __enter__(self) -> FakeTriton:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def model(self, name: str) -> Model:
        if name not in self.models:
            raise RequestError(f"Request for unknown model: '{name}' is not found")
        return self.models[name]


def _handler(server: FakeTriton) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as tritonclient's connection pool expects

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def send(self, status: int, body: dict[str, Any] | None = None, binary: bytes = b"") -> None:
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if binary:
                self.send_header(HEADER_LENGTH, str(len(payload)))
                self.send_header("Content-Type", "application/octet-stream")
            else:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload) + len(binary)))
            self.end_headers()
            self.wfile.write(payload + binary)

        def route(self) -> tuple[Model, str | None, str]:
            match = ROUTE.fullmatch(self.path.split("?")[0])
            if match is None:
                raise RequestError(f"Not Found: {self.path}")
            return server.model(match["model"]), match["version"], match["action"] or ""

        def do_GET(self) -> None:
            try:
                if self.path.startswith("/v2/health/"):
                    return self.send(200)
                model, version, action = self.route()
                if action == "/ready":
                    model.session(version)
                    return self.send(200)
                if action == "/config":
                    return self.send(
                        200, json_format.MessageToDict(model.config, preserving_proto_field_name=True)
                    )
                return self.send(200, model.metadata())
            except RequestError as exc:
                self.send(400, {"error": str(exc)})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                model, version, action = self.route()
                if action != "/infer":
                    raise RequestError(f"Not Found: {self.path}")
                json_length = int(self.headers.get(HEADER_LENGTH, len(body)))
                server.binary.append(HEADER_LENGTH in self.headers)
                header = json.loads(body[:json_length])
                response, binary = model.infer(version, header, body[json_length:])
                server.batches.append((model.config.name, response["outputs"][0]["shape"][0]))
                self.send(200, response, binary)
            except RequestError as exc:
                self.send(400, {"error": str(exc)})

    return Handler
