"""The triton backend against a fake KServe v2 server (tests/fake_triton.py) on 127.0.0.1 that serves the
repository export.triton writes with ONNX Runtime: real tritonclient requests and responses (binary
tensors), the same frames as the local runtime, the same writers, and one-sentence errors."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dtvnet import cli
from export import triton
from runtime import Generator
from runtime.backends.triton import parse_url
from runtime.errors import ArtifactError, BackendUnavailableError, ManifestError, MotionError
from tests.fake_triton import FakeTriton
from tests.test_runtime_motion import write_video
from tests.test_runtime_writers import read_mp4

IMAGE = np.random.default_rng(7).integers(0, 256, (45, 60, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def repo(tiny_exports: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("served") / "models"
    triton.write_repository(tiny_exports, out)
    return out


@pytest.fixture(scope="module")
def server(repo: Path):
    with FakeTriton(repo) as fake:
        yield fake


@pytest.fixture(scope="module")
def local(tiny_exports: Path):
    with Generator(tiny_exports / "onnx-fp16") as generator:
        yield generator


def test_served_frames_equal_local_frames(server: FakeTriton, local: Generator):
    server.batches.clear()
    server.binary.clear()
    with Generator(server.url("dtvnet"), batch_size=4) as remote:
        assert remote.backend.name == "triton" and remote.model_path is None
        assert (remote.image_size, remote.frames, remote.motion_dim) == (local.image_size, local.frames, 32)
        assert np.array_equal(
            np.stack(list(remote.run(IMAGE, seed=3))), np.stack(list(local.run(IMAGE, seed=3)))
        )
        served = list(remote.run_many([IMAGE, IMAGE[::-1]] * 3, seed=5))
        expected = list(local.run_many([IMAGE, IMAGE[::-1]] * 3, seed=5))
        assert all(np.array_equal(a.frames, b.frames) for a, b in zip(served, expected, strict=True))
        long = np.stack(list(remote.stream(IMAGE, clips=3, seed=9)))
        assert np.array_equal(long, np.stack(list(local.stream(IMAGE, clips=3, seed=9))))
        assert remote.stats.frames_generated == (1 + 6 + 3) * local.frames
    # one request per engine call: the run, run_many's batches of 4 and 2, the stream's 3 clips
    assert server.batches == [("dtvnet", 1), ("dtvnet", 4), ("dtvnet", 2)] + [("dtvnet", 1)] * 3
    assert all(server.binary)  # tensors as raw bytes (Triton's binary extension), not JSON numbers


def test_manifest_and_batch_limits_come_from_the_server(server: FakeTriton, repo: Path):
    with Generator(server.url("dtvnet")) as remote:
        served = remote.manifest
        on_disk = (repo / "dtvnet" / "1" / "manifest.json").read_text()
        assert served.model_sha256 in on_disk and served.precision == "fp16"
        assert served.batch == {"min": 1, "opt": 8, "max": 8}  # the repository's default 1,4,8 profile
        assert remote.batch_size == 8 and remote.backend.max_batch == 8
        assert served.has_flows  # the client asks for every output the manifest declares
        out = remote.backend.run({"image": np.zeros((2, 3, 32, 32)), "motion": np.zeros((2, 32))})
        assert {name: a.shape for name, a in out.items()} == {
            "video": (2, 3, 8, 32, 32),
            "flows": (2, 2, 8, 16, 16),
        }
        assert "Triton onnxruntime_onnx" in remote.backend.device and "1 x GPU" in remote.backend.device
        with pytest.raises(ArtifactError, match="at most 8, not 9"):
            Generator(server.url("dtvnet"), batch_size=9)
        with pytest.raises(BackendUnavailableError, match="batch-size must be <= 8"):  # the server's refusal
            remote.backend.run({"image": np.zeros((9, 3, 32, 32)), "motion": np.zeros((9, 32))})


def test_motion_transfer_uses_the_served_flow_encoder(server: FakeTriton, local: Generator, tmp_path: Path):
    video = write_video(tmp_path / "reference.mp4", 10)
    server.batches.clear()
    with Generator(server.url("dtvnet")) as remote:
        frames = np.stack(list(remote.run(IMAGE, motion=video)))
    assert np.array_equal(frames, np.stack(list(local.run(IMAGE, motion=video))))
    assert [model for model, _ in server.batches] == ["dtvnet_ofe", "dtvnet"]


def test_cli_writes_served_clips_with_the_same_writers(
    server: FakeTriton, tiny_exports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(IMAGE).save(photo)
    served, here = tmp_path / "served.mp4", tmp_path / "local.mp4"
    assert (
        cli.main(
            ["generate", str(photo), "--artifact", server.url("dtvnet"), "--out", str(served), "--seed", "4"]
        )
        == 0
    )
    assert "(triton, Triton onnxruntime_onnx" in capsys.readouterr().out
    assert (
        cli.main(
            [
                "generate",
                str(photo),
                "--artifact",
                str(tiny_exports / "onnx-fp16"),
                "--out",
                str(here),
                "--seed",
                "4",
            ]
        )
        == 0
    )
    assert np.array_equal(read_mp4(served), read_mp4(here))


def test_batch_generation_through_the_server(server: FakeTriton, tiny_exports: Path, tmp_path: Path):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):
        Image.fromarray(np.roll(IMAGE, 7 * i, axis=1)).save(photos / f"{i}.png")
    served, here = tmp_path / "served", tmp_path / "local"
    common = ["--images", str(photos), "--seed", "2", "--format", "gif", "--batch-size", "2"]
    assert cli.main(["generate", *common, "--artifact", server.url("dtvnet"), "--out", str(served)]) == 0
    assert (
        cli.main(["generate", *common, "--artifact", str(tiny_exports / "onnx-fp16"), "--out", str(here)])
        == 0
    )
    for i in range(5):
        a, b = Image.open(served / f"{i}.gif"), Image.open(here / f"{i}.gif")
        assert a.n_frames == b.n_frames == 8
        for t in range(8):
            a.seek(t), b.seek(t)
            assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def test_url_forms():
    model = parse_url("https://gpu-box:8443/triton/v2/models/dtvnet_trt/versions/2/")
    assert (model.ssl, model.address, model.model, model.version) == (
        True,
        "gpu-box:8443/triton",
        "dtvnet_trt",
        "2",
    )
    assert parse_url("http://127.0.0.1:8000/models/dtvnet").url == "http://127.0.0.1:8000/v2/models/dtvnet"
    with pytest.raises(ArtifactError, match=r"write it as http://HOST:PORT/v2/models/NAME"):
        parse_url("http://127.0.0.1:8000/dtvnet")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_errors_are_one_sentence(server: FakeTriton, repo: Path, tmp_path: Path, tiny_exports: Path):
    with pytest.raises(BackendUnavailableError, match=r"Cannot reach the Triton server .* start it"):
        Generator(f"http://127.0.0.1:{free_port()}/v2/models/dtvnet")
    with pytest.raises(ArtifactError, match="has no ready model 'nope'"):
        Generator(server.url("nope"))
    with pytest.raises(ArtifactError, match="flow encoder artifact, not a generator"):
        Generator(server.url("dtvnet_ofe"))
    with pytest.raises(BackendUnavailableError, match="drop the device argument"):
        Generator(server.url("dtvnet"), device="cuda")
    with pytest.raises(BackendUnavailableError, match="pass the model's URL"):
        Generator(tiny_exports / "onnx-fp16", backend="triton")

    edited = tmp_path / "edited"
    shutil.copytree(repo, edited)
    config = edited / "dtvnet" / "config.pbtxt"
    text = config.read_text()
    config.write_text(text.replace("dims: [3, 8, 32, 32]", "dims: [3, 9, 32, 32]"))  # hand-edited frames
    (edited / "plain").mkdir()
    shutil.copytree(repo / "dtvnet" / "1", edited / "plain" / "1")
    without = re.sub(r"parameters \[.*\]\n", "", text, flags=re.S).replace('name: "dtvnet"', 'name: "plain"')
    (edited / "plain" / "config.pbtxt").write_text(without)
    shutil.rmtree(edited / "dtvnet_ofe")
    with FakeTriton(edited) as other:
        with pytest.raises(ManifestError, match=r"has output 'video' of shape .* re-export"):
            Generator(other.url("dtvnet"))
        with pytest.raises(ManifestError, match="no dtvnet_manifest parameter"):
            Generator(other.url("plain"))
        config.write_text(text.replace('"dtvnet_ofe"', '"missing_ofe"'))
    with (
        FakeTriton(edited) as other,
        Generator(other.url("dtvnet")) as remote,
        pytest.raises(ArtifactError, match="no ready model 'missing_ofe'"),
    ):
        remote.run(IMAGE, motion=write_video(tmp_path / "ref.mp4", 10))


def test_no_flow_encoder_on_the_server(tiny_exports: Path, tmp_path: Path):
    exports = tmp_path / "exports"
    shutil.copytree(tiny_exports, exports)
    shutil.rmtree(exports / "ofe-fp32")
    triton.write_repository(exports, tmp_path / "models")
    with (
        FakeTriton(tmp_path / "models") as server,
        Generator(server.url("dtvnet")) as remote,
        pytest.raises(MotionError, match="no flow encoder on its server"),
    ):
        remote.run(IMAGE, motion=write_video(tmp_path / "ref.mp4", 10))


def test_client_path_does_not_import_torch(server: FakeTriton):
    code = (
        "import sys; import numpy as np; from runtime import Generator; "
        f"g = Generator({server.url('dtvnet')!r}); "
        "frames = list(g.run(np.zeros((40, 40, 3), np.uint8), seed=1)); "
        "sys.exit(1 if 'torch' in sys.modules or len(frames) != g.frames else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
