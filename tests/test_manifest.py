"""The artifact manifest: round trip, the three ways to name an artifact, and clear errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from runtime.errors import IntegrityError, ManifestError
from runtime.fsutil import sha256_file
from runtime.manifest import (
    FLOWS_DESCRIPTION,
    Manifest,
    generator_io,
    read_manifest,
    resolve_artifact,
    verify_integrity,
    write_manifest,
)


def generator_manifest(**changes) -> Manifest:
    """A tiny generator's manifest (32 px, 8 frames, motion 32), with `changes`."""
    inputs, outputs = generator_io(32, 8, 32)
    base = Manifest(
        kind="generator",
        engine="onnx",
        precision="fp32",
        model_file="model.onnx",
        model_sha256="0" * 64,
        inputs=inputs,
        outputs=outputs,
        image_size=32,
        frames=8,
        motion_dim=32,
        model_config={},
    )
    return dataclasses.replace(base, **changes)


def make_artifact(folder: Path, payload: bytes = b"model bytes") -> Manifest:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(payload)
    sha256 = sha256_file(folder / "model.onnx")
    manifest = generator_manifest(model_sha256=sha256, model_config={"image_size": 32}, opset=18)
    write_manifest(folder, manifest)
    return manifest


def test_round_trip(tmp_path: Path):
    written = make_artifact(tmp_path / "a")
    assert read_manifest(tmp_path / "a" / "manifest.json") == written
    assert written.input("motion").shape == ["batch", 32]
    assert written.output("video").shape == ["batch", 3, 8, 32, 32]
    flows = read_manifest(tmp_path / "a" / "manifest.json").output("flows")  # with its meaning, in the JSON
    assert flows.shape == ["batch", 2, 8, 16, 16] and flows.description == FLOWS_DESCRIPTION
    assert written.has_flows and not dataclasses.replace(written, outputs=written.outputs[:1]).has_flows


@pytest.mark.parametrize("name", ["a", "a/manifest.json", "a/model.onnx"])
def test_resolve_accepts_folder_manifest_or_model(tmp_path: Path, name: str):
    make_artifact(tmp_path / "a")
    manifest, model = resolve_artifact(tmp_path / name)
    assert model == tmp_path / "a" / "model.onnx" and manifest.kind == "generator"


def test_missing_artifact_and_manifest(tmp_path: Path):
    with pytest.raises(ManifestError, match="does not exist"):
        resolve_artifact(tmp_path / "nothing.onnx")
    (tmp_path / "lonely.onnx").write_bytes(b"x")
    with pytest.raises(ManifestError, match=r"No manifest\.json"):
        resolve_artifact(tmp_path / "lonely.onnx")


def test_malformed_manifests(tmp_path: Path):
    make_artifact(tmp_path / "a")
    path = tmp_path / "a" / "manifest.json"
    data = json.loads(path.read_text())
    path.write_text("{not json")
    with pytest.raises(ManifestError, match=r"not a readable JSON"):
        resolve_artifact(tmp_path / "a")
    path.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(ManifestError, match="format_version"):
        resolve_artifact(tmp_path / "a")
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "model_sha256"}))
    with pytest.raises(ManifestError, match="model_sha256"):
        resolve_artifact(tmp_path / "a")
    path.write_text(json.dumps({**data, "precision": "fp8"}))
    with pytest.raises(ManifestError, match="precision"):
        resolve_artifact(tmp_path / "a")


def test_other_model_file_in_the_folder(tmp_path: Path):
    make_artifact(tmp_path / "a")
    (tmp_path / "a" / "other.onnx").write_bytes(b"x")
    with pytest.raises(ManifestError, match=r"not .other\.onnx."):
        resolve_artifact(tmp_path / "a" / "other.onnx")


def test_integrity(tmp_path: Path):
    manifest = make_artifact(tmp_path / "a")
    verify_integrity(manifest, tmp_path / "a" / "model.onnx")
    (tmp_path / "a" / "model.onnx").write_bytes(b"model bytez")
    with pytest.raises(IntegrityError, match="changed or truncated"):
        verify_integrity(manifest, tmp_path / "a" / "model.onnx")
