"""`runtime.Generator` on the tiny model: frames, seeds, batching, chaining, motion transfer, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from runtime import Generator
from runtime.errors import ArtifactError, ImageError, IntegrityError, ManifestError, MotionError
from runtime.imaging import prepare_image, to_uint8_frames
from runtime.motion import read_reference_frames, reference_flows, schedule_vector, seeded_vector
from tests.test_runtime_motion import write_video

PHOTO = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def generator(tiny_artifacts) -> Generator:
    with Generator(tiny_artifacts[1]) as gen:
        yield gen


def reference_frames(model_dir: Path, image: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """The frames straight from an ONNX Runtime session, pre/post-processed by the spec."""
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (video,) = session.run(["video"], {"image": prepare_image(image, 32)[None], "motion": motion[None]})
    return to_uint8_frames(video[0])


def test_run_yields_the_models_frames(generator: Generator, tiny_artifacts):
    frames = list(generator.run(PHOTO, seed=11))
    assert len(frames) == 8 and all(f.shape == (32, 32, 3) and f.dtype == np.uint8 for f in frames)
    expected = reference_frames(tiny_artifacts[1], PHOTO, seeded_vector(11, 32))
    assert np.array_equal(np.stack(frames), expected)
    assert generator.last_seed == 11
    assert generator.backend.name == "onnxruntime" and generator.backend.device == "CPUExecutionProvider"


def test_seeds_reproduce_and_a_fresh_seed_is_reported(generator: Generator):
    first = np.stack(list(generator.run(PHOTO)))
    seed = generator.last_seed
    assert isinstance(seed, int)
    again = np.stack(list(generator.run(PHOTO, seed=seed)))
    assert np.array_equal(first, again)
    other = np.stack(list(generator.run(PHOTO, seed=seed + 1)))
    assert not np.array_equal(first, other)


def test_every_input_kind(generator: Generator, tmp_path: Path):
    Image.fromarray(PHOTO).save(tmp_path / "photo.png")
    by_path = np.stack(list(generator.run(tmp_path / "photo.png", seed=1)))
    assert np.array_equal(by_path, np.stack(list(generator.run(str(tmp_path / "photo.png"), seed=1))))
    assert np.array_equal(by_path, np.stack(list(generator.run(Image.fromarray(PHOTO), seed=1))))
    assert np.array_equal(by_path, np.stack(list(generator.run(PHOTO, seed=1))))
    for variant in (PHOTO[:, :, 0], PHOTO.astype(np.uint16) * 257, np.dstack([PHOTO, PHOTO[:, :, :1]])):
        assert len(list(generator.run(variant, seed=1))) == 8


def test_fit_and_upscale(generator: Generator):
    assert {f.shape for f in generator.run(PHOTO, seed=1, upscale=True)} == {(48, 48, 3)}
    letterboxed = list(generator.run(PHOTO, seed=1, fit="letterbox", upscale=True))
    assert {f.shape for f in letterboxed} == {(48, 64, 3)}
    assert not np.array_equal(
        np.stack(list(generator.run(PHOTO, seed=1, fit="letterbox"))),
        np.stack(list(generator.run(PHOTO, seed=1))),
    )


def test_bad_inputs_raise_before_any_frame(generator: Generator, tmp_path: Path):
    with pytest.raises(ImageError, match="does not exist"):
        generator.run(tmp_path / "missing.jpg")
    with pytest.raises(MotionError, match=r"has shape \(31,\) but this model takes 32 numbers"):
        generator.run(PHOTO, motion=np.zeros(31))
    with pytest.raises(MotionError, match="contains NaN or infinite values"):
        generator.run(PHOTO, motion=np.full(32, np.inf))
    with pytest.raises(MotionError, match="does not exist"):
        generator.stream(PHOTO, motion=tmp_path / "missing.mp4")


def test_run_many_batches_without_mixing_samples(tiny_artifacts):
    images = [np.roll(PHOTO, 5 * i, axis=1) for i in range(7)]
    with Generator(tiny_artifacts[1], batch_size=3) as gen:
        clips = list(gen.run_many(images, seed=4))
        assert [c.index for c in clips] == list(range(7))
        for i, clip in enumerate(clips):
            single = np.stack(list(gen.run(images[i], motion=seeded_vector(4, 32, i))))
            assert clip.frames.shape == (8, 32, 32, 3) and clip.seed == 4
            assert np.abs(clip.frames.astype(int) - single).max() <= 1  # batch size must not matter
        rows = np.stack([seeded_vector(9, 32, i) for i in range(7)])
        by_rows = list(gen.run_many(images, motion=rows))
        assert all(np.array_equal(c.motion, rows[c.index]) for c in by_rows)
        with pytest.raises(MotionError, match="has 7 rows but there are more images"):
            list(gen.run_many([*images, PHOTO], motion=rows))
        assert gen.stats.frames_generated >= 7 * 8 and gen.stats.engine_fps > 0


def test_stream_chains_clips_from_the_last_frame(generator: Generator):
    frames = list(generator.stream(PHOTO, clips=3, seed=5, transition=2))
    assert len(frames) == 8 + 2 * 7
    clip0 = np.stack(list(generator.run(PHOTO, seed=5)))
    assert np.array_equal(np.stack(frames[:8]), clip0)
    # Clip 1 is the model run on clip 0's last frame, with the interpolated motion of clip 1.
    clip1 = np.stack(list(generator.run(frames[7], motion=schedule_vector(5, 32, 1, 2))))
    assert np.array_equal(np.stack(frames[8:15]), clip1[1:])
    clip2 = np.stack(list(generator.run(frames[14], motion=seeded_vector(5, 32, 1))))  # a key vector
    assert np.array_equal(np.stack(frames[15:]), clip2[1:])


def test_endless_stream_stops_its_worker_when_dropped(generator: Generator):
    stream = generator.stream(PHOTO, seed=1)
    assert sum(1 for _, _ in zip(range(50), stream, strict=False)) == 50
    stream.close()
    deadline = time.monotonic() + 5
    while any(t.name.startswith("dtvnet-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name.startswith("dtvnet-") for t in threading.enumerate())


def test_motion_transfer_from_video_folder_and_npy(generator: Generator, tiny_artifacts, tmp_path: Path):
    video = write_video(tmp_path / "ref.mp4", 10)
    vector = generator.motion_vector(video)
    frames = read_reference_frames(video, 8)
    session = ort.InferenceSession(str(tiny_artifacts[2] / "model.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"flows": reference_flows(frames, 32)})
    assert np.allclose(vector, expected[0], atol=1e-6)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:02d}.png")
    assert np.allclose(generator.motion_vector(folder), vector, atol=1e-6)
    np.save(tmp_path / "z.npy", vector)
    by_npy = np.stack(list(generator.run(PHOTO, motion=tmp_path / "z.npy")))
    assert np.array_equal(by_npy, np.stack(list(generator.run(PHOTO, motion=str(video)))))
    assert len(list(generator.stream(PHOTO, clips=2, motion=video))) == 15


def copy_artifact(src: Path, dst: Path, **manifest_changes) -> Path:
    shutil.copytree(src, dst)
    if manifest_changes:
        data = json.loads((dst / "manifest.json").read_text())
        data.update(manifest_changes)
        (dst / "manifest.json").write_text(json.dumps(data))
    return dst


def test_artifact_errors(tiny_artifacts, tmp_path: Path):
    _, gen_dir, ofe_dir = tiny_artifacts
    edited = copy_artifact(gen_dir, tmp_path / "edited")
    with open(edited / "model.onnx", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00")
    with pytest.raises(IntegrityError, match=r"does not match its manifest .* re-export it"):
        Generator(edited)
    bare = copy_artifact(gen_dir, tmp_path / "bare")
    (bare / "manifest.json").unlink()
    with pytest.raises(ManifestError, match=r"No manifest.json beside"):
        Generator(bare / "model.onnx")
    with pytest.raises(ArtifactError, match="is a flow encoder artifact, not a generator"):
        Generator(ofe_dir)
    wrong = copy_artifact(gen_dir, tmp_path / "fp16", precision="fp16")
    with pytest.raises(ManifestError, match="holds fp32 weights but its manifest says fp16"):
        Generator(wrong)
    limited = copy_artifact(gen_dir, tmp_path / "limited", batch={"min": 1, "opt": 2, "max": 2})
    assert Generator(limited).batch_size == 2
    with pytest.raises(ArtifactError, match="takes batches of at most 2, not 3"):
        Generator(limited, batch_size=3)
    alone = copy_artifact(gen_dir, tmp_path / "alone" / "onnx-fp32", companions={})
    with pytest.raises(MotionError, match="has no flow encoder, so it cannot transfer motion"):
        Generator(alone).run(PHOTO, motion=write_video(tmp_path / "ref.mp4", 10))


def test_checkpoint_runs_on_pytorch_like_its_export(tiny_artifacts, generator: Generator, tmp_path: Path):
    ckpt = tiny_artifacts[0]
    with Generator(ckpt) as torch_gen:
        assert torch_gen.backend.name == "torch"
        frames = np.stack(list(torch_gen.run(PHOTO, seed=2))).astype(int)
        assert np.abs(frames - np.stack(list(generator.run(PHOTO, seed=2)))).max() <= 1
        video = write_video(tmp_path / "ref.mp4", 10)
        assert np.allclose(torch_gen.motion_vector(video), generator.motion_vector(video), atol=1e-4)
    damaged = tmp_path / "ckpt"
    shutil.copytree(ckpt, damaged)
    with open(damaged / "model.safetensors", "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x01\x02\x03\x04")
    with pytest.raises(IntegrityError, match=r"model.safetensors' does not match its manifest"):
        Generator(damaged)


def test_stats_are_per_instance(tiny_artifacts):
    with Generator(tiny_artifacts[1]) as a, Generator(tiny_artifacts[1]) as b:
        list(a.run(PHOTO, seed=1))
        assert a.stats.frames_delivered == 8 and a.stats.frames_generated == 8
        assert a.stats.end_to_end_fps > 0 and a.stats.first_frame_seconds is not None
        assert b.stats.frames_delivered == 0 and b.stats.engine_fps == 0.0
        assert "frames/s end-to-end" in str(a.stats)


def test_onnx_path_never_imports_torch(tiny_artifacts, tmp_path: Path):
    video = write_video(tmp_path / "ref.mp4", 10)
    code = (
        "import sys, numpy as np\n"
        "from runtime import Generator\n"
        "g = Generator(sys.argv[1])\n"
        "image = np.zeros((40, 50, 3), np.uint8)\n"
        "n = len(list(g.run(image, seed=1))) + len(list(g.stream(image, clips=2, motion=sys.argv[2])))\n"
        "n += sum(len(c.frames) for c in g.run_many([image, image]))\n"
        "assert n == 8 + 15 + 16, n\n"
        "sys.exit(3 if 'torch' in sys.modules else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tiny_artifacts[1]), str(video)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def rss_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    import resource

    return pages * resource.getpagesize()


@pytest.mark.slow
def test_memory_stays_flat_over_10000_frames(generator: Generator):
    stream = generator.stream(PHOTO, seed=0, transition=3)
    tracemalloc.start()
    try:
        for i, frame in enumerate(stream):  # noqa: B007 (the last frame is checked below)
            if i == 1_000:
                traced_start, rss_start = tracemalloc.get_traced_memory()[0], rss_bytes()
            if i == 10_000:
                traced_end, rss_end = tracemalloc.get_traced_memory()[0], rss_bytes()
                break
    finally:
        stream.close()
        tracemalloc.stop()
    assert frame.shape == (32, 32, 3)
    assert traced_end - traced_start < 256 * 1024  # Python/numpy allocations still alive
    if rss_start is not None and rss_end is not None:
        assert rss_end - rss_start < 32 * 2**20  # everything else, ONNX Runtime included


def test_resized_and_hd_frames_are_rendered_beside_the_caller(generator: Generator, monkeypatch):
    """HD rendering costs about as much CPU per frame as encoding it: it runs in a thread of its own, so
    that a caller encoding the frames overlaps the two; at the model's size nothing is added."""
    from runtime import generator as generator_module

    where: list[str] = []
    real = generator_module._render

    def spy(*args, **kwargs):
        where.append(threading.current_thread().name)
        yield from real(*args, **kwargs)

    monkeypatch.setattr(generator_module, "_render", spy)
    image = np.full((40, 40, 3), 90, np.uint8)
    side = 2 * generator.image_size
    cases = [(None, None, "MainThread"), (side, "resize", "dtvnet-render"), (side, "guided", "dtvnet-render")]
    for size, render, thread in cases:
        where.clear()
        frames = list(generator.run(image, seed=1, size=size, render=render))
        assert len(frames) == generator.frames and where == [thread], (size, render)
        clips = list(generator.run_many([image, image], seed=1, size=size, render=render))
        assert [c.frames.shape[0] for c in clips] == [generator.frames] * 2 and set(where) == {thread}
        assert (
            len(list(generator.stream(image, clips=2, seed=1, size=size, render=render)))
            == 2 * generator.frames - 1
        )
        assert set(where) == {thread}
