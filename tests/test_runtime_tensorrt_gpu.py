"""The TensorRT backend on a real GPU: build a tiny engine here, run it, compare with ONNX Runtime.

Skipped without an NVIDIA GPU and TensorRT (`pip install 'dtvnet[gpu]'`); CI has neither.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime.errors import EngineMismatchError
from runtime.fsutil import sha256_file
from runtime.manifest import resolve_artifact, write_manifest
from tests.conftest import require_tensorrt

pytestmark = pytest.mark.gpu
PHOTO = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def build_engine(onnx_dir: Path, out: Path, max_batch: int = 4, gpu_name: str | None = None) -> Path:
    """A tiny fp32 engine with a batch profile 1..max_batch, and its manifest (as export.trt writes it)."""
    import tensorrt as trt

    from runtime.backends.tensorrt import import_cudart, local_gpu

    manifest, onnx_path = resolve_artifact(onnx_dir)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    s, d = manifest.image_size, manifest.motion_dim
    profile.set_shape("image", (1, 3, s, s), (max_batch, 3, s, s), (max_batch, 3, s, s))
    profile.set_shape("motion", (1, d), (max_batch, d), (max_batch, d))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    out.mkdir(parents=True)
    (out / "model.plan").write_bytes(bytes(serialized))
    gpu = local_gpu(import_cudart(), 0)
    engine_manifest = dataclasses.replace(
        manifest,
        engine="tensorrt",
        model_file="model.plan",
        model_sha256=sha256_file(out / "model.plan"),
        batch={"min": 1, "opt": max_batch, "max": max_batch},
        tensorrt={
            "version": trt.__version__,
            "gpu": gpu_name or gpu.name,
            "compute_capability": f"{gpu.compute_capability[0]}.{gpu.compute_capability[1]}",
        },
        companions={"flow_encoder": "../ofe-fp32"},
    )
    write_manifest(out, engine_manifest)
    return out


def test_engine_matches_onnx_runtime(tiny_artifacts, tmp_path: Path):
    require_tensorrt()
    from runtime import Generator

    _, onnx_dir, ofe_dir = tiny_artifacts
    shutil.copytree(ofe_dir, tmp_path / "ofe-fp32")
    engine_dir = build_engine(onnx_dir, tmp_path / "trt-fp32")
    with Generator(engine_dir) as trt_gen, Generator(onnx_dir, device="cpu") as ort_gen:
        assert trt_gen.backend.name == "tensorrt" and trt_gen.batch_size == 4
        frames = np.stack(list(trt_gen.run(PHOTO, seed=3))).astype(int)
        assert np.abs(frames - np.stack(list(ort_gen.run(PHOTO, seed=3)))).max() <= 2
        clips = list(trt_gen.run_many([PHOTO] * 6, seed=1))  # batches of 4 and 2
        assert [c.frames.shape for c in clips] == [(8, 32, 32, 3)] * 6
        assert len(list(trt_gen.stream(PHOTO, clips=3, seed=2))) == 22
        assert trt_gen.stats.engine_fps > 0


def test_engine_for_another_gpu_is_refused(tiny_artifacts, tmp_path: Path):
    require_tensorrt()
    from runtime import Generator

    engine_dir = build_engine(tiny_artifacts[1], tmp_path / "trt-fp32", gpu_name="NVIDIA Imaginary 9000")
    with pytest.raises(EngineMismatchError, match="was built for NVIDIA Imaginary 9000"):
        Generator(engine_dir)


def test_engine_path_never_imports_torch(tiny_artifacts, tmp_path: Path):
    require_tensorrt()
    import subprocess
    import sys

    engine_dir = build_engine(tiny_artifacts[1], tmp_path / "trt-fp32")
    code = (
        "import sys, numpy as np\n"
        "from runtime import Generator\n"
        "g = Generator(sys.argv[1])\n"
        "assert g.backend.name == 'tensorrt'\n"
        "assert len(list(g.run(np.zeros((40, 50, 3), np.uint8), seed=1))) == 8\n"
        "sys.exit(3 if 'torch' in sys.modules else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(engine_dir)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
