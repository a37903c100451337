"""Checkpoints: round trip, atomic writes, reference conversion, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runtime.errors import CheckpointError, ConfigMismatchError, OutputPathError
from tests.reference_dtvg import random_reference_state_dict, reference_forward, reference_keys
from training import checkpoint
from training.model import Generator, build_models, preset


@pytest.fixture()
def tiny_ckpt(tmp_path: Path) -> Path:
    g, o, d = build_models(preset("tiny"), seed=3)
    return checkpoint.save(
        tmp_path / "ckpt",
        preset("tiny"),
        generator=g,
        flow_encoder=o,
        discriminator=d,
        step=42,
        metadata={"note": "test"},
        training_state={"step": 42, "optimizer": {"lr": torch.tensor(0.5)}},
    )


def _outputs(g: Generator, seed: int = 0):
    cfg = g.config
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, cfg.image_size, cfg.image_size, generator=gen) * 2 - 1
    motion = torch.randn(2, cfg.motion_dim, generator=gen)
    with torch.no_grad():
        return g.eval()(image, motion)


def test_round_trip_gives_identical_outputs(tiny_ckpt: Path):
    original = build_models(preset("tiny"), seed=3)
    ckpt = checkpoint.load(tiny_ckpt)
    assert ckpt.step == 42 and ckpt.components == ["generator", "flow_encoder", "discriminator"]
    assert ckpt.config == preset("tiny") and ckpt.metadata == {"note": "test"}
    assert torch.equal(_outputs(ckpt.generator()).video, _outputs(original[0]).video)
    flows = torch.randn(2, 2, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(ckpt.flow_encoder()(flows), original[1].eval()(flows))
        video = torch.rand(2, 3, 8, 32, 32)
        assert torch.equal(ckpt.discriminator()(video), original[2].eval()(video))
    state = checkpoint.load_training_state(tiny_ckpt)
    assert state["step"] == 42 and torch.equal(state["optimizer"]["lr"], torch.tensor(0.5))


def test_load_accepts_files_inside_the_folder(tiny_ckpt: Path):
    for p in (tiny_ckpt / "config.json", tiny_ckpt / "model.safetensors"):
        assert checkpoint.load(p).path == tiny_ckpt


def test_save_is_atomic_and_replaces(tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch):
    g = Generator(preset("tiny"))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", boom)
    with pytest.raises(RuntimeError):
        checkpoint.save(tiny_ckpt, preset("tiny"), generator=g, step=99)
    monkeypatch.undo()
    assert checkpoint.load(tiny_ckpt).step == 42  # the old checkpoint is untouched
    assert not list(tiny_ckpt.parent.glob(".ckpt.tmp-*"))  # and no temporary folder is left
    checkpoint.save(tiny_ckpt, preset("tiny"), generator=g, step=99)
    assert checkpoint.load(tiny_ckpt).step == 99


def test_interrupted_swap_is_recovered(tiny_ckpt: Path):
    old = tiny_ckpt.parent / ".ckpt.old-abc"
    tiny_ckpt.rename(old)
    assert checkpoint.load(tiny_ckpt).step == 42


def test_missing_checkpoint(tmp_path: Path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope")


def test_other_configuration_is_named(tiny_ckpt: Path):
    with pytest.raises(ConfigMismatchError, match=r"image_size=32 \(expected 128\)"):
        checkpoint.load(tiny_ckpt, expect_config=preset("paper"))


def test_weights_that_do_not_fit_the_config(tiny_ckpt: Path):
    info = json.loads((tiny_ckpt / "config.json").read_text())
    info["config"]["ngf"] = 16
    (tiny_ckpt / "config.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="do not fit"):
        checkpoint.load(tiny_ckpt).generator()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"\x00garbage"), "is not a dtvnet checkpoint"),
        (lambda p: p.mkdir(), "no config.json"),
    ],
)
def test_not_a_checkpoint(tmp_path: Path, make, message):
    target = tmp_path / "thing"
    make(target)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(target)


def test_reference_file_given_to_load_suggests_convert(tmp_path: Path):
    pth = tmp_path / "DTV_G.pth"
    torch.save(random_reference_state_dict(), pth)
    with pytest.raises(CheckpointError, match="dtvnet checkpoint convert"):
        checkpoint.load(pth)


def test_damaged_weights_and_config(tiny_ckpt: Path):
    (tiny_ckpt / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        checkpoint.load(tiny_ckpt)
    (tiny_ckpt / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        checkpoint.load(tiny_ckpt)
    (tiny_ckpt / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="format tag"):
        checkpoint.load(tiny_ckpt)


def test_every_reference_key_maps_onto_the_generator():
    rows = reference_keys()
    assert len(rows) == 268
    own = Generator(preset("paper")).state_dict()
    mapped = {checkpoint.reference_key(key): shape for key, shape, _ in rows}
    assert set(mapped) == set(own)  # a bijection: nothing missing, nothing extra
    for key, shape in mapped.items():
        assert tuple(own[key].shape) == shape, key


@pytest.fixture(scope="module")
def reference_pth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = random_reference_state_dict(seed=11)
    path = tmp_path_factory.mktemp("ref") / "DTV_G.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # as saved from DataParallel
    return path, state


def test_converted_reference_matches_applying_its_weights_by_hand(reference_pth, tmp_path: Path):
    pth, state = reference_pth
    out = checkpoint.convert_reference(pth, tmp_path / "converted")
    ckpt = checkpoint.load(out)
    assert ckpt.config == preset("paper")
    assert ckpt.components == ["generator"] and ckpt.metadata["source_file"] == "DTV_G.pth"
    generator = ckpt.generator()
    gen = torch.Generator().manual_seed(5)
    image = torch.rand(2, 3, 128, 128, generator=gen) * 2 - 1
    motion = torch.randn(2, 512, generator=gen)
    with torch.no_grad():
        ours = generator(image, motion)
        video, flows = reference_forward(state, image, motion)
    torch.testing.assert_close(ours.video, video, atol=1e-5, rtol=0)
    expected_flows = flows.view(2, 32, 2, 64, 64).transpose(1, 2)
    torch.testing.assert_close(ours.flows, expected_flows, atol=1e-4, rtol=1e-4)
    assert ours.video.std() > 0.05  # a non-trivial output, so the comparison means something


def test_convert_refuses_to_overwrite_without_force(reference_pth, tmp_path: Path):
    out = checkpoint.init_checkpoint(tmp_path / "out", preset("tiny"))
    with pytest.raises(OutputPathError, match="--force"):
        checkpoint.convert_reference(reference_pth[0], out)
    checkpoint.convert_reference(reference_pth[0], out, force=True)
    assert checkpoint.read_info(out)["metadata"]["source"] == "reference DTV_G.pth"


def test_convert_rejects_foreign_and_unsafe_files(tmp_path: Path):
    missing = tmp_path / "missing.pth"
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.convert_reference(missing, tmp_path / "o1")
    foreign = tmp_path / "foreign.pth"
    torch.save({"encoder.weight": torch.zeros(3), "share.1.weight": torch.zeros(64, 3, 5, 5)}, foreign)
    with pytest.raises(CheckpointError):
        checkpoint.convert_reference(foreign, tmp_path / "o2")
    pickled_module = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), pickled_module)  # a whole pickled module: refused by weights_only
    with pytest.raises(CheckpointError, match="loaded safely"):
        checkpoint.convert_reference(pickled_module, tmp_path / "o3")
    text = tmp_path / "text.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        checkpoint.convert_reference(text, tmp_path / "o4")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtvnet.cli", *args], capture_output=True, text=True)


def test_cli_convert_and_info(reference_pth, tmp_path: Path):
    out = tmp_path / "cli_out"
    result = _cli("checkpoint", "convert", str(reference_pth[0]), str(out))
    assert result.returncode == 0, result.stderr
    info = _cli("checkpoint", "info", str(out))
    assert info.returncode == 0 and "8,336,800 values" in info.stdout


def test_cli_user_error_is_one_line_without_traceback(tmp_path: Path):
    result = _cli("checkpoint", "info", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: Checkpoint") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_init_writes_a_loadable_checkpoint(tmp_path: Path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.checkpoint",
            "init",
            str(tmp_path / "c"),
            "--preset",
            "tiny",
            "--seed",
            "4",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert checkpoint.load(tmp_path / "c").config == preset("tiny")


def test_strip_keeps_what_inference_needs(tiny_ckpt: Path, tmp_path: Path):
    out = tmp_path / "shipped"
    assert checkpoint.main(["strip", str(tiny_ckpt), str(out)]) == 0
    stripped, full = checkpoint.load(out), checkpoint.load(tiny_ckpt)
    assert stripped.components == ["generator", "flow_encoder"] and stripped.step == 42
    assert checkpoint.load_training_state(out) is None
    assert (
        stripped.metadata["note"] == "test"
        and stripped.metadata["source_weights_sha256"] == full.weights_sha256
    )
    for name in stripped.components:
        assert stripped.state[name].keys() == full.state[name].keys()
        assert all(torch.equal(v, full.state[name][k]) for k, v in stripped.state[name].items())
    assert (out / "model.safetensors").stat().st_size < (tiny_ckpt / "model.safetensors").stat().st_size
    with pytest.raises(OutputPathError):
        checkpoint.strip_checkpoint(tiny_ckpt, out)
