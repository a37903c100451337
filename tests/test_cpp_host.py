"""The C++ host (cpp/): built with CMake here, run on a tiny checkpoint's artifacts and compared with
the Python pipeline for the same image and seed, step by step and end to end; installed and run from
its install prefix. DTVNET_TEST_CPP_BUILD=DIR builds in DIR (kept, so a rerun rebuilds only what changed)
instead of a fresh temporary folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from export.aoti import export_aoti
from export.onnx import export_generator
from runtime import Generator
from runtime.image_input import load_image, prepare
from runtime.imaging import prepare_image
from runtime.manifest import resolve_artifact, verify_integrity
from runtime.seeded_normal import seeded_normal
from training import checkpoint
from training.checkpoint import init_checkpoint
from training.model import preset

pytestmark = pytest.mark.slow

CPP = Path(__file__).resolve().parents[1] / "cpp"
EXIT_USER_ERROR = 2
BIG_SEED = 2**40 + 12345  # beyond 32 bits: the seed must travel as a full uint64


def run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, fail the test with the command's own output."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        command = " ".join(map(str, cmd))
        pytest.fail(f"{command} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def cmake_build(source: Path, build: Path, *options: str) -> None:
    run(["cmake", "-S", source, "-B", build, "-DCMAKE_BUILD_TYPE=Release", *options])
    run(["cmake", "--build", build, "--parallel", str(min(2, os.cpu_count() or 1))])


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kept = os.environ.get("DTVNET_TEST_CPP_BUILD")
    folder = Path(kept) if kept else tmp_path_factory.mktemp("cpp-build")
    cmake_build(CPP, folder, f"-DDTVNET_PYTHON={sys.executable}")
    return folder


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same tiny generator as the Python runtime's ONNX artifact and the C++ host's aoti one."""
    root = tmp_path_factory.mktemp("cpp-artifacts")
    ckpt = init_checkpoint(root / "ckpt", preset("tiny"), seed=3)
    exports = root / "exports"
    return {"ckpt": ckpt, "onnx": export_generator(ckpt, exports), "aoti": export_aoti(ckpt, exports)}


