"""The motion bound: every entry of a given motion vector within +-MAX_MOTION_ABS (the model was trained
on N(0, I) vectors); beyond it the runtime and the CLI refuse with one sentence, inside it nothing changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dtvnet import cli
from runtime import Generator
from runtime.errors import MotionError
from runtime.motion import MAX_MOTION_ABS, check_vector, read_vector_file, seeded_vector

BEYOND = "beyond the 1000 this model accepts"


@pytest.mark.parametrize("value", [1e30, -1e30, MAX_MOTION_ABS * (1 + 1e-9), -1000.5, 3.0e38])
def test_entries_beyond_the_bound_are_refused(value: float):
    vector = np.zeros(8)
    vector[5] = value
    with pytest.raises(MotionError, match=f"The motion vector has an entry of magnitude .*{BEYOND}"):
        check_vector(vector, 8)


def test_vectors_inside_the_bound_pass_unchanged():
    edge = np.array([MAX_MOTION_ABS, -MAX_MOTION_ABS, 0.0, 1e-3], dtype=np.float64)
    assert np.array_equal(check_vector(edge, 4), edge.astype(np.float32))
    normal = seeded_vector(3, 512)
    assert np.array_equal(check_vector(normal, 512), normal)


def test_a_vector_file_beyond_the_bound_is_refused(tmp_path: Path):
    np.save(tmp_path / "z.npy", np.full(16, 1e30))
    with pytest.raises(MotionError, match=f"in '{tmp_path / 'z.npy'}' has an entry .*{BEYOND}"):
        read_vector_file(tmp_path / "z.npy", 16)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    return path


def test_generator_refuses_huge_motion_and_runs_the_bound(tiny_artifacts, photo: Path):
    with Generator(tiny_artifacts[1], backend="onnxruntime", device="cpu") as gen:
        huge = np.full(gen.motion_dim, 1e30, dtype=np.float32)
        with pytest.raises(MotionError, match=BEYOND):
            next(gen.run(photo, motion=huge))
        with pytest.raises(MotionError, match=f"Motion 1 has an entry .*{BEYOND}"):
            list(gen.run_many([photo, photo], motion=lambda i: huge * i))
        at_bound = np.full(gen.motion_dim, MAX_MOTION_ABS, dtype=np.float32)
        frames = list(gen.run(photo, motion=at_bound))
        assert len(frames) == gen.frames


def test_cli_refuses_huge_motion_in_one_line(tiny_artifacts, photo: Path, tmp_path: Path, capsys):
    motion = tmp_path / "z.npy"
    np.save(motion, np.full(32, 1e30, dtype=np.float32))
    out = tmp_path / "o.mp4"
    args = ["generate", photo, "--artifact", tiny_artifacts[1], "--out", out, "--motion-from", motion]
    assert cli.main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and BEYOND in err and str(motion) in err and "\n" not in err
    assert not out.exists()
