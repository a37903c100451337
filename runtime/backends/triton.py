"""Triton backend: a generator (or flow encoder) served by Triton Inference Server, over KServe v2 HTTP.

    Generator("http://127.0.0.1:8000/v2/models/dtvnet")   # a URL picks this backend

Manifest-driven like every backend: `export.triton` puts the served artifact's manifest into the
model's config (parameter `dtvnet_manifest`), so the runtime feeds and checks a served model exactly
as a local one: I/O names, shapes and dtypes (checked against the server's model metadata), image
size, frames and motion size. The batch limits are the server's (max_batch_size and the largest
preferred batch of its dynamic batcher). Tensors travel in Triton's binary tensor extension (raw
bytes after a JSON header), never as JSON numbers. The model file itself stays on the server, so
its sha256 is the manifest's word, not checked here.

tritonclient's HTTP client runs on gevent, whose connections belong to the thread that opened them,
and the runtime calls engines from its worker threads: every thread gets its own client. Torch-free.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import tritonclient.http as httpclient  # type: ignore[import-untyped]
from tritonclient.utils import (  # type: ignore[import-untyped]
    InferenceServerException,
    np_to_triton_dtype,
    triton_to_np_dtype,
)

from runtime.backends import check_graph_io, check_manifest_shapes, numpy_dtype, require_kind
from runtime.errors import ArtifactError, BackendUnavailableError, ManifestError, MotionError
from runtime.manifest import FLOW_ENCODER_PARAMETER, MANIFEST_PARAMETER, Manifest

URL = re.compile(
    r"(?P<scheme>https?)://(?P<address>[^/?#]+(?:/[^?#]*?)??)/(?:v2/)?models/(?P<model>[^/?#]+)"
    r"(?:/versions/(?P<version>\d+))?/?"
)
NETWORK_TIMEOUT_S = 300.0  # one batch of large clips on a busy server can take a while


@dataclass(frozen=True)
class ServerModel:
    """A model on a server: http[s]://ADDRESS/v2/models/MODEL[/versions/VERSION]."""

    ssl: bool
    address: str  # host:port, and a path prefix if the server sits behind one
    model: str
    version: str = ""  # "": the server's version policy picks

    @property
    def url(self) -> str:
        version = f"/versions/{self.version}" if self.version else ""
        return f"{'https' if self.ssl else 'http'}://{self.address}/v2/models/{self.model}{version}"


def parse_url(url: str) -> ServerModel:
    """Split a model URL; ArtifactError with the expected form if it is not one."""
    match = URL.fullmatch(url.strip())
    if match is None:
        raise ArtifactError(
            f"{url!r} is not a Triton model URL; write it as http://HOST:PORT/v2/models/NAME "
            "(optionally ending in /versions/N)."
        )
    return ServerModel(match["scheme"] == "https", match["address"], match["model"], match["version"] or "")


def served_manifest(config: Mapping[str, Any], where: str) -> Manifest:
    """The artifact manifest a model config carries (written by export.triton)."""
    text = (config.get("parameters") or {}).get(MANIFEST_PARAMETER, {}).get("string_value")
    if not text:
        raise ManifestError(
            f"Model {where} has no {MANIFEST_PARAMETER} parameter in its Triton config, so its tensors are "
            "unknown; serve a repository written by `python -m export.triton CHECKPOINT --repo REPO`."
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"Model {where} has a malformed {MANIFEST_PARAMETER} ({exc}); re-export it."
        ) from None
    return Manifest.from_dict(data, where=f"the manifest of model {where}")


def metadata_io(tensors: list[dict[str, Any]]) -> list[tuple[str, list[int | str | None], str]]:
    """KServe metadata tensors -> (name, shape with -1 for dynamic, numpy dtype name)."""
    return [
        (t["name"], [int(d) for d in t["shape"]], np.dtype(triton_to_np_dtype(t["datatype"])).name)
        for t in tensors
    ]


