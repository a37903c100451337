"""`dtvnet generate` and `dtvnet demo`: outputs, and one-line errors with exit code 2 for every bad input."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dtvnet import cli
from runtime.backends import tensorrt as trt_backend
from runtime.backends.tensorrt_checks import LocalGPU
from runtime.image_input import MAX_SIDE
from tests.test_runtime_motion import write_video
from tests.test_runtime_writers import read_mp4


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)).save(path)
    return path


def dtvnet(*args: object) -> int:
    return cli.main([str(a) for a in args])


def test_generate_writes_video_and_sheet(tiny_artifacts, photo: Path, tmp_path: Path, capsys):
    out, sheet = tmp_path / "out.mp4", tmp_path / "sheet.png"
    assert (
        dtvnet(
            "generate", photo, "--artifact", tiny_artifacts[1], "--out", out, "--seed", 3, "--sheet", sheet
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"wrote {out} (8 frames, seed 3)" in printed and "frames/s end-to-end" in printed
    assert len(read_mp4(out)) == 8
    assert Image.open(sheet).size == (8 * 32 + 7 * 2, 32)


def test_generate_chains_clips_and_transfers_motion(tiny_artifacts, photo: Path, tmp_path: Path, capsys):
    artifact = tiny_artifacts[1]
    assert (
        dtvnet("generate", photo, "--artifact", artifact, "--out", tmp_path / "long.mp4", "--clips", 3) == 0
    )
    assert len(read_mp4(tmp_path / "long.mp4")) == 22
    video = write_video(tmp_path / "ref.mp4", 10)
    out = tmp_path / "moved.gif"
    assert dtvnet("generate", photo, "--artifact", artifact, "--out", out, "--motion-from", video) == 0
    assert f"motion from {video}" in capsys.readouterr().out
    assert Image.open(out).n_frames == 8
    frames = tmp_path / "frames"
    assert (
        dtvnet("generate", photo, "--artifact", artifact, "--out", frames, "--upscale", "--fit", "letterbox")
        == 0
    )
    assert Image.open(frames / "frame_00007.png").size == (90, 60)


def image_file(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "nope.jpg"
    if kind == "folder":
        return tmp_path
    if kind == "text":
        (tmp_path / "notes.jpg").write_text("hello")
        return tmp_path / "notes.jpg"
    if kind == "truncated":
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "cut.png")
        (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:60])
        return tmp_path / "cut.png"
    size = (1, 1) if kind == "1x1" else (2, MAX_SIDE + 1)
    Image.fromarray(np.zeros(size, np.uint8)).save(tmp_path / f"{kind}.png")
    return tmp_path / f"{kind}.png"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "does not exist; check the path"),
        ("folder", "is a folder, not an image file"),
        ("text", "is not an image file Pillow can read"),
        ("truncated", "is truncated or corrupt"),
        ("1x1", "is 1x1 pixels"),
        ("huge", "larger than 16384 on a side"),
    ],
)
def test_generate_bad_images(tiny_artifacts, tmp_path: Path, capsys, kind: str, message: str):
    image = image_file(tmp_path, kind)
    assert dtvnet("generate", image, "--artifact", tiny_artifacts[1], "--out", tmp_path / "o.mp4") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and str(image) in err and "\n" not in err
    assert not (tmp_path / "o.mp4").exists()


def motion_file(tmp_path: Path, values: np.ndarray) -> Path:
    np.save(tmp_path / "z.npy", values)
    return tmp_path / "z.npy"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.zeros(31, np.float32), "has shape (31,) but this model takes 32 numbers"),
        (np.r_[np.zeros(31), np.nan].astype(np.float32), "contains NaN or infinite values"),
        (np.r_[np.zeros(31), np.inf].astype(np.float32), "contains NaN or infinite values"),
    ],
)
def test_generate_bad_motion(tiny_artifacts, photo: Path, tmp_path: Path, capsys, values, message: str):
    motion = motion_file(tmp_path, values)
    args = (
        "generate",
        photo,
        "--artifact",
        tiny_artifacts[1],
        "--out",
        tmp_path / "o.mp4",
        "--motion-from",
        motion,
    )
    assert dtvnet(*args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and str(motion) in err


def test_generate_bad_artifacts(tiny_artifacts, photo: Path, tmp_path: Path, capsys):
    edited = tmp_path / "edited"
    shutil.copytree(tiny_artifacts[1], edited)
    (edited / "model.onnx").write_bytes((edited / "model.onnx").read_bytes()[:-10])
    assert dtvnet("generate", photo, "--artifact", edited, "--out", tmp_path / "o.mp4") == 2
    assert "does not match its manifest" in capsys.readouterr().err
    (edited / "manifest.json").unlink()
    assert dtvnet("generate", photo, "--artifact", edited / "model.onnx", "--out", tmp_path / "o.mp4") == 2
    assert "No manifest.json beside" in capsys.readouterr().err


def test_generate_engine_for_another_gpu(
    photo: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    from runtime.fsutil import sha256_file
    from runtime.manifest import write_manifest
    from tests.test_runtime_backends import ENGINE_INFO, manifest

    engine = tmp_path / "trt-fp32"
    engine.mkdir()
    (engine / "model.plan").write_bytes(b"engine bytes")
    write_manifest(
        engine,
        manifest(
            "tensorrt", "model.plan", tensorrt=ENGINE_INFO, model_sha256=sha256_file(engine / "model.plan")
        ),
    )
    monkeypatch.setattr(trt_backend, "require_tensorrt", lambda: "10.13.0.35")
    monkeypatch.setattr(trt_backend, "import_cudart", lambda: types.SimpleNamespace())
    monkeypatch.setattr(trt_backend, "local_gpu", lambda cudart, index: LocalGPU("NVIDIA RTX 4090", (8, 9)))
    assert dtvnet("generate", photo, "--artifact", engine, "--out", tmp_path / "o.mp4") == 2
    assert "was built for NVIDIA H100 80GB HBM3" in capsys.readouterr().err
    monkeypatch.setattr(trt_backend, "require_tensorrt", lambda: "10.9.0.34")
    assert dtvnet("generate", photo, "--artifact", engine, "--out", tmp_path / "o.mp4") == 2
    assert (
        "was built with TensorRT 10.13.0.35 but this machine has TensorRT 10.9.0.34"
        in capsys.readouterr().err
    )


def test_generate_bad_outputs(tiny_artifacts, photo: Path, tmp_path: Path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert dtvnet("generate", photo, "--artifact", tiny_artifacts[1], "--out", blocker / "o.mp4") == 2
    assert "is not writable" in capsys.readouterr().err
    (tmp_path / "old.mp4").write_bytes(b"keep me")
    assert dtvnet("generate", photo, "--artifact", tiny_artifacts[1], "--out", tmp_path / "old.mp4") == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert (tmp_path / "old.mp4").read_bytes() == b"keep me"
    assert dtvnet("generate", photo, "--artifact", tiny_artifacts[1], "--out", tmp_path / "o.avi") == 2
    assert "unknown type '.avi'" in capsys.readouterr().err


def test_console_script_prints_one_line_without_traceback(tiny_artifacts, tmp_path: Path):
    script = Path(sys.executable).with_name("dtvnet")
    args = [
        str(script),
        "generate",
        str(tmp_path / "nope.jpg"),
        "--artifact",
        str(tiny_artifacts[1]),
        "--out",
        "o.mp4",
    ]
    result = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: Image {str(tmp_path / 'nope.jpg')!r} does not exist; check the path."
    ]


def test_demo_exports_once_and_writes_video_and_sheet(tiny_artifacts, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert dtvnet("demo", "--checkpoint", tiny_artifacts[0], "--out", out) == 0
    printed = capsys.readouterr().out
    assert "first run: exporting the demo model" in printed and "frames/s end-to-end" in printed
    assert f"the motion of {out / 'scene'}/" in printed  # the scene's own clouds drive it by default
    assert len(list((out / "scene").glob("*.png"))) == 8
    hd, model = read_mp4(out / "timelapse.mp4"), read_mp4(out / "timelapse_model.mp4")
    assert len(hd) == len(model) == 8 + 3 * 7
    assert hd[0].shape == (512, 512, 3) and model[0].shape == (32, 32, 3)
    assert f"wrote {out / 'timelapse.mp4'} (29 frames at 512x512, guided" in printed
    assert Image.open(out / "contact_sheet.png").size == (2 * 512 + 2, 512)  # frames 0 and 4, in HD
    assert Image.open(out / "landscape.png").size == (512, 512)
    exported = list((tmp_path / "cache" / "dtvnet" / "demo").glob("*/onnx-fp32/manifest.json"))
    assert len(exported) == 1

    def no_export(*args, **kwargs):
        raise AssertionError("the cached export must be reused")

    monkeypatch.setattr("export.onnx.export_generator", no_export)
    monkeypatch.setattr("export.onnx.export_flow_encoder", no_export)
    again = ("demo", "--checkpoint", tiny_artifacts[0], "--out", out, "--motion", "seed", "--seed", 5)
    assert dtvnet(*again) == 2  # like `dtvnet generate`, an earlier run's outputs need --force
    assert (
        "already holds the demo's timelapse.mp4, timelapse_model.mp4, contact_sheet.png, landscape.png"
        in capsys.readouterr().err
    )
    assert dtvnet(*again, "--force", "--size", 96) == 0
    assert "first run" not in (printed := capsys.readouterr().out) and "motion seed 5" in printed
    assert read_mp4(out / "timelapse.mp4")[0].shape == (96, 96, 3)


def test_demo_uses_the_bundled_model_when_installed(tiny_artifacts, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    bundled = types.ModuleType("training.demo")
    bundled.demo_checkpoint = lambda: tiny_artifacts[0]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "training.demo", bundled)
    assert dtvnet("demo", "--clips", 1) == 0
    assert len(read_mp4(tmp_path / "dtvnet-demo" / "timelapse.mp4")) == 8
    monkeypatch.setitem(sys.modules, "training.demo", None)
    assert dtvnet("demo") == 2
    assert "no bundled demo model" in capsys.readouterr().err


def test_demo_landscape_is_deterministic():
    from training.data.demo_scenes import demo_landscape

    image = demo_landscape(64, seed=1)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.array_equal(image, demo_landscape(64, seed=1)) and not np.array_equal(
        image, demo_landscape(64, 2)
    )
    assert image[:20, :, 2].mean() > image[50:, :, 2].mean()  # sky above, darker land below


def test_help_lists_generate_and_demo(capsys):
    assert dtvnet("--help") == 0
    printed = capsys.readouterr().out
    assert "generate" in printed and "demo" in printed
    with pytest.raises(SystemExit):
        dtvnet("generate", "--help")
    assert "--motion-from" in capsys.readouterr().out


def test_demo_refuses_a_folder_that_is_not_a_checkpoint(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert dtvnet("demo", "--checkpoint", tmp_path, "--out", tmp_path / "demo") == 2
    assert "is not a dtvnet checkpoint folder" in capsys.readouterr().err


def test_generate_crf_sets_the_video_quality(tiny_artifacts, photo: Path, tmp_path: Path, capsys):
    artifact = tiny_artifacts[1]
    sizes = {}
    for crf in (5, 45):
        out = tmp_path / f"crf{crf}.webm"
        assert dtvnet("generate", photo, "--artifact", artifact, "--out", out, "--seed", 1, "--crf", crf) == 0
        assert len(read_mp4(out)) == 8
        sizes[crf] = out.stat().st_size
    assert sizes[5] > sizes[45]
    capsys.readouterr()
    assert dtvnet("generate", photo, "--artifact", artifact, "--out", tmp_path / "o.mp4", "--crf", 52) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --crf 52 is outside the mp4 encoder's range; give 0 (best) to 51 (smallest)."
    assert not (tmp_path / "o.mp4").exists()
    assert dtvnet("demo", "--out", tmp_path / "demo", "--crf", -1) == 2  # refused before any work
    assert "--crf -1 is outside the mp4 encoder's range" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_ctrl_c_keeps_a_playable_partial_video_that_a_complete_run_replaces(
    tiny_artifacts, photo: Path, tmp_path: Path
):
    """Issue 24: a long render stopped by Ctrl-C keeps the frames made so far, finalized, under a name
    that says it is partial; the next complete run replaces it."""
    script = str(Path(sys.executable).with_name("dtvnet"))
    out = tmp_path / "long.mp4"
    args = [script, "generate", str(photo), "--artifact", str(tiny_artifacts[1]), "--out", str(out)]
    render = subprocess.Popen([*args, "--clips", "100000"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size for p in tmp_path.glob(".long.mp4.tmp-*")):  # frames are going in
        assert render.poll() is None and time.monotonic() < deadline, render.communicate()
        time.sleep(0.1)
    render.send_signal(signal.SIGINT)
    _, stderr = render.communicate(timeout=60)
    assert render.returncode == 130, stderr
    partial = tmp_path / "long.partial.mp4"
    said = [line for line in stderr.splitlines() if line.startswith("stopped: ")]
    assert said and said[0].endswith(f"so far are in {partial} (a complete run replaces it)"), stderr
    frames = int(said[0].split()[2])
    assert frames > 0 and len(read_mp4(partial)) == frames
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.partial.mp4"]  # no temporary left
    done = subprocess.run([*args, "--clips", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"] and len(read_mp4(out)) == 15
