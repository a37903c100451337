"""`Generator` above the model's size: `size=` and `render=` on run, run_many and stream, on the tiny
model (32 px, flows at 16 px): the frames' sizes, frame 0 = the photo, guided = `runtime.hd` over the
engine's own frames and flows, resize = bicubic of the model's frames, chained clips carry their HD
detail, and an artifact without flows refuses HD in one sentence. How much detail guided rendering
brings back is measured on the trained demo model by `benchmarks.hd` (tests/test_hd_render.py)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from PIL import Image

from dtvnet import cli
from runtime import Generator, hd
from runtime.errors import ArtifactError
from runtime.fsutil import sha256_file
from runtime.imaging import prepare_image, to_uint8_frames
from runtime.manifest import read_manifest, write_manifest
from runtime.motion import seeded_vector
from runtime.output_size import SizeError, photo_square
from tests.test_runtime_writers import read_mp4

# A photo with detail the 32 px model cannot hold: fine stripes over a smooth gradient.
_ys, _xs = np.mgrid[0:120, 0:160]
PHOTO = np.dstack(
    [
        (96 + 60 * np.sin(_xs / 2.0)).astype(np.uint8),
        (_ys * 2).astype(np.uint8),
        (128 + 50 * np.cos(_ys / 1.5)).astype(np.uint8),
    ]
)


@pytest.fixture(scope="module")
def generator(tiny_artifacts) -> Generator:
    with Generator(tiny_artifacts[1]) as gen:
        yield gen


def _model_outputs(generator: Generator, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's uint8 frames [T, S, S, 3] and flows [2, T, S/2, S/2] for PHOTO, from the engine."""
    out = generator.backend.run(
        {"image": prepare_image(PHOTO, generator.image_size)[None], "motion": motion[None]}
    )
    return to_uint8_frames(out["video"][0]), out["flows"][0]


def test_guided_frames_at_the_size_asked(generator: Generator) -> None:
    assert generator.has_flows
    frames = list(generator.run(PHOTO, seed=2, size=96))
    assert len(frames) == generator.frames
    assert {f.shape for f in frames} == {(96, 96, 3)} and frames[0].dtype == np.uint8
    photo = photo_square(PHOTO, 96, "crop")
    assert np.array_equal(frames[0], photo)  # frame 0 is the photo
    model, flows = _model_outputs(generator, seeded_vector(2, generator.motion_dim))
    expected = list(hd.render(photo, model, np.moveaxis(flows, 1, 0)))
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))

    resized = list(generator.run(PHOTO, seed=2, size=96, render="resize"))
    for plain, small in zip(resized, model, strict=True):
        assert np.array_equal(plain, cv2.resize(small, (96, 96), interpolation=cv2.INTER_CUBIC))


def test_letterbox_input_size_and_upscale_alias(generator: Generator) -> None:
    boxed = list(generator.run(PHOTO, seed=2, size=100, fit="letterbox"))
    assert {f.shape for f in boxed} == {(75, 100, 3)}  # 120x160 with its long side at 100
    own = list(generator.run(PHOTO, seed=2, size="input"))
    assert {f.shape for f in own} == {(120, 120, 3)}
    alias = list(generator.run(PHOTO, seed=2, upscale=True))
    assert all(np.array_equal(a, b) for a, b in zip(own, alias, strict=True))
    small = list(generator.run(PHOTO, seed=2, size=16))  # below the model: area-averaged, no flows needed
    assert {f.shape for f in small} == {(16, 16, 3)}