class TritonBackend:
    """One model on a Triton server; `run` sends one request per call (the server batches across callers)."""

    name = "triton"

    def __init__(self, server: ServerModel, kind: str) -> None:
        self.server = server
        self.url = server.url
        self.where = repr(self.url)
        self._local = threading.local()
        self._clients: list[tuple[threading.Thread, httpclient.InferenceServerClient]] = []
        self._lock = threading.Lock()
        metadata, config = self._ask(self._describe)
        manifest = served_manifest(config, self.where)
        require_kind(manifest, kind, self.where)
        check_manifest_shapes(manifest, self.where)
        check_graph_io(
            manifest, metadata_io(metadata["inputs"]), metadata_io(metadata["outputs"]), self.where
        )
        self.max_batch: int | None = int(config.get("max_batch_size") or 0) or None
        preferred = (config.get("dynamic_batching") or {}).get("preferred_batch_size") or []
        batch = max([int(b) for b in preferred] or [self.max_batch or 1])
        # the manifest as served: the server's batch limits replace the artifact's own
        self.manifest = replace(manifest, batch={"min": 1, "opt": batch, "max": self.max_batch or batch})
        self.input_types = {spec.name: numpy_dtype(spec, self.where) for spec in manifest.inputs}
        self.flow_encoder = (
            (config.get("parameters") or {}).get(FLOW_ENCODER_PARAMETER, {}).get("string_value")
        )
        instances = ", ".join(
            f"{group.get('count', 1)} x {str(group.get('kind', 'KIND_AUTO')).removeprefix('KIND_')}"
            for group in config.get("instance_group") or []
        )
        self.device = (
            f"Triton {metadata.get('platform', '?')} at {server.url} ({instances or 'instances unknown'}; "
            f"model sha256 {manifest.model_sha256[:12]}...)"
        )

    # ------------------------------------------------------------------ requests

    def _client(self) -> httpclient.InferenceServerClient:
        """This thread's client; clients of threads that have ended are closed (each run has new workers)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpclient.InferenceServerClient(
                self.server.address, ssl=self.server.ssl, network_timeout=NETWORK_TIMEOUT_S
            )
            self._local.client = client
            with self._lock:
                ended = [c for thread, c in self._clients if not thread.is_alive()]
                self._clients = [(t, c) for t, c in self._clients if t.is_alive()]
                self._clients.append((threading.current_thread(), client))
            for old in ended:
                old.close()
        return client

    def _describe(self) -> tuple[dict[str, Any], dict[str, Any]]:
        client, model, version = self._client(), self.server.model, self.server.version
        if not client.is_model_ready(model, version):
            raise ArtifactError(
                f"The Triton server at {self.server.address} has no ready model {model!r}"
                f"{f' version {version}' if version else ''}; check the model name and the server's log."
            )
        return client.get_model_metadata(model, version), client.get_model_config(model, version)

    def _ask(self, call: Any, *args: Any) -> Any:
        """Run one exchange with the server, with its failures as one-sentence errors."""
        try:
            return call(*args)
        except InferenceServerException as exc:
            raise BackendUnavailableError(
                f"The Triton server refused a request for {self.where} ({exc.message()}); check the "
                "server's log."
            ) from None
        except OSError as exc:  # refused, reset, timed out, unknown host
            raise BackendUnavailableError(
                f"Cannot reach the Triton server of {self.where} ({exc.strerror or type(exc).__name__}); "
                "start it (README: Serving and large jobs) or fix the URL."
            ) from None

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = []
        for name, dtype in self.input_types.items():
            array = np.ascontiguousarray(feeds[name], dtype=dtype)
            tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        outputs = [
            httpclient.InferRequestedOutput(spec.name, binary_data=True) for spec in self.manifest.outputs
        ]

        def infer() -> Any:
            return self._client().infer(
                self.server.model, inputs, model_version=self.server.version, outputs=outputs
            )

        result = self._ask(infer)
        return {
            spec.name: np.asarray(result.as_numpy(spec.name), np.float32) for spec in self.manifest.outputs
        }

    # ------------------------------------------------------------------ companions, lifetime

    def companion(self, kind: str) -> TritonBackend:
        """The flow encoder served beside this generator (motion transfer), named in its config."""
        if kind != "flow_encoder" or not self.flow_encoder:
            raise MotionError(
                f"Model {self.where} has no flow encoder on its server, so it cannot transfer motion from a "
                "video; serve a checkpoint with a trained flow encoder, or pass a motion vector or seed."
            )
        return TritonBackend(replace(self.server, model=self.flow_encoder, version=""), kind)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for _, client in clients:
            client.close()


def connect(url: str, kind: str) -> TritonBackend:
    return TritonBackend(parse_url(url), kind)
