"""Triton Inference Server model repositories, written from verified export artifacts.

`python -m export.triton` (export/triton/__main__.py) exports a checkpoint's artifacts first where they
are missing.

Writes one Triton model per servable artifact:
    REPO/NAME/config.pbtxt          onnxruntime_onnx: the fp16 ONNX generator (`onnx-fp16`)
    REPO/NAME/1/model.onnx          the model file, with its manifest.json beside it, verbatim
    REPO/NAME_trt/...               tensorrt_plan: the TensorRT engine (`trt-fp16`), where one can be built
    REPO/NAME_ofe/...               the flow encoder (`ofe-fp32`) for motion transfer, if there is one

Every config.pbtxt is generated from its artifact's manifest, never written by hand: I/O names, dims
(without the batch dimension) and data types; max_batch_size and dynamic batching (preferred sizes
OPT and MAX, a short queue delay) from the batch profile, which for an engine is its own build profile.
The manifest also travels inside the config (parameter `dtvnet_manifest`), so a client learns exactly
which model it talks to from the server (`runtime.backends.triton`). A version folder is also a plain
artifact folder: `runtime.Generator("models/dtvnet/1")` runs the served model locally.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import ExportError, ManifestError
from runtime.fsutil import atomic_dir, atomic_file, ensure_writable_dir, refuse_overwrite
from runtime.manifest import (
    FLOW_ENCODER_PARAMETER,
    MANIFEST_NAME,
    MANIFEST_PARAMETER,
    Manifest,
    TensorSpec,
    resolve_artifact,
    verify_integrity,
)

log = logging.getLogger(__name__)

CONFIG_FILE = "config.pbtxt"
DEFAULT_NAME = "dtvnet"
DEFAULT_QUEUE_DELAY_US = 2000  # short against one batch's compute, long enough to gather concurrent requests
PLATFORMS = {"onnx": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}
DATA_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}
INSTANCE_KINDS = ("gpu", "cpu")
ENGINE_SUFFIX, FLOW_ENCODER_SUFFIX = "_trt", "_ofe"
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.10-py3"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


# ---------------------------------------------------------------------------------------------
# config.pbtxt from a manifest
# ---------------------------------------------------------------------------------------------


class Enum(str):
    """A protobuf enum value (TYPE_FP32, KIND_GPU): written bare in text format, not quoted."""


@dataclass(frozen=True)
class Batching:
    """What Triton may batch: max_batch_size, the preferred batch sizes and the queue delay."""

    max_batch: int
    preferred: tuple[int, ...]
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US

    @classmethod
    def from_profile(
        cls, profile: Mapping[str, int], queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    ) -> Batching:
        """From a batch profile {"min", "opt", "max"}: the engine is fastest per clip at OPT, and MAX
        gives the best throughput, so Triton runs a batch at once when it can form either."""
        return cls(
            int(profile["max"]), tuple(sorted({int(profile["opt"]), int(profile["max"])})), queue_delay_us
        )


def tensor_config(spec: TensorSpec, where: str) -> dict[str, Any]:
    """One config input/output: name, data type and dims without the leading "batch" dimension."""
    if not spec.shape or spec.shape[0] != "batch" or any(isinstance(d, str) for d in spec.shape[1:]):
        raise ManifestError(
            f"{where} declares {spec.name!r} with shape {spec.shape}; Triton batching needs the dynamic "
            "'batch' dimension first and fixed sizes after it, so re-export the artifact."
        )
    if spec.dtype not in DATA_TYPES:
        raise ManifestError(f"{where} declares {spec.name!r} as {spec.dtype}, which has no Triton data type.")
    return {
        "name": spec.name,
        "data_type": Enum(DATA_TYPES[spec.dtype]),
        "dims": [int(d) for d in spec.shape[1:]],
    }


def model_config(
    name: str,
    manifest: Manifest,
    batching: Batching,
    *,
    instances: int = 1,
    kind: str = "gpu",
    flow_encoder: str | None = None,
    where: str = "the artifact",
) -> dict[str, Any]:
    """The model's Triton configuration, as a dict in the field order of Triton's ModelConfig."""
    if manifest.engine not in PLATFORMS:
        raise ManifestError(
            f"{where} is a {manifest.engine} artifact, which Triton does not serve; use ONNX."
        )
    if manifest.engine == "tensorrt" and kind != "gpu":
        raise ExportError(
            f"{where} is a TensorRT engine, which runs only on a GPU; drop --cpu or --no-engine."
        )
    parameters = [{"key": MANIFEST_PARAMETER, "value": {"string_value": compact_json(manifest)}}]
    if flow_encoder:
        parameters.append({"key": FLOW_ENCODER_PARAMETER, "value": {"string_value": flow_encoder}})
    return {
        "name": name,
        "platform": PLATFORMS[manifest.engine],
        "max_batch_size": batching.max_batch,
        "default_model_filename": manifest.model_file,
        "input": [tensor_config(spec, where) for spec in manifest.inputs],
        "output": [tensor_config(spec, where) for spec in manifest.outputs],
        "dynamic_batching": {
            "preferred_batch_size": list(batching.preferred),
            "max_queue_delay_microseconds": batching.queue_delay_us,
        },
        "instance_group": [{"count": instances, "kind": Enum(f"KIND_{kind.upper()}")}],
        "parameters": parameters,
    }


def compact_json(manifest: Manifest) -> str:
    """The manifest as one line of JSON (a config parameter value)."""
    return json.dumps(json.loads(manifest.to_json()), separators=(",", ":"), ensure_ascii=False)


def to_pbtxt(message: Mapping[str, Any], indent: int = 0) -> str:
    """Protobuf text format of a dict: nested dicts are messages, lists of dicts repeated messages,
    `Enum` values bare, other strings quoted."""
    pad = "  " * indent
    lines = []
    for key, value in message.items():
        if isinstance(value, Mapping):
            lines += [f"{pad}{key} {{", to_pbtxt(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            blocks = [f"{pad}  {{\n{to_pbtxt(v, indent + 2)}\n{pad}  }}" for v in value]
            lines += [f"{pad}{key} [", ",\n".join(blocks), f"{pad}]"]
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [{', '.join(_scalar(v) for v in value)}]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "\n".join(lines)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum | int | float):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a protobuf text value")


# ---------------------------------------------------------------------------------------------
# The repository
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    """One model of the repository: its name, the artifact it serves and how Triton batches it."""

    name: str
    artifact: Path
    manifest: Manifest
    batching: Batching
    kind: str
    flow_encoder: str | None = None


@dataclass
class TritonResult:
    """The models written, and why the TensorRT model is missing (None if written or not asked)."""

    models: list[ServedModel] = field(default_factory=list)
    engine_skipped: str | None = None


def check_name(name: str) -> str:
    """A model name Triton and a URL path both take as it is."""
    if not _NAME.fullmatch(name):
        raise ExportError(
            f"Model name {name!r} must be letters, digits, '_', '.' or '-'; choose another --name."
        )
    return name


def plan_models(
    exports: Path,
    name: str = DEFAULT_NAME,
    batching: Batching | None = None,
    *,
    kind: str = "gpu",
    engine: bool = True,
) -> list[ServedModel]:
    """The models to serve from an export folder: `onnx-fp16` as NAME (required); `trt-fp16` as NAME_trt
    (if `engine`, and it exists); `ofe-fp32` as NAME_ofe (if it exists). All from one checkpoint."""
    from export.fp16 import FP16_DIR
    from export.trt import engine_dir
    from runtime.manifest import FLOW_ENCODER_DIR

    check_name(name)
    if kind not in INSTANCE_KINDS:
        raise ValueError(f"kind must be one of {INSTANCE_KINDS}, not {kind!r}")
    batching = batching or Batching.from_profile({"min": 1, "opt": 4, "max": 8})
    generator, _ = resolve_artifact(exports / FP16_DIR)
    ofe = exports / FLOW_ENCODER_DIR
    flow_encoder = name + FLOW_ENCODER_SUFFIX if (ofe / MANIFEST_NAME).is_file() else None
    models = [ServedModel(name, exports / FP16_DIR, generator, batching, kind, flow_encoder)]
    engine_folder = exports / engine_dir("fp16")
    if engine and (engine_folder / MANIFEST_NAME).is_file():
        manifest, _ = resolve_artifact(engine_folder)
        profile = manifest.batch or {}
        if profile.get("min", 1) != 1:
            raise ExportError(
                f"The engine {str(engine_folder)!r} takes batches from {profile['min']}, but Triton's "
                "dynamic batcher also sends smaller ones; rebuild it with --batch 1,OPT,MAX."
            )
        engine_batching = Batching.from_profile(profile, batching.queue_delay_us) if profile else batching
        models.append(
            ServedModel(name + ENGINE_SUFFIX, engine_folder, manifest, engine_batching, "gpu", flow_encoder)
        )
    if flow_encoder:
        models.append(ServedModel(flow_encoder, ofe, resolve_artifact(ofe)[0], batching, kind))
    for model in models[1:]:
        if model.manifest.source_sha256 != generator.source_sha256:
            raise ExportError(
                f"{str(model.artifact)!r} was exported from another checkpoint than "
                f"{str(exports / FP16_DIR)!r}; re-export the folder with `dtvnet export CHECKPOINT --force`."
            )
    return models


def write_model(
    repo: Path, model: ServedModel, *, version: int = 1, instances: int = 1, force: bool = False
) -> Path:
    """Write REPO/NAME/VERSION/ (model file + manifest, checked against each other) and
    REPO/NAME/config.pbtxt; the version folder lands atomically, and other versions stay."""
    manifest, model_path = resolve_artifact(model.artifact)
    verify_integrity(manifest, model_path)
    folder = repo / model.name
    version_dir = folder / str(version)
    refuse_overwrite(version_dir, force, "Triton model version")
    ensure_writable_dir(folder)
    config = model_config(
        model.name,
        manifest,
        model.batching,
        instances=instances,
        kind=model.kind,
        flow_encoder=model.flow_encoder,
        where=repr(str(model.artifact)),
    )
    with atomic_dir(version_dir) as tmp:
        shutil.copyfile(model_path, tmp / manifest.model_file)
        shutil.copyfile(model.artifact / MANIFEST_NAME, tmp / MANIFEST_NAME)
    with atomic_file(folder / CONFIG_FILE) as tmp_config:
        tmp_config.write_text(to_pbtxt(config) + "\n")
    return folder


def write_repository(
    exports: str | Path,
    repo: str | Path,
    *,
    name: str = DEFAULT_NAME,
    batching: Batching | None = None,
    version: int = 1,
    instances: int = 1,
    kind: str = "gpu",
    engine: bool = True,
    force: bool = False,
) -> list[ServedModel]:
    """Serve the artifacts of an export folder from the Triton model repository `repo`; returns the models
    written. Refuses to overwrite an existing version without `force`, before writing anything."""
    if version < 1 or instances < 1:
        raise ExportError(f"--version ({version}) and --instances ({instances}) must be at least 1.")
    models = plan_models(Path(exports), name, batching, kind=kind, engine=engine)
    for model in models:
        refuse_overwrite(Path(repo) / model.name / str(version), force, "Triton model version")
    for model in models:
        write_model(Path(repo), model, version=version, instances=instances, force=force)
    return models


def docker_command(repo: str | Path) -> str:
    """The `docker run` line that serves a repository with Triton (HTTP 8000, gRPC 8001, metrics 8002)."""
    return (
        f"docker run --rm --gpus all -p 8000:8000 -p 8001:8001 -p 8002:8002 "
        f"-v {Path(repo).resolve()}:/models {TRITON_IMAGE} tritonserver --model-repository=/models"
    )


def describe(repo: str | Path, model: ServedModel) -> str:
    """'wrote REPO/NAME (platform, precision, batching)' for one model."""
    b = model.batching
    return (
        f"wrote {Path(repo) / model.name}  ({PLATFORMS[model.manifest.engine]}, {model.manifest.precision} "
        f"{model.manifest.kind.replace('_', ' ')}, max batch {b.max_batch}, preferred {list(b.preferred)}, "
        f"{model.kind.upper()})"
    )