def write_png(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def landscape(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise, uint8 RGB: varied enough that any misplaced pixel shows."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200, y / height * 180 + 40, (x + y) / (width + height) * 255], axis=-1)
    noise = np.random.default_rng(seed).normal(0, 25, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def python_frames(onnx_artifact: Path, image_path: Path, seed: int) -> np.ndarray:
    """The Python runtime's frames [T, S, S, 3] uint8 for an image file and seed."""
    with Generator(onnx_artifact, backend="onnxruntime", device="cpu") as generator:
        return np.stack(list(generator.run(image_path, seed=seed)))


def cpp_frames(
    build: Path, artifact: Path, image: Path, out: Path, seed: int, fmt: str = "png"
) -> np.ndarray:
    cmd = [
        build / "dtvnet_generate",
        "--artifact",
        artifact,
        "--image",
        image,
        "--out",
        out,
        "--seed",
        str(seed),
    ]
    run([*cmd, "--format", fmt])
    if fmt == "raw":
        size = resolve_artifact(artifact)[0].image_size
        return np.fromfile(out / "frames.rgb", dtype=np.uint8).reshape(-1, size, size, 3)
    return np.stack([np.asarray(Image.open(p)) for p in sorted(out.glob("frame_*.png"))])


def test_aoti_artifact_matches_pytorch_at_several_batches(artifacts):
    manifest, model = resolve_artifact(artifacts["aoti"])
    verify_integrity(manifest, model)
    assert manifest.engine == "aoti" and manifest.model_file == "model.pt2" and manifest.extra["cpu_isa"]
    assert (
        manifest.input("image").shape == ["batch", 3, 32, 32]
        and manifest.versions["torch"] == torch.__version__
    )
    compiled = torch._inductor.aoti_load_package(str(model))
    generator = checkpoint.load(artifacts["ckpt"]).generator()
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        image = torch.from_numpy(rng.uniform(-1, 1, (batch, 3, 32, 32)).astype(np.float32))
        motion = torch.from_numpy(rng.standard_normal((batch, 32)).astype(np.float32))
        with torch.no_grad():
            expected = generator(image, motion)
        video, flows = compiled(image, motion)  # flows are part of the artifact; the C++ host uses the video
        assert (video - expected.video).abs().max() < 1e-4 and (flows - expected.flows).abs().max() < 1e-4


def test_cpp_unit_tests(build: Path):
    proc = run(["ctest", "--output-on-failure"], cwd=build)
    assert "100% tests passed" in proc.stdout


@pytest.mark.parametrize(
    ("name", "shape", "seed"),
    [
        ("model-size", (32, 32), BIG_SEED),
        ("wide", (77, 123), 2**64 - 1),  # central-square crop, then INTER_AREA at a non-integer scale
        ("small", (21, 26), 2**33 + 7),  # crop, then INTER_LINEAR enlargement
    ],
)
def test_frames_match_the_python_runtime(build, artifacts, tmp_path, name, shape, seed):
    image = write_png(tmp_path / f"{name}.png", landscape(*shape, seed=len(name)))
    expected = python_frames(artifacts["onnx"], image, seed)
    got = cpp_frames(build, artifacts["aoti"], image, tmp_path / "frames", seed)
    assert got.shape == expected.shape == (8, 32, 32, 3)
    assert np.abs(got.astype(np.int16) - expected.astype(np.int16)).max() <= 1
    # A different seed gives a different video, so the comparison above is not vacuous.
    assert not np.array_equal(python_frames(artifacts["onnx"], image, seed ^ 1), expected)


def test_raw_output_holds_the_same_frames(build, artifacts, tmp_path):
    image = write_png(tmp_path / "in.png", landscape(40, 50, seed=1))
    png = cpp_frames(build, artifacts["aoti"], image, tmp_path / "png", BIG_SEED)
    raw = cpp_frames(build, artifacts["aoti"], image, tmp_path / "raw", BIG_SEED, fmt="raw")
    assert np.array_equal(png, raw)


def test_seeded_normal_matches_python_bit_for_bit(build):
    for seed, dim, count, first in [
        (0, 512, 1, 0),
        (BIG_SEED, 512, 2, 3),
        (2**63 + 5, 33, 4, 0),
        (2**64 - 1, 7, 1, 9),
    ]:
        out = run([build / "dtvnet_probe", "normal", seed, dim, count, first]).stdout.split()
        got = np.array([int(word, 16) for word in out], dtype=np.uint32).view(np.float32)
        assert np.array_equal(got, seeded_normal(seed, dim, count, first).ravel()), seed


@pytest.mark.parametrize(
    ("mode", "src", "dst"),
    [
        ("area", (77, 77), (32, 32)),  # non-integer scale: weighted cells
        ("area", (96, 96), (32, 32)),  # integer scale: block means
        ("area", (35, 51), (9, 13)),
        ("linear", (21, 21), (32, 32)),
        ("linear", (5, 7), (19, 23)),
        ("linear", (45, 45), (135, 135)),
    ],
)
def test_resize_matches_opencv(build, tmp_path, mode, src, dst):
    pixels = np.random.default_rng(sum(src)).uniform(0, 255, (*src, 3)).astype(np.float32)
    pixels.tofile(tmp_path / "in.f32")
    run([build / "dtvnet_probe", "resize", mode, tmp_path / "in.f32", *src, *dst, tmp_path / "out.f32"])
    got = np.fromfile(tmp_path / "out.f32", dtype=np.float32).reshape(*dst, 3)
    interpolation = cv2.INTER_AREA if mode == "area" else cv2.INTER_LINEAR
    # OpenCV's own C++ code path (no IPP, no SIMD) gives the same bits; with IPP, which may take over
    # float INTER_LINEAR, results differ by float rounding only (< 1e-3 on the 0..255 scale).
    np.testing.assert_allclose(
        got, cv2.resize(pixels, dst[::-1], interpolation=interpolation), atol=1e-3, rtol=0
    )
    optimized = cv2.useOptimized()
    try:
        cv2.setUseOptimized(False)
        assert np.array_equal(got, cv2.resize(pixels, dst[::-1], interpolation=interpolation))
    finally:
        cv2.setUseOptimized(optimized)


def _png_variants(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Image files of each supported kind, with the array the Python side reads from them."""
    rgb = landscape(30, 45, seed=2)
    gray16 = (landscape(37, 29, seed=3)[:, :, 0].astype(np.uint16) * 257 + 3).astype(np.uint16)
    rgba = np.concatenate([rgb, np.full((30, 45, 1), 7, np.uint8)], axis=2)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(folder / "palette.png")
    Image.fromarray(rgb).save(folder / "photo.jpg", quality=90)
    Image.fromarray(landscape(150, 210, seed=4)).save(folder / "large.jpg", quality=90)  # decoded at 1/4
    return {
        "rgb": (write_png(folder / "rgb.png", rgb), rgb),
        "gray": (write_png(folder / "gray.png", rgb[:, :, 1]), rgb[:, :, 1]),
        "gray16": (write_png(folder / "gray16.png", gray16), gray16),
        "rgba": (write_png(folder / "rgba.png", rgba), rgba),
        "palette": (folder / "palette.png", np.asarray(palette.convert("RGB"))),
        "jpeg": (folder / "photo.jpg", np.asarray(Image.open(folder / "photo.jpg"))),
        "large jpeg": (folder / "large.jpg", load_image(folder / "large.jpg", 32)),
    }


@pytest.mark.parametrize("fit", ["crop", "letterbox"])
def test_image_loading_and_preprocessing_match_python(build, tmp_path, fit):
    for kind, (path, pixels) in _png_variants(tmp_path).items():
        out = tmp_path / f"{kind}.f32"
        run([build / "dtvnet_probe", "prepare", path, 32, fit, out])
        got = np.fromfile(out, dtype=np.float32).reshape(3, 32, 32)
        expected = prepare_image(pixels, 32, fit)
        if kind == "large jpeg":
            assert pixels.shape == (38, 53, 3)  # both decoders at 1/4 scale, by the same rule
        assert np.array_equal(prepare(path, 32, fit)[0], expected)  # the runtime's own file path
        # Identical decoders give identical inputs; a different libjpeg may move a pixel by one level.
        bound = 2.0 / 127.5 if kind.endswith("jpeg") else 1e-5
        assert np.abs(got - expected).max() <= bound, kind


def test_artifact_is_found_from_its_folder_manifest_or_model_file(build, artifacts, tmp_path):
    folder = artifacts["aoti"]
    for path in (folder, folder / "manifest.json", folder / "model.pt2"):
        assert run([build / "dtvnet_probe", "check", path]).stdout.split() == [
            "ok",
            "aoti",
            str(folder / "model.pt2"),
        ]
    stray = Path(shutil.copytree(folder, tmp_path / "artifact")) / "other.pt2"
    stray.write_bytes(b"")
    proc = subprocess.run([str(build / "dtvnet_probe"), "check", str(stray)], capture_output=True, text=True)
    assert proc.returncode == EXIT_USER_ERROR and "keep one model per artifact folder" in proc.stderr


@pytest.fixture
def damaged(artifacts, tmp_path) -> Path:
    """A private copy of the aoti artifact that a test may break."""
    return Path(shutil.copytree(artifacts["aoti"], tmp_path / "artifact"))


def _edit_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing artifact", "does not exist"),
        ("edited model file", "does not match its manifest"),
        ("motion shape", "needs [batch, 32]"),
        ("not a generator", "not a generator"),
        ("onnx artifact", "export an aoti artifact"),
        ("missing image", "does not exist"),
        ("not an image", "is not a PNG or JPEG file"),
        ("truncated png", "truncated or corrupt"),
        ("truncated jpeg", "truncated or corrupt"),
        ("bad seed", "--seed must be an integer"),
        ("model outside", "gives model_file as '../outside.pt2', outside the artifact folder"),
        ("symlink out", "gives model_file as 'model.pt2', which resolves (symlinks followed) to"),
    ],
)
def test_user_errors_exit_with_a_message(build, artifacts, damaged, tmp_path, case, message):
    artifact, image, seed = damaged, write_png(tmp_path / "in.png", landscape(40, 40, seed=4)), "1"
    if case == "missing artifact":
        artifact = tmp_path / "nowhere"
    elif case == "edited model file":
        with (damaged / "model.pt2").open("ab") as f:
            f.write(b"\0")
    elif case == "motion shape":
        _edit_manifest(damaged, lambda m: m["inputs"][1].update(shape=["batch", 31]))
    elif case == "not a generator":
        _edit_manifest(damaged, lambda m: m.update(kind="flow_encoder"))
    elif case == "onnx artifact":
        artifact = artifacts["onnx"]
    elif case == "missing image":
        image = tmp_path / "none.png"
    elif case == "not an image":
        image = tmp_path / "notes.png"
        image.write_text("not pixels")
    elif case == "truncated png":
        _truncate(image)
    elif case == "truncated jpeg":
        image = tmp_path / "in.jpg"
        Image.fromarray(landscape(40, 40, seed=5)).save(image)
        _truncate(image)
    elif case == "bad seed":
        seed = "-1"
    elif case == "model outside":
        shutil.copyfile(damaged / "model.pt2", tmp_path / "outside.pt2")
        _edit_manifest(damaged, lambda m: m.update(model_file="../outside.pt2"))
    elif case == "symlink out":
        (damaged / "model.pt2").rename(tmp_path / "outside.pt2")
        (damaged / "model.pt2").symlink_to(tmp_path / "outside.pt2")
    cmd = [build / "dtvnet_generate", "--artifact", artifact, "--image", image, "--out", tmp_path / "out"]
    proc = subprocess.run([str(c) for c in [*cmd, "--seed", seed]], capture_output=True, text=True)
    assert proc.returncode == EXIT_USER_ERROR, proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("value", "ok"), [(1e30, False), (-1000.5, False), (1000.0, True), (0.5, True)])
def test_motion_beyond_the_bound_is_refused(build, artifacts, value, ok):
    cmd = [str(build / "dtvnet_probe"), "motion", str(artifacts["aoti"]), repr(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0 and proc.stdout.split() == ["frames", "8"], proc.stderr
    else:
        assert proc.returncode == EXIT_USER_ERROR and "beyond the 1000 this model accepts" in proc.stderr


def runpath(binary: Path) -> list[str]:
    """The RUNPATH (or RPATH) entries of an ELF file, as `readelf -d` shows them."""
    dynamic = run(["readelf", "-d", binary]).stdout
    found = re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", dynamic)
    return [entry for paths in found for entry in paths.split(":")]


def test_the_installed_host_runs_and_links(build, artifacts, tmp_path):
    prefix = tmp_path / "prefix"
    run(["cmake", "--install", build, "--prefix", prefix])
    library = prefix / "lib" / "libdtvnet.so.0"
    torch_lib = Path(torch.__file__).resolve().parent / "lib"
    # The program finds libdtvnet beside it, libdtvnet the LibTorch it was built against (README):
    # no build-tree folder, no stray link-path entries such as LibTorch's MKL folders (/lib/intel64).
    assert runpath(prefix / "bin" / "dtvnet_generate") == ["$ORIGIN/../lib"]
    assert [Path(p).resolve() for p in runpath(library)] == [torch_lib]
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    image = write_png(tmp_path / "in.png", landscape(32, 32, seed=6))
    expected = cpp_frames(build, artifacts["aoti"], image, tmp_path / "built", BIG_SEED)
    installed = [prefix / "bin" / "dtvnet_generate", "--artifact", artifacts["aoti"], "--image", image]
    run([*installed, "--out", tmp_path / "frames", "--seed", BIG_SEED], env=env, cwd=tmp_path)
    got = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "frames").glob("frame_*.png"))])
    assert np.array_equal(got, expected)
    cmake_build(CPP / "tests" / "consumer", tmp_path / "consumer", f"-DCMAKE_PREFIX_PATH={prefix}")
    proc = run([tmp_path / "consumer" / "consumer", artifacts["aoti"], image, BIG_SEED], env=env)
    assert proc.stdout.split() == ["frames", "8", "32"]


def test_adding_as_a_subdirectory_configures(tmp_path):
    # Configure only: building would compile the library a second time, which the tests above cover.
    proc = run(
        [
            "cmake",
            "-S",
            CPP / "tests" / "consumer",
            "-B",
            tmp_path,
            f"-DDTVNET_SOURCE_DIR={CPP}",
            f"-DDTVNET_PYTHON={sys.executable}",
        ]
    )
    assert "Generating done" in proc.stdout
    assert not (tmp_path / "dtvnet" / "CTestTestfile.cmake").exists()  # the project's tests stay off
