"""Backend choice and artifact checks, including every TensorRT decision that needs no GPU."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import types
from pathlib import Path

import numpy as np
import pytest

from runtime.backends import (
    check_graph_io,
    check_manifest_shapes,
    choose_backend,
    open_backend,
    parse_device,
)
from runtime.backends import tensorrt as trt_backend
from runtime.backends.onnxruntime import CPU_EP, CUDA_EP, TENSORRT_EP, choose_providers
from runtime.backends.tensorrt_checks import (
    EngineTensor,
    LocalGPU,
    check_engine_compat,
    compute_capability,
    cuda_device_index,
    plan_bindings,
    version_triplet,
)
from runtime.errors import ArtifactError, BackendUnavailableError, EngineMismatchError, ManifestError
from runtime.manifest import Manifest, generator_io, require_flows
from tests.conftest import tensorrt_available


def manifest(engine: str = "onnx", model_file: str = "model.onnx", **changes) -> Manifest:
    inputs, outputs = generator_io(32, 8, 16)
    base = Manifest(
        kind="generator",
        engine=engine,
        precision="fp32",
        model_file=model_file,
        model_sha256="0" * 64,
        inputs=inputs,
        outputs=outputs,
        image_size=32,
        frames=8,
        motion_dim=16,
        model_config={},
        source_checkpoint="runs/tiny",
    )
    return dataclasses.replace(base, **changes)


def without_flows(m: Manifest) -> Manifest:
    """The manifest of an artifact exported before flows were part of it."""
    return dataclasses.replace(m, outputs=m.outputs[:1])


ENGINE_INFO = {"version": "10.13.0.35", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
H100 = LocalGPU("NVIDIA H100 80GB HBM3", (9, 0))


def test_backend_follows_the_artifact():
    assert choose_backend(manifest(), Path("a/model.onnx")) == "onnxruntime"
    assert choose_backend(manifest("tensorrt", "model.plan"), Path("a/model.plan")) == "tensorrt"
    assert choose_backend(manifest("torch"), Path("ckpt/model.safetensors"), "torch") == "torch"
    with pytest.raises(
        BackendUnavailableError, match="the tensorrt backend cannot run; use backend='onnxruntime'"
    ):
        choose_backend(manifest(), Path("a/model.onnx"), "tensorrt")
    with pytest.raises(BackendUnavailableError, match="Unknown backend 'tflite'"):
        choose_backend(manifest(), Path("a/model.onnx"), "tflite")
    with pytest.raises(
        ManifestError, match="looks like a TensorRT engine but its manifest says engine 'onnx'"
    ):
        choose_backend(manifest(), Path("a/model.engine"))
    with pytest.raises(
        BackendUnavailableError, match="is a openvino artifact, which this runtime does not run"
    ):
        choose_backend(manifest("openvino"), Path("a/model.xml"))


def test_devices_and_execution_providers():
    assert parse_device(None) == ("auto", 0) and parse_device("cuda:2") == ("cuda", 2)
    for bad in ("gpu", "cuda:x", "cpu:1"):
        with pytest.raises(BackendUnavailableError, match="Unknown device"):
            parse_device(bad)
    all_eps = [TENSORRT_EP, CUDA_EP, CPU_EP]
    auto = choose_providers(all_eps, None, "fp16", Path("/cache"))
    assert [p[0] if isinstance(p, tuple) else p for p in auto] == all_eps
    assert auto[0] == (
        TENSORRT_EP,
        {
            "device_id": 0,
            "trt_fp16_enable": True,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": "/cache",
        },
    )
    assert choose_providers(all_eps, "cuda:1") == [(CUDA_EP, {"device_id": 1}), CPU_EP]
    assert choose_providers(all_eps, "cpu") == [CPU_EP]
    assert choose_providers(["AzureExecutionProvider", CPU_EP], None) == [CPU_EP]
    with pytest.raises(BackendUnavailableError, match="ONNX Runtime has no CUDAExecutionProvider here"):
        choose_providers([CPU_EP], "cuda")


def test_graph_io_must_match_the_manifest():
    m = manifest()
    good_in = [("image", ["batch", 3, 32, 32], "float32"), ("motion", [None, 16], "float32")]
    good_out = [("video", [-1, 3, 8, 32, 32], "float32"), ("flows", [-1, 2, 8, 16, 16], "float32")]
    check_graph_io(m, good_in, good_out, "model")
    with pytest.raises(
        ManifestError, match=r"has outputs \['video'\] but its manifest declares \['video', 'flows'\]"
    ):
        check_graph_io(m, good_in, good_out[:1], "model")
    check_graph_io(without_flows(m), good_in, good_out[:1], "model")  # exported before flows: as it was
    with pytest.raises(ManifestError, match=r"output 'flows' of shape \[-1, 2, 8, 32, 32\]"):
        check_graph_io(m, good_in, [good_out[0], ("flows", [-1, 2, 8, 32, 32], "float32")], "model")
    with pytest.raises(ManifestError, match=r"has inputs \['image'\] but its manifest declares"):
        check_graph_io(m, good_in[:1], good_out, "model")
    with pytest.raises(ManifestError, match=r"input 'motion' of shape \[None, 12\]"):
        check_graph_io(m, [good_in[0], ("motion", [None, 12], "float32")], good_out, "model")
    with pytest.raises(ManifestError, match="output 'video' of type float16"):
        check_graph_io(m, good_in, [("video", [-1, 3, 8, 32, 32], "float16"), good_out[1]], "model")
    with pytest.raises(
        ManifestError, match=r"of shape \[4, 3, 32, 32\]"
    ):  # a static batch is not the contract
        check_graph_io(m, [("image", [4, 3, 32, 32], "float32"), good_in[1]], good_out, "model")


def test_manifest_shapes_must_agree_with_its_sizes():
    check_manifest_shapes(manifest(), "m")
    check_manifest_shapes(without_flows(manifest()), "m")  # an artifact exported before flows
    inputs, outputs = generator_io(32, 8, 24)
    with pytest.raises(ManifestError, match="declares tensors"):
        check_manifest_shapes(manifest(inputs=inputs), "m")
    full_size_flows = dataclasses.replace(outputs[1], shape=["batch", 2, 8, 32, 32])
    with pytest.raises(ManifestError, match=r"'flows': \['batch', 2, 8, 32, 32\]"):
        check_manifest_shapes(manifest(outputs=[outputs[0], full_size_flows]), "m")


def test_flows_are_declared_with_their_meaning_and_asked_for_by_name():
    m = manifest()
    flows = m.output("flows")
    assert m.has_flows and flows.shape == ["batch", 2, 8, 16, 16] and flows.value_range is None
    assert "pixels at half" in flows.description and "t-1 -> t" in flows.description
    require_flows(m, "'a'")
    old = without_flows(m)
    assert not old.has_flows
    with pytest.raises(ArtifactError) as err:
        require_flows(old, "'exports/tiny/onnx-fp32'")
    assert str(err.value) == (
        "'exports/tiny/onnx-fp32' was exported before flows were part of the artifact; re-export it with "
        "`dtvnet export runs/tiny --force` to render above model size."
    )
    # read back from JSON, an old manifest (no flows, no descriptions) is still a manifest
    old_json = json.loads(old.to_json())
    for spec in old_json["inputs"] + old_json["outputs"]:
        del spec["description"]
    assert Manifest.from_dict(old_json) == old


def test_engine_compatibility():
    m = manifest("tensorrt", "model.plan", tensorrt=ENGINE_INFO)
    check_engine_compat(m, Path("e/model.plan"), "10.13.0.35", H100)
    check_engine_compat(m, Path("e/model.plan"), "10.13.0.99", LocalGPU("H100 80GB  HBM3", (9, 0)))
    with pytest.raises(
        EngineMismatchError, match=r"built with TensorRT 10.13.0.35 but this machine has TensorRT 10.14"
    ):
        check_engine_compat(m, Path("e/model.plan"), "10.14.0.1", H100)
    with pytest.raises(EngineMismatchError, match=r"`python -m export.trt runs/tiny`"):
        check_engine_compat(m, Path("e/model.plan"), "11.0.0", H100)
    a100 = LocalGPU("NVIDIA A100-SXM4-80GB", (8, 0))
    with pytest.raises(
        EngineMismatchError, match=r"built for NVIDIA H100 80GB HBM3 \(compute capability 9.0\) but"
    ):
        check_engine_compat(m, Path("e/model.plan"), "10.13.0.35", a100)
    same_cc_other_card = LocalGPU("NVIDIA H200", (9, 0))
    with pytest.raises(EngineMismatchError, match="rebuild it on this GPU"):
        check_engine_compat(m, Path("e/model.plan"), "10.13.0.35", same_cc_other_card)
    with pytest.raises(ManifestError, match="lacks its tensorrt version/gpu/compute_capability"):
        check_engine_compat(manifest("tensorrt", "model.plan"), Path("e/model.plan"), "10.13.0", H100)


def test_version_and_capability_parsing():
    assert version_triplet("10.13.0.35") == (10, 13, 0) and version_triplet("11.0") == (11, 0)
    for value in ("8.6", "sm_86", "86", [8, 6], (8, 6), 8.6):
        assert compute_capability(value) == (8, 6)
    assert compute_capability("10.0") == (10, 0) and compute_capability("100") == (10, 0)
    assert compute_capability("unknown") is None
    assert cuda_device_index(None) == 0 and cuda_device_index("cuda:3") == 3
    with pytest.raises(
        BackendUnavailableError, match="TensorRT engines run on an NVIDIA GPU, not on device 'cpu'"
    ):
        cuda_device_index("cpu")


def engine_tensors(high: int = 8, dtype: str = "float32") -> list[EngineTensor]:
    return [
        EngineTensor(
            "image", True, dtype, (-1, 3, 32, 32), ((1, 3, 32, 32), (4, 3, 32, 32), (high, 3, 32, 32))
        ),
        EngineTensor("motion", True, dtype, (-1, 16), ((1, 16), (4, 16), (high, 16))),
        EngineTensor("video", False, dtype, (-1, 3, 8, 32, 32)),
        EngineTensor("flows", False, dtype, (-1, 2, 8, 16, 16)),
    ]


def test_binding_plan_reads_the_batch_range_and_shapes():
    plan = plan_bindings(manifest("tensorrt", "model.plan"), engine_tensors(), "'e'")
    assert (plan.min_batch, plan.opt_batch, plan.max_batch) == (1, 4, 8)
    assert plan.inputs == ("image", "motion") and plan.outputs == ("video", "flows")
    assert plan.dtypes["video"] == plan.dtypes["flows"] == np.float32
    assert plan.shapes(3) == {
        "image": (3, 3, 32, 32),
        "motion": (3, 16),
        "video": (3, 3, 8, 32, 32),
        "flows": (3, 2, 8, 16, 16),
    }
    old = plan_bindings(without_flows(manifest("tensorrt", "model.plan")), engine_tensors()[:3], "'e'")
    assert old.outputs == ("video",)  # an engine built before flows were part of the artifact
    with pytest.raises(ArtifactError, match="takes batches of 1 to 8, not 9; use batch_size <= 8"):
        plan.shapes(9)
    mixed = engine_tensors()
    mixed[1] = EngineTensor("motion", True, "float32", (-1, 16), ((1, 16), (2, 16), (6, 16)))
    assert plan_bindings(manifest(), mixed, "'e'").max_batch == 6  # the batch every input takes


def test_binding_plan_refuses_engines_unlike_their_manifest():
    with pytest.raises(ManifestError, match="input 'image' of type float16"):
        plan_bindings(manifest(), engine_tensors(dtype="float16"), "'e'")
    with pytest.raises(ManifestError, match="takes batches of 1 to 8 but its manifest says 1 to 16"):
        plan_bindings(manifest(batch={"min": 1, "opt": 4, "max": 16}), engine_tensors(), "'e'")


def test_tensorrt_backend_checks_the_engine_before_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"an engine for another machine")
    m = manifest("tensorrt", "model.plan", tensorrt=ENGINE_INFO)
    monkeypatch.setattr(trt_backend, "require_tensorrt", lambda: "10.13.0.35")
    monkeypatch.setattr(trt_backend, "import_cudart", lambda: types.SimpleNamespace())
    monkeypatch.setattr(trt_backend, "local_gpu", lambda cudart, index: LocalGPU("NVIDIA L4", (8, 9)))

    def never(*args):
        raise AssertionError("TensorRT must not be asked to load an engine built for another GPU")

    monkeypatch.setattr(trt_backend.trt, "Runtime", never, raising=False)
    with pytest.raises(
        EngineMismatchError, match=r"built for NVIDIA H100 80GB HBM3 .* this machine's GPU is NVIDIA L4"
    ):
        open_backend("tensorrt", m, plan, "cuda:0")


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_tensorrt_backend_without_tensorrt(tmp_path: Path):
    with pytest.raises(BackendUnavailableError, match=r"TensorRT is not installed here|needs tensorrt"):
        open_backend(
            "tensorrt", manifest("tensorrt", "model.plan", tensorrt=ENGINE_INFO), tmp_path / "m.plan"
        )


def strip_flows(artifact: Path, out: Path) -> Path:
    """A copy of a generator artifact as it was exported before flows were part of it: video only."""
    import onnx

    from runtime.fsutil import sha256_file
    from runtime.manifest import resolve_artifact, write_manifest

    manifest, model_path = resolve_artifact(artifact)
    model = onnx.load(str(model_path))
    graph = model.graph
    graph.output.remove(next(o for o in graph.output if o.name == "flows"))
    while dead := [
        n
        for n in graph.node
        if not set(n.output) & ({i for m in graph.node for i in m.input} | {o.name for o in graph.output})
    ]:
        for node in dead:
            graph.node.remove(node)
    out.mkdir()
    onnx.save(model, str(out / model_path.name))
    old = dataclasses.replace(without_flows(manifest), model_sha256=sha256_file(out / model_path.name))
    write_manifest(out, old)
    return out


def generator_feeds(batch: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    image = rng.uniform(-1, 1, (batch, 3, 32, 32)).astype(np.float32)
    return {"image": image, "motion": rng.standard_normal((batch, 32)).astype(np.float32)}


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch"])
def test_every_backend_returns_the_flows(tiny_artifacts, backend: str):
    import torch

    from runtime.backends import load_checked, open_artifact
    from training import checkpoint as ckpt_io
    from training.model.deployed import GeneratorGraph

    if backend == "openvino":
        pytest.importorskip("openvino")
    checkpoint, generator, _ = tiny_artifacts
    m, model_path = open_artifact(checkpoint if backend == "torch" else generator)
    assert m.has_flows
    loaded = load_checked(m, model_path, "generator", backend, "cpu")
    feeds = generator_feeds()
    out = loaded.run(feeds)
    assert set(out) == {"video", "flows"}
    assert out["video"].shape == (2, 3, 8, 32, 32) and out["flows"].shape == (2, 2, 8, 16, 16)
    reference = GeneratorGraph(ckpt_io.load(checkpoint, components=["generator"]).generator())
    with torch.no_grad():
        video, flows = reference(*(torch.from_numpy(feeds[n]) for n in ("image", "motion")))
    assert np.abs(out["flows"] - flows.numpy()).max() < 1e-3 * max(1.0, float(flows.abs().max()))
    assert np.abs(out["video"] - video.numpy()).max() < 1e-3
    loaded.close()


def test_an_artifact_exported_before_flows_still_runs_at_model_size(tiny_artifacts, tmp_path: Path):
    from runtime.backends import load_checked, open_artifact
    from runtime.generator import Generator

    _, generator, _ = tiny_artifacts
    old_folder = strip_flows(generator, tmp_path / "onnx-fp32")
    old, old_path = open_artifact(old_folder)
    assert not old.has_flows and [spec.name for spec in old.outputs] == ["video"]
    feeds = generator_feeds()
    new_video = load_checked(*open_artifact(generator), "generator", "onnxruntime").run(feeds)["video"]
    backends = ["onnxruntime", *(["openvino"] if importlib.util.find_spec("openvino") else [])]
    for backend in backends:
        out = load_checked(old, old_path, "generator", backend).run(feeds)
        assert list(out) == ["video"]
        np.testing.assert_allclose(out["video"], new_video, atol=1e-4)
    frames = list(Generator(old_folder).run(feeds["image"][0].transpose(1, 2, 0) * 127.5 + 127.5, seed=0))
    assert len(frames) == 8 and frames[0].shape == (32, 32, 3)


def test_the_demo_exports_again_over_a_cache_from_before_flows(
    tiny_artifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import shutil

    import export.onnx
    from dtvnet import demo
    from runtime.fsutil import sha256_file

    checkpoint, generator, flow_encoder = tiny_artifacts
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "cache" / "dtvnet" / "demo" / sha256_file(checkpoint / "config.json")[:16]
    root.mkdir(parents=True)
    shutil.copytree(generator, root / "onnx-fp32")
    shutil.copytree(flow_encoder, root / "ofe-fp32")
    assert demo.demo_artifact(checkpoint) == root / "onnx-fp32"  # a current cache is reused as it is
    exported = []
    monkeypatch.setattr(
        export.onnx, "export_generator", lambda ckpt, out, **kw: exported.append(out) or generator
    )
    monkeypatch.setattr(export.onnx, "export_flow_encoder", lambda ckpt, out, **kw: flow_encoder)
    shutil.rmtree(root / "onnx-fp32")
    strip_flows(generator, root / "onnx-fp32")
    assert demo.demo_artifact(checkpoint) == generator and exported == [root]  # the old one is not reused
