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
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from runtime.errors import ArtifactError, IntegrityError, ManifestError
from runtime.fsutil import atomic_file, sha256_file

MANIFEST_NAME = "manifest.json"
GENERATOR_DIR = "onnx-fp32"  # the float32 ONNX artifacts every other export derives from
FLOW_ENCODER_DIR = "ofe-fp32"
FORMAT = "dtvnet-artifact"
FORMAT_VERSION = 1
KINDS = ("generator", "flow_encoder")
ENGINES = ("onnx", "tensorrt", "torch", "openvino", "aoti")
PRECISIONS = ("fp32", "fp16", "int8")
# A Triton model's config carries its artifact (written by export.triton, read by runtime.backends.triton):
MANIFEST_PARAMETER = "dtvnet_manifest"  # the served artifact's manifest.json, compact
FLOW_ENCODER_PARAMETER = "dtvnet_flow_encoder"  # the flow encoder model's name, for motion transfer
FLOWS = "flows"  # the generator's second output (older artifacts lack it)
FLOWS_DESCRIPTION = (
    "forward flow of frame t-1 -> t as (u, v) in pixels at half the model's resolution; flow 0 (frame 0 "
    "to itself) is trained toward 0, not forced to it"
)


@dataclass
class TensorSpec:
    """One graph input or output. `shape` uses the string "batch" for the dynamic dimension; `description`
    says what the values mean where the name and range do not (units, layout)."""

    name: str
    shape: list[int | str]
    dtype: str
    value_range: list[float] | None = None
    description: str | None = None


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
    parity: dict[str, Any] | None = None  # report of export.parity
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
        check_names(manifest, where)
        return manifest

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name)

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name)

    @property
    def has_flows(self) -> bool:
        """Whether a generator artifact outputs its `flows` (artifacts exported before they were part of
        the artifact output `video` only: they run at model size but cannot guide HD rendering)."""
        return self.kind == "generator" and any(spec.name == FLOWS for spec in self.outputs)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _by_name(specs: list[TensorSpec], name: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(name)


def require_flows(manifest: Manifest, where: str, asked: str = "render above model size") -> None:
    """Raise ArtifactError if a generator artifact has no `flows` output (exported before they were part
    of the artifact), for callers that need them (HD rendering)."""
    if not manifest.has_flows:
        raise ArtifactError(
            f"{where} was exported before flows were part of the artifact; re-export it with `dtvnet export "
            f"{manifest.source_checkpoint or 'CHECKPOINT'} --force` to {asked}."
        )


def flows_spec(image_size: int, frames: int, dtype: str = "float32") -> TensorSpec:
    """The generator's second output: its per-frame flows at half resolution (DESIGN.md)."""
    half = image_size // 2
    return TensorSpec(FLOWS, ["batch", 2, frames, half, half], dtype, None, FLOWS_DESCRIPTION)


def generator_io(
    image_size: int, frames: int, motion_dim: int, dtype: str = "float32"
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The generator's graph I/O (DESIGN.md): image, motion -> video, flows; batch dynamic."""
    inputs = [
        TensorSpec("image", ["batch", 3, image_size, image_size], dtype, [-1.0, 1.0]),
        TensorSpec("motion", ["batch", motion_dim], dtype, None),
    ]
    outputs = [
        TensorSpec("video", ["batch", 3, frames, image_size, image_size], dtype, [-1.0, 1.0]),
        flows_spec(image_size, frames, dtype),
    ]
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
    where = repr(str(manifest_path))
    model_path = inside_artifact(manifest_path.parent, manifest.model_file, where, "model_file")
    for key, name in sibling_references(manifest):
        sibling_artifact(manifest_path.parent, name, where, key)
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


# ---------------------------------------------------------------------- confinement
# An artifact is one folder (DESIGN.md): every file its manifest names lies inside it, so a copied or
# downloaded artifact never reads the files beside it. The only references out are to sibling artifacts
# of the same export (a generator's flow encoder, a TensorRT engine's ONNX source): "../NAME" inside the
# export folder that holds both, each itself an artifact confined to its own folder. The ONNX runtimes
# read external data relative to the model file; `check_external_data` holds those names to the rule too.


def sibling_references(manifest: Manifest) -> list[tuple[str, str]]:
    """(field, value) of every sibling artifact the manifest names: companions and extra.source_onnx."""
    refs = [(f"companions.{key}", value) for key, value in manifest.companions.items()]
    if isinstance(manifest.extra, dict) and "source_onnx" in manifest.extra:
        refs.append(("extra.source_onnx", manifest.extra["source_onnx"]))
    return refs


def check_names(manifest: Manifest, where: str) -> None:
    """ManifestError unless model_file is a relative path without `..` and each sibling reference is
    one too, or `../` and one (what the names alone say; `resolve_artifact` also follows symlinks)."""
    _relative_inside("model_file", manifest.model_file, where)
    if not isinstance(manifest.companions, dict):
        raise ManifestError(
            f"{where} has companions that are not a mapping of names; re-export the artifact."
        )
    for key, name in sibling_references(manifest):
        _relative_inside(key, _sibling(name), where)


def inside_artifact(folder: str | os.PathLike[str], name: str, where: str, key: str) -> Path:
    """`folder / name`, refused with a ManifestError naming manifest `where` and field `key` unless
    `name` is a relative path without `..` that, symlinks followed, stays inside `folder`."""
    _relative_inside(key, name, where)
    path = Path(folder) / name
    _resolves_inside(path, Path(folder).resolve(), name, where, key)
    return path


def sibling_artifact(folder: str | os.PathLike[str], name: str, where: str, key: str) -> Path:
    """Companion artifact `name` of artifact `folder`: `../NAME` (a sibling in the same export folder)
    or a path inside `folder`; refused like `inside_artifact` if it leads, symlinks followed, out of
    the export folder (or, without `../`, out of the artifact)."""
    artifact = Path(folder).resolve()
    top = artifact.parent if isinstance(name, str) and name.startswith("../") else artifact
    _relative_inside(key, _sibling(name), where)
    _resolves_inside(top / _sibling(name), top, name, where, key)  # the OS's reading of folder/../NAME
    return Path(folder) / name


def external_data_locations(model: Any) -> list[str]:
    """The `location` of every tensor of an ONNX ModelProto (graph, subgraphs, node attributes) whose
    data lies in an external file: ONNX Runtime and OpenVINO read those relative to the model file."""
    locations: list[str] = []

    def tensor(t: Any) -> None:
        if t.data_location == 1:  # onnx.TensorProto.EXTERNAL
            locations.extend(e.value for e in t.external_data if e.key == "location")

    def graph(g: Any) -> None:
        for t in g.initializer:
            tensor(t)
        for sparse in g.sparse_initializer:
            tensor(sparse.values)
            tensor(sparse.indices)
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    tensor(attr.t)
                for t in attr.tensors:
                    tensor(t)
                if attr.HasField("g"):
                    graph(attr.g)
                for sub in attr.graphs:
                    graph(sub)

    graph(model.graph)
    for function in getattr(model, "functions", []):
        for node in function.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    tensor(attr.t)
    return locations


def check_external_data(model: Any, model_path: str | os.PathLike[str]) -> None:
    """ManifestError unless every external-data file an ONNX model names lies inside its artifact."""
    path = Path(model_path)
    for location in external_data_locations(model):
        inside_artifact(path.parent, location, repr(str(path)), "the external data location")


def _sibling(name: Any) -> Any:
    """A sibling reference without its one leading `../`."""
    return name[len("../") :] if isinstance(name, str) and name.startswith("../") else name


def _resolves_inside(path: Path, top: Path, name: str, where: str, key: str) -> None:
    resolved = path.resolve()
    if resolved == top or not resolved.is_relative_to(top):
        raise ManifestError(
            f"{where} gives {key} as {name!r}, which resolves (symlinks followed) to {str(resolved)!r}, not "
            f"inside {str(top)!r}; an artifact is one folder, so copy the file into it or re-export it."
        )


def _relative_inside(key: str, name: Any, where: str) -> None:
    """The path alone: a non-empty relative path with no `..`, no absolute or drive part."""
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise ManifestError(f"{where} gives {key} as {name!r}, not a file name; re-export the artifact.")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if (
        PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).drive
        or name.startswith(("/", "\\"))
        or ".." in parts
    ):
        raise ManifestError(
            f"{where} gives {key} as {name!r}, outside the artifact folder; an artifact is one folder, so "
            "every file it names must lie inside it (no '..', no absolute path): re-export the artifact."
        )


def verify_integrity(manifest: Manifest, model_path: str | os.PathLike[str]) -> None:
    """Raise IntegrityError if the model file's sha256 differs from the manifest's."""
    actual = sha256_file(model_path)
    if actual != manifest.model_sha256:
        raise IntegrityError(
            f"{str(model_path)!r} does not match its manifest (sha256 {actual[:12]}... instead of "
            f"{manifest.model_sha256[:12]}...): the file was changed or truncated; re-export it."
        )