def test_run_many_and_stream_in_hd(generator: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    clips = list(generator.run_many([PHOTO, PHOTO[:, ::-1]], seed=4, size=64))
    assert [c.frames.shape for c in clips] == [(8, 64, 64, 3)] * 2
    single = np.stack(list(generator.run(PHOTO, motion=clips[0].motion, size=64)))
    assert np.array_equal(clips[0].frames, single)

    photos: list[np.ndarray] = []
    render = hd.render

    def spy(photo: np.ndarray, *args: object, **kwargs: object):
        photos.append(photo.copy())
        return render(photo, *args, **kwargs)

    monkeypatch.setattr(hd, "render", spy)
    chained = list(generator.stream(PHOTO, clips=3, seed=5, size=64))
    assert len(chained) == 8 + 7 + 7 and {f.shape for f in chained} == {(64, 64, 3)}
    assert np.array_equal(chained[0], photo_square(PHOTO, 64, "crop"))
    # Each clip after the first takes its detail from the last HD frame of the one before.
    assert len(photos) == 3
    assert np.array_equal(photos[1], chained[7]) and np.array_equal(photos[2], chained[14])


@pytest.mark.parametrize("size", [0, -1, 16385, "huge", 64.0])
def test_bad_sizes_raise_before_any_work(generator: Generator, size: object) -> None:
    with pytest.raises(SizeError):
        generator.run(PHOTO, seed=1, size=size)  # type: ignore[arg-type]
    with pytest.raises(SizeError, match="pass one of them"):
        generator.run(PHOTO, seed=1, size=64, upscale=True)
    with pytest.raises(SizeError, match="render mode"):
        generator.run(PHOTO, seed=1, size=64, render="sharp")  # type: ignore[arg-type]


def _without_flows(artifact: Path, out: Path) -> Path:
    """The artifact as exported before flows were part of it: `video` its only output."""
    shutil.copytree(artifact, out)
    model = onnx.load(str(out / "model.onnx"))
    keep = [o for o in model.graph.output if o.name != "flows"]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    onnx.save(model, str(out / "model.onnx"))
    manifest = read_manifest(out / "manifest.json")
    outputs = [o for o in manifest.outputs if o.name != "flows"]
    write_manifest(
        out, dataclasses.replace(manifest, outputs=outputs, model_sha256=sha256_file(out / "model.onnx"))
    )
    return out


def test_an_artifact_without_flows_runs_at_model_size_and_refuses_hd(tiny_artifacts, tmp_path: Path) -> None:
    old = _without_flows(tiny_artifacts[1], tmp_path / "old")
    with Generator(old) as gen:
        assert not gen.has_flows
        assert {f.shape for f in gen.run(PHOTO, seed=1)} == {(32, 32, 3)}
        assert {f.shape for f in gen.run(PHOTO, seed=1, size=64, render="resize")} == {(64, 64, 3)}
        for call in (
            lambda: gen.run(PHOTO, seed=1, size=64),
            lambda: gen.run(PHOTO, seed=1, size=16, render="guided"),
            lambda: gen.run_many([PHOTO], seed=1, size=512),
            lambda: gen.stream(PHOTO, clips=1, seed=1, size=64),
        ):
            with pytest.raises(ArtifactError, match="exported before flows") as caught:
                call()
            assert "re-export" in str(caught.value)
        with pytest.raises(ArtifactError, match="exported before flows"):
            gen.run(PHOTO, seed=1, size="input")  # known once the photo is read, still before any frame


def test_generate_command_in_hd(tiny_artifacts, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "photo.png"
    Image.fromarray(PHOTO).save(photo)
    out = tmp_path / "hd.mp4"
    args = ["generate", str(photo), "--artifact", str(tiny_artifacts[1]), "--seed", "3"]
    assert cli.main([*args, "--out", str(out), "--size", "96"]) == 0
    frames = read_mp4(out)
    assert len(frames) == 8 and frames[0].shape == (96, 96, 3)
    folder = tmp_path / "frames"
    assert cli.main([*args, "--out", str(folder), "--size", "input", "--render", "resize"]) == 0
    assert Image.open(folder / "frame_00007.png").size == (120, 120)
    capsys.readouterr()
    for bad, said in (("0", "outside 1..16384"), ("-3", "outside 1..16384"), ("1e3", "not a number")):
        with pytest.raises(SystemExit) as exited:
            cli.main([*args, "--out", str(tmp_path / "bad.mp4"), "--size", bad])
        assert exited.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "bad.mp4").exists()
