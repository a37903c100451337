"""`dtvnet generate --images DIR --out DIR`: clips equal to run_many's, bad images skipped and reported,
and a job interrupted mid-write resumes to exactly the outputs of an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dtvnet import cli
from runtime import Generator, batch
from runtime.motion import seeded_vector
from runtime.writers import open_writer
from tests.test_runtime_writers import read_mp4


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Nine photos (three in a subfolder), one file that only looks like an image, one non-image."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(9):
        size = (40 + 4 * i, 56, 3)
        path = folder / ("sub" if i % 3 == 0 else "") / f"p{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("not an image, ignored")
    (folder / ".hidden.png").write_bytes(b"hidden, ignored")
    return folder


def generate(*args: object) -> int:
    return cli.main(["generate", *map(str, args)])


def outputs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_clips_follow_the_sorted_list_and_bad_images_are_skipped(
    photos: Path, tiny_artifacts, tmp_path: Path, capsys
):
    artifact, out = tiny_artifacts[1], tmp_path / "clips"
    assert (
        generate("--images", photos, "--out", out, "--artifact", artifact, "--seed", 5, "--format", "frames")
        == 1
    )
    captured = capsys.readouterr()
    assert "9 clip(s) written" in captured.out and "1 failed, of 10 image(s)" in captured.out
    assert "failed: " in captured.err and "broken.jpg" in captured.err
    images = batch.find_images(photos, out)
    assert [p.relative_to(photos).as_posix() for p in images] == [
        "broken.jpg", "p1.png", "p2.jpg", "p4.jpg", "p5.png", "p7.png", "p8.jpg", "sub/p0.jpg", "sub/p3.png",
        "sub/p6.jpg",
    ]  # fmt: skip
    with Generator(artifact) as generator:  # image k of the sorted list gets vector k of the seed
        for k, path in enumerate(images[1:], start=1):
            folder = out / path.relative_to(photos).with_suffix("")
            frames = np.stack([np.asarray(Image.open(f)) for f in sorted(folder.glob("*.png"))])
            vector = seeded_vector(5, generator.motion_dim, k)
            assert np.array_equal(frames, np.stack(list(generator.run(path, motion=vector)))), path


def test_interrupted_job_resumes_to_the_uninterrupted_result(
    photos: Path, tiny_artifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    artifact = tiny_artifacts[1]
    (photos / "broken.jpg").unlink()
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert generate("--images", photos, "--out", whole, "--artifact", artifact, "--seed", 11) == 0

    real, calls = batch.write_frames, []

    def killed_on_the_fourth(frames: np.ndarray, path: Path, fps: float) -> Path:
        calls.append(path)
        if len(calls) == 4:  # dies with three frames of the fourth clip written
            with open_writer(path, fps) as writer:
                for frame in frames[:3]:
                    writer.write(frame)
                raise KeyboardInterrupt
        return real(frames, path, fps)

    monkeypatch.setattr(batch, "write_frames", killed_on_the_fourth)
    assert generate("--images", photos, "--out", resumed, "--artifact", artifact, "--seed", 11) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    finished = [p for p in resumed.rglob("*.mp4")]
    assert len(finished) == 3 and not calls[3].exists()  # the half-written clip never got its name
    assert not list(resumed.rglob(".*.tmp-*"))  # and its temporary file is gone
    (calls[3].parent / f".{calls[3].name}.tmp-killed.mp4").write_bytes(b"as a SIGKILL would leave it")

    monkeypatch.setattr(batch, "write_frames", real)
    assert generate("--images", photos, "--out", resumed, "--artifact", artifact) == 0  # no --seed: kept
    printed = capsys.readouterr().out
    assert "6 clip(s) written" in printed and "3 already finished" in printed and "seed 11" in printed
    assert outputs(resumed) == outputs(whole)
    for name in outputs(whole):
        if name.endswith(".mp4"):
            assert np.array_equal(read_mp4(resumed / name), read_mp4(whole / name)), name

    assert generate("--images", photos, "--out", resumed, "--artifact", artifact, "--seed", 12) == 2
    assert "other settings: seed 11 (now 12)" in capsys.readouterr().err
    assert (
        generate("--images", photos, "--out", resumed, "--artifact", artifact, "--seed", 12, "--force") == 0
    )
    assert "9 clip(s) written" in capsys.readouterr().out


def test_the_same_job_writes_the_same_files(
    photos: Path, tiny_artifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Byte for byte, eight times in one process, each clip decoded as soon as it is written: x264's
    AVX-512 kernels broke this for 32 px clips (2 to 9 of 36 differed; see
    runtime.writers.x264_cpu_option), which made resumed jobs differ at random."""
    (photos / "broken.jpg").unlink()
    real, decoded = batch.write_frames, {}

    def write_then_decode(frames: np.ndarray, path: Path, fps: float) -> Path:
        written = real(frames, path, fps)
        decoded[written] = np.stack(read_mp4(written))
        return written

    monkeypatch.setattr(batch, "write_frames", write_then_decode)
    jobs = [tmp_path / f"job{k}" for k in range(8)]
    for out in jobs:
        assert generate("--images", photos, "--out", out, "--artifact", tiny_artifacts[1], "--seed", 11) == 0
    names = [name for name in outputs(jobs[0]) if name.endswith(".mp4")]
    assert len(names) == 9 and len(decoded) == 72
    for name in names:
        assert len({(out / name).read_bytes() for out in jobs}) == 1, name
        assert all(np.array_equal(decoded[out / name], decoded[jobs[0] / name]) for out in jobs), name


def test_failed_images_are_retried_when_fixed(photos: Path, tiny_artifacts, tmp_path: Path, capsys):
    out = tmp_path / "clips"
    args = ("--images", photos, "--out", out, "--artifact", tiny_artifacts[1], "--format", "gif", "--seed", 1)
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(photos / "p1.jpg")  # p1.png and p1.jpg: one p1.gif
    assert generate(*args) == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "p1.png" in err and "rename one of them" in err
    (photos / "p1.jpg").unlink()  # p1.gif (made from p1.jpg) counts as finished: outputs go by name
    Image.fromarray(np.full((30, 30, 3), 200, np.uint8)).save(photos / "broken.jpg")
    assert generate(*args) == 0
    assert "1 clip(s) written to" in capsys.readouterr().out
    assert len(outputs(out)) == 11  # ten gifs and the job's settings
    assert Image.open(out / "broken.gif").n_frames == 8


def test_argument_errors(photos: Path, tiny_artifacts, tmp_path: Path, capsys):
    artifact = tiny_artifacts[1]
    with pytest.raises(SystemExit):
        generate(photos / "p1.png", "--images", photos, "--out", tmp_path / "o", "--artifact", artifact)
    with pytest.raises(SystemExit):
        generate("--images", photos, "--out", tmp_path / "o", "--artifact", artifact, "--clips", 2)
    assert generate("--images", photos / "p1.png", "--out", tmp_path / "o", "--artifact", artifact) == 2
    assert generate("--images", photos, "--out", photos / "..", "--artifact", artifact) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "contains the images" in err
