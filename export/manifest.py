"""The artifact contract: a model file plus `manifest.json` in one folder.

Torch-free: the runtime, the C++ host (which reads the same JSON) and Triton export read it.
An artifact folder holds exactly one model file (`model.onnx`, `model.plan`, ...) and its manifest;
`resolve_artifact` accepts the folder, the manifest or the model file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import IntegrityError, ManifestError
from runtime.fsutil import atomic_file, sha256_file

MANIFEST_NAME = "manifest.json"
GENERATOR_DIR = "onnx-fp32"  # the float32 ONNX artifacts every other export derives from
FLOW_ENCODER_DIR = "ofe-fp32"
FORMAT = "dtvnet-artifact"
FORMAT_VERSION = 1
KINDS = ("generator", "flow_encoder")
ENGINES = ("onnx", "tensorrt", "torch", "openvino", "aoti")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class TensorSpec:
    """One graph input or output. `shape` uses the string "batch" for the dynamic dimension."""

    name: str
    shape: list[int | str]
    dtype: str
    value_range: list[float] | None = None


@dataclass
class Manifest:
    """Everything a host needs to check and feed an artifact without opening the model file."""

    kind: str  # "generator" or "flow_encoder"
    engine: str  # "onnx", "tensorrt", "torch", "openvino", "aoti"
    precision: str  # "fp32", "fp16", "int8"
    model_file: str  # file name inside the artifact folder
    model_sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    image_size: int
    frames: int
    motion_dim: int
    model_config: dict[str, Any]
    source_checkpoint: str | None = None
    source_sha256: str | None = None
    opset: int | None = None
    batch: dict[str, int] | None = None  # {"min", "opt", "max"}; None: any batch (dynamic)
    versions: dict[str, str] = field(default_factory=dict)  # torch, onnx, onnxruntime, tensorrt...
    tensorrt: dict[str, Any] | None = None  # {"version", "gpu", "compute_capability"} for engines
    companions: dict[str, str] = field(default_factory=dict)  # e.g. {"flow_encoder": "../ofe-fp32"}
    parity: dict[str, Any] | None = None  # report of export.verify
    extra: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest") -> Manifest:
        if data.get("format") != FORMAT:
            raise ManifestError(f"{where} is not a dtvnet artifact manifest (format={data.get('format')!r}).")
        if data.get("format_version") != FORMAT_VERSION:
            raise ManifestError(
                f"{where} has manifest format_version {data.get('format_version')!r}, this dtvnet reads "
                f"{FORMAT_VERSION}; re-export the artifact with this version."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and _required(f)]
        if missing:
            raise ManifestError(f"{where} lacks the field(s) {', '.join(missing)}; re-export the artifact.")
        values = {k: v for k, v in data.items() if k in names}
        try:
            values["inputs"] = [TensorSpec(**t) for t in data["inputs"]]
            values["outputs"] = [TensorSpec(**t) for t in data["outputs"]]
            manifest = cls(**values)
        except TypeError as exc:
            raise ManifestError(f"{where} is malformed ({exc}); re-export the artifact.") from None
        for name, allowed in (("kind", KINDS), ("engine", ENGINES), ("precision", PRECISIONS)):
            if getattr(manifest, name) not in allowed:
                raise ManifestError(f"{where} has unknown {name} {getattr(manifest, name)!r}.")
        return manifest

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name)

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _by_name(specs: list[TensorSpec], name: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(name)


def generator_io(
    image_size: int, frames: int, motion_dim: int, dtype: str = "float32"
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The generator's graph I/O (DESIGN.md): image, motion -> video, batch dynamic."""
    inputs = [
        TensorSpec("image", ["batch", 3, image_size, image_size], dtype, [-1.0, 1.0]),
        TensorSpec("motion", ["batch", motion_dim], dtype, None),
    ]
    outputs = [TensorSpec("video", ["batch", 3, frames, image_size, image_size], dtype, [-1.0, 1.0])]
    return inputs, outputs


