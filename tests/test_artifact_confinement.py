"""An artifact is one folder: model_file, companions and ONNX external data must resolve inside it (a
companion may be a sibling artifact of the same export, '../NAME'); anything else is one ManifestError
sentence naming the manifest and the field."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime.backends.onnxruntime import OnnxRuntimeBackend
from runtime.errors import ManifestError
from runtime.fsutil import sha256_file
from runtime.manifest import (
    external_data_locations,
    read_manifest,
    resolve_artifact,
    write_manifest,
)
from tests.test_manifest import generator_manifest

OUTSIDE = "outside the artifact folder"
RESOLVES = "which resolves (symlinks followed) to"


def make_artifact(folder: Path, model_file: str = "model.onnx", **fields) -> Path:
    """An artifact folder whose manifest names `model_file` (the file itself is written by the caller)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = generator_manifest(**fields)
    write_manifest(folder, manifest)
    edit_manifest(folder, model_file=model_file)
    return folder


def edit_manifest(folder: Path, **changes) -> None:
    path = folder / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def refused(path: Path, *phrases: str) -> str:
    with pytest.raises(ManifestError) as info:
        resolve_artifact(path)
    message = str(info.value)
    assert str(path / "manifest.json") in message and all(p in message for p in phrases), message
    assert "\n" not in message
    return message


def test_a_model_file_in_another_folder_is_refused(tmp_path: Path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.onnx").write_bytes(b"model")
    artifact = make_artifact(tmp_path / "a", "../other/model.onnx")
    refused(artifact, "model_file", "'../other/model.onnx'", OUTSIDE)
    edit_manifest(artifact, model_file="sub/../../other/model.onnx")
    refused(artifact, "model_file", OUTSIDE)


@pytest.mark.parametrize("name", ["/etc/passwd", "\\\\server\\share\\m.onnx", "C:\\m.onnx", "", "  "])
def test_absolute_or_empty_model_files_are_refused(tmp_path: Path, name: str):
    (tmp_path / "a").mkdir()
    artifact = make_artifact(tmp_path / "a", name)
    refused(artifact, "model_file")


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path):
    (tmp_path / "secret.onnx").write_bytes(b"model")
    artifact = make_artifact(tmp_path / "a")
    (artifact / "model.onnx").symlink_to(tmp_path / "secret.onnx")
    refused(artifact, "model_file", RESOLVES, str(tmp_path / "secret.onnx"))
    (artifact / "model.onnx").unlink()
    (artifact / "model.onnx").symlink_to("../secret.onnx")  # relative link, same escape
    refused(artifact, "model_file", RESOLVES)


def test_links_that_stay_inside_are_accepted(tmp_path: Path):
    artifact = make_artifact(tmp_path / "exports" / "a", "model.onnx")
    (artifact / "weights").mkdir()
    (artifact / "weights" / "real.onnx").write_bytes(b"model")
    (artifact / "model.onnx").symlink_to("weights/real.onnx")
    assert resolve_artifact(artifact)[1] == artifact / "model.onnx"
    edit_manifest(artifact, model_file="weights/real.onnx")  # a subfolder of the artifact
    assert resolve_artifact(artifact)[1] == artifact / "weights" / "real.onnx"
    (tmp_path / "elsewhere").symlink_to(artifact)  # the whole artifact reached through a link
    assert resolve_artifact(tmp_path / "elsewhere")[0].model_file == "weights/real.onnx"


def test_companions_are_sibling_artifacts_of_the_same_export(tmp_path: Path):
    exports = tmp_path / "exports"
    artifact = make_artifact(exports / "onnx-fp32", companions={"flow_encoder": "../ofe-fp32"})
    (artifact / "model.onnx").write_bytes(b"model")
    make_artifact(exports / "ofe-fp32")
    assert resolve_artifact(artifact)[0].companions == {"flow_encoder": "../ofe-fp32"}
    for bad in ("../../ofe-fp32", "/tmp/ofe-fp32", "../x/../../y"):
        edit_manifest(artifact, companions={"flow_encoder": bad})
        refused(artifact, "companions.flow_encoder", OUTSIDE)
    edit_manifest(artifact, companions={}, extra={"source_onnx": "../../elsewhere"})
    refused(artifact, "extra.source_onnx", OUTSIDE)
    (tmp_path / "far").mkdir()
    (exports / "linked").symlink_to(tmp_path / "far")
    edit_manifest(artifact, extra={}, companions={"onnx": "../linked"})
    refused(artifact, "companions.onnx", RESOLVES)
    edit_manifest(artifact, companions=["../ofe-fp32"])
    refused(artifact, "companions that are not a mapping")


def test_reading_a_manifest_alone_checks_its_names(tmp_path: Path):
    artifact = make_artifact(tmp_path / "a", "../b/model.onnx")
    with pytest.raises(ManifestError, match=r"model_file.*outside the artifact folder"):
        read_manifest(artifact / "manifest.json")


def _onnx_with_external_data(folder: Path, location: str) -> Path:
    """An ONNX model whose one initializer lives in the external file `location`."""
    weight = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [weight])
    path = folder / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/tmp/secret.bin", "link.bin"])
def test_onnx_external_data_outside_the_artifact_is_refused(tmp_path: Path, location: str):
    np.arange(4, dtype=np.float32).tofile(tmp_path / "secret.bin")
    artifact = make_artifact(tmp_path / "a")
    os.symlink(tmp_path / "secret.bin", artifact / "link.bin")
    model = _onnx_with_external_data(artifact, location)
    edit_manifest(artifact, model_sha256=sha256_file(model))
    manifest, model_path = resolve_artifact(artifact)
    assert external_data_locations(onnx.load(str(model), load_external_data=False)) == [location]
    with pytest.raises(ManifestError, match=re.escape(f"the external data location as {location!r}")):
        OnnxRuntimeBackend(manifest, model_path, "cpu")