def flow_encoder_io(
    image_size: int, frames: int, motion_dim: int, dtype: str = "float32"
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The flow encoder's graph I/O: flows (pixels at model scale) -> normalized motion vector."""
    inputs = [TensorSpec("flows", ["batch", 2, frames, image_size, image_size], dtype, None)]
    outputs = [TensorSpec("motion", ["batch", motion_dim], dtype, None)]
    return inputs, outputs


def graph_io(kind: str, config: Any, dtype: str = "float32") -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Graph I/O of `kind` ("generator" or "flow_encoder") for a model configuration."""
    io_fn = generator_io if kind == "generator" else flow_encoder_io
    return io_fn(config.image_size, config.frames, config.motion_dim, dtype)


def model_manifest(
    kind: str, engine: str, precision: str, model_file: str, model_sha256: str, config: Any, **fields: Any
) -> Manifest:
    """A manifest whose I/O and sizes come from the model configuration (a DTVNetConfig)."""
    inputs, outputs = graph_io(kind, config)
    return Manifest(
        kind=kind,
        engine=engine,
        precision=precision,
        model_file=model_file,
        model_sha256=model_sha256,
        inputs=inputs,
        outputs=outputs,
        image_size=config.image_size,
        frames=config.frames,
        motion_dim=config.motion_dim,
        model_config=config.to_dict(),
        **fields,
    )


def write_manifest(folder: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write `folder/manifest.json` atomically."""
    path = Path(folder) / MANIFEST_NAME
    with atomic_file(path) as tmp:
        tmp.write_text(manifest.to_json())
    return path


def resolve_artifact(path: str | os.PathLike[str]) -> tuple[Manifest, Path]:
    """Read the manifest for an artifact given as folder, manifest or model file.

    Returns the manifest and the model file's path; raises ManifestError naming what is missing.
    """
    p = Path(path)
    if not p.exists():
        raise ManifestError(
            f"Artifact {str(p)!r} does not exist; export one with `dtvnet export CHECKPOINT`."
        )
    if p.is_dir():
        manifest_path = p / MANIFEST_NAME
    elif p.name == MANIFEST_NAME:
        manifest_path = p
    else:
        manifest_path = p.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ManifestError(
            f"No {MANIFEST_NAME} beside {str(p)!r}; every artifact needs its manifest, so re-export it "
            "with `dtvnet export CHECKPOINT`."
        )
    manifest = read_manifest(manifest_path)
    model_path = manifest_path.parent / manifest.model_file
    if p.is_file() and p != manifest_path and p.resolve() != model_path.resolve():
        raise ManifestError(
            f"{str(manifest_path)!r} describes {manifest.model_file!r}, not {p.name!r}; keep one model per "
            "artifact folder."
        )
    if not model_path.is_file():
        raise ManifestError(
            f"{str(manifest_path)!r} names the model file {manifest.model_file!r}, which is missing."
        )
    return manifest, model_path


def read_manifest(manifest_path: str | os.PathLike[str]) -> Manifest:
    """Parse one manifest.json, with a clear error if it is not JSON or not ours."""
    where = str(manifest_path)
    try:
        data = json.loads(Path(manifest_path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(
            f"{where!r} is not a readable JSON manifest ({exc}); re-export the artifact."
        ) from None
    if not isinstance(data, dict):
        raise ManifestError(f"{where!r} is not a dtvnet artifact manifest; re-export the artifact.")
    return Manifest.from_dict(data, where=repr(where))


def verify_integrity(manifest: Manifest, model_path: str | os.PathLike[str]) -> None:
    """Raise IntegrityError if the model file's sha256 differs from the manifest's."""
    actual = sha256_file(model_path)
    if actual != manifest.model_sha256:
        raise IntegrityError(
            f"{str(model_path)!r} does not match its manifest (sha256 {actual[:12]}... instead of "
            f"{manifest.model_sha256[:12]}...): the file was changed or truncated; re-export it."
        )
