"""Nothing a user made is deleted by surprise: --force replaces only a folder of the kind the command
itself writes (runtime.fsutil.refuse_overwrite), every refusal is one sentence saying what is there, and a
refused command leaves everything as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dtvnet import cli
from runtime import fsutil, manifest
from runtime.errors import OutputPathError
from training import checkpoint as ckpt_io
from training import train as train_mod
from training.data import synth
from training.model import preset


def dtvnet(*args: object) -> int:
    return cli.main([str(a) for a in args])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: what a refused command must leave untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def training_run(tmp_path: Path) -> Path:
    """A folder laid out as `dtvnet train` and `dtvnet evaluate --out RUN/eval` leave it."""
    run = tmp_path / "runs" / "tiny"
    ckpt_io.init_checkpoint(run / train_mod.CHECKPOINTS_DIR / "step_00000060", preset("tiny"), seed=0)
    (run / train_mod.CONFIG_FILE).write_text(json.dumps({"data": "data/synth"}))
    (run / train_mod.LATEST_FILE).write_text("checkpoints/step_00000060\n")
    (run / train_mod.METRICS_FILE).write_text("step,wall_s\n1,0.1\n")
    (run / train_mod.TENSORBOARD_DIR).mkdir()
    (run / train_mod.TENSORBOARD_DIR / "events.out.tfevents.1").write_bytes(b"\0")
    (run / "eval").mkdir()
    (run / "eval" / "eval.md").write_text("| PSNR |\n")
    return run


def test_checkpoint_init_force_refuses_a_training_run(training_run: Path, capsys):
    before = snapshot(training_run)
    assert dtvnet("checkpoint", "init", training_run, "--preset", "tiny", "--seed", 0, "--force") == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"{str(training_run)!r} holds a training run (checkpoints/, eval/, latest, metrics.csv ...)" in err
    assert "--force only replaces a checkpoint folder; pick another path or delete it yourself." in err
    assert snapshot(training_run) == before


@pytest.mark.parametrize("command", ["strip", "convert"])
def test_checkpoint_strip_and_convert_refuse_a_training_run(
    training_run: Path, tmp_path: Path, capsys, command: str
):
    source = training_run / "checkpoints" / "step_00000060"
    if command == "convert":
        source = tmp_path / "DTV_G.pth"
        source.write_bytes(b"not read: the refusal comes first")
    before = snapshot(training_run)
    assert dtvnet("checkpoint", command, source, training_run, "--force") == 2
    assert "holds a training run" in capsys.readouterr().err and snapshot(training_run) == before


def test_checkpoint_force_replaces_only_a_checkpoint_folder(tmp_path: Path, capsys):
    ckpt = tmp_path / "ckpt"
    assert dtvnet("checkpoint", "init", ckpt, "--preset", "tiny", "--seed", 0) == 0
    first = (ckpt / "model.safetensors").read_bytes()
    assert dtvnet("checkpoint", "init", ckpt, "--preset", "tiny", "--seed", 0) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert dtvnet("checkpoint", "init", ckpt, "--preset", "tiny", "--seed", 1, "--force") == 0
    assert capsys.readouterr().out == f"wrote {ckpt}\n" and (ckpt / "model.safetensors").read_bytes() != first
    (ckpt / "notes.txt").write_text("mine")  # a checkpoint folder with a file of the user's is no longer ours
    assert dtvnet("checkpoint", "init", ckpt, "--preset", "tiny", "--force") == 2
    assert "holds files of its own (config.json, model.safetensors, notes.txt)" in capsys.readouterr().err
    assert (ckpt / "notes.txt").read_text() == "mine"


def test_an_empty_folder_is_written_and_a_file_is_refused(tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    assert dtvnet("checkpoint", "init", tmp_path / "empty", "--preset", "tiny") == 0
    (tmp_path / "file").write_text("mine")
    assert dtvnet("checkpoint", "init", tmp_path / "file", "--preset", "tiny", "--force") == 2
    assert "is a file, not a checkpoint folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine"


def test_a_link_to_a_checkpoint_folder_is_not_replaced(tmp_path: Path, capsys):
    ckpt = ckpt_io.init_checkpoint(tmp_path / "ckpt", preset("tiny"))
    (tmp_path / "link").symlink_to(ckpt, target_is_directory=True)
    assert dtvnet("checkpoint", "init", tmp_path / "link", "--preset", "tiny", "--force") == 2
    assert "is a symbolic link, not a checkpoint folder" in capsys.readouterr().err
    assert (tmp_path / "link").is_symlink()


def test_data_synth_force_replaces_only_a_data_set(tmp_path: Path, capsys):
    data = tmp_path / "data"
    args = ("data", "synth", "--out", data, "--clips", 1, "--test-clips", 1, "--frames", 2, "--size", 8)
    assert dtvnet(*args) == 0
    (data / ".flowcache").mkdir()  # training caches flows beside the data: still a data set
    assert dtvnet(*args, "--seed", 1, "--force") == 0
    assert json.loads((data / "synth.json").read_text())["seed"] == 1
    ckpt = ckpt_io.init_checkpoint(tmp_path / "ckpt", preset("tiny"))
    before = snapshot(ckpt)
    assert dtvnet("data", "synth", "--out", ckpt, "--clips", 1, "--force") == 2
    assert "holds a checkpoint folder" in capsys.readouterr().err and snapshot(ckpt) == before


def test_export_force_refuses_a_folder_that_is_not_an_artifact(tmp_path: Path, capsys):
    from export.pipeline import export_all

    ckpt = ckpt_io.init_checkpoint(tmp_path / "ckpt", preset("tiny"))
    mine = tmp_path / "exports" / "onnx-fp32"
    mine.mkdir(parents=True)
    (mine / "photo.jpg").write_bytes(b"mine")
    with pytest.raises(OutputPathError, match=r"holds files of its own .*only replaces an artifact folder"):
        export_all(ckpt, tmp_path / "exports", engine="skip", force=True)
    assert snapshot(mine) == {"photo.jpg": b"mine"}


def test_train_force_replaces_only_a_training_run(tmp_path: Path):
    ckpt = ckpt_io.init_checkpoint(tmp_path / "ckpt", preset("tiny"))
    before = snapshot(ckpt)
    config = train_mod.TrainConfig(data=str(tmp_path / "data"), preset="tiny", batch=2, steps=1)
    with pytest.raises(OutputPathError, match=r"holds a checkpoint folder .*only replaces a training run"):
        train_mod.check_run(config, ckpt, resume=False, force=True)
    assert snapshot(ckpt) == before


def test_train_with_missing_data_creates_nothing(tmp_path: Path, capsys):
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        tmp_path / "nope",
        "--out",
        run,
        "--preset",
        "tiny",
        "--batch",
        2,
        "--steps",
        1,
    ]
    assert dtvnet(*args) == 2
    assert "nope" in capsys.readouterr().err and not run.exists()
    assert dtvnet(*args) == 2  # the retry fails for the same reason, not because of the first attempt
    assert "already exists" not in capsys.readouterr().err and not run.exists()


def test_a_run_that_never_started_is_replaced_by_a_plain_retry(tmp_path: Path):
    """A start that fails after the run folder exists (a data file that cannot be decoded, say) leaves only
    train_config.json; a plain start replaces it, while a run with checkpoints needs --force."""
    run = tmp_path / "run"
    config = train_mod.TrainConfig(data=str(tmp_path / "data"), preset="tiny", batch=2, steps=1)
    train_mod.create_run(train_mod.TrainConfig(data="old", preset="tiny", batch=2, steps=1), run)
    assert train_mod.check_run(config, run, resume=False, force=False) == config
    (run / train_mod.METRICS_FILE).write_text("step\n")
    with pytest.raises(OutputPathError, match="already exists; pass --resume"):
        train_mod.check_run(config, run, resume=False, force=False)


def test_generate_frames_folder_force_replaces_only_frames(tmp_path: Path):
    from runtime.generate import check_outputs

    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_00000.png").write_bytes(b"png")
    with pytest.raises(OutputPathError, match="already exists; pass --force"):
        check_outputs(frames, None, force=False)
    check_outputs(frames, None, force=True)
    (frames / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="only replaces a folder of frames"):
        check_outputs(frames, None, force=True)
    with pytest.raises(OutputPathError, match=r"is a folder holding files of its own \(frames/\)"):
        fsutil.refuse_overwrite(tmp_path, True)  # a file output never replaces a folder


def test_demo_refuses_its_earlier_outputs_without_force(tmp_path: Path, capsys, monkeypatch):
    def no_export(checkpoint):
        raise AssertionError("the refusal comes before any work")

    monkeypatch.setattr("dtvnet.demo.demo_artifact", no_export)
    ckpt = ckpt_io.init_checkpoint(tmp_path / "ckpt", preset("tiny"))
    out = tmp_path / "demo"
    (out / "scene").mkdir(parents=True)
    (out / "timelapse.mp4").write_bytes(b"earlier run")
    (out / "scene" / "notes.txt").write_text("mine")
    before = snapshot(out)
    assert dtvnet("demo", "--checkpoint", ckpt, "--out", out) == 2
    err = capsys.readouterr().err
    assert f"{str(out)!r} already holds the demo's timelapse.mp4, scene; pass --force to replace them" in err
    assert dtvnet("demo", "--checkpoint", ckpt, "--out", out, "--force") == 2  # scene/ is not its frames
    assert "only replaces a folder of frames" in capsys.readouterr().err and snapshot(out) == before


def test_every_exported_artifact_is_an_artifact_folder(tiny_exports: Path):
    """`dtvnet export --force` may replace each artifact it wrote (none looks like another kind)."""
    folders = sorted(p for p in tiny_exports.iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["ofe-fp32", "onnx-fp16", "onnx-fp32"]
    for folder in folders:
        assert fsutil.describe_folder(folder).startswith("an artifact folder (manifest.json, model.onnx")


@pytest.mark.parametrize(
    "what",
    [
        "checkpoint folder",
        "artifact folder",
        "Triton model version",
        "data folder",
        "run folder",
        "frames folder",
    ],
)
def test_every_folder_output_refuses_a_users_folder_even_with_force(tmp_path: Path, what: str):
    """Each `what` the writers pass (export.onnx/fp16/int8/trt/aoti, triton, synth, train, generate)."""
    (tmp_path / "photo.jpg").write_bytes(b"mine")
    with pytest.raises(
        OutputPathError, match=r"holds files of its own \(photo\.jpg\); --force only replaces"
    ):
        fsutil.refuse_overwrite(tmp_path, True, what)
    assert (tmp_path / "photo.jpg").read_bytes() == b"mine"


def test_folder_kinds_match_what_the_commands_write():
    """The kinds are data in runtime (which may not import training or export): their tags and names must
    follow the writers'."""
    assert fsutil.CHECKPOINT_FOLDER.tag == ("format", ckpt_io.FORMAT)
    assert fsutil.CHECKPOINT_FOLDER.marker == ckpt_io.CONFIG_FILE
    assert {ckpt_io.WEIGHTS_FILE, ckpt_io.TRAINING_STATE_FILE} == set(fsutil.CHECKPOINT_FOLDER.entries)
    assert fsutil.ARTIFACT_FOLDER.tag == ("format", manifest.FORMAT)
    assert fsutil.ARTIFACT_FOLDER.marker == manifest.MANIFEST_NAME
    assert fsutil.TRAINING_RUN.marker == train_mod.CONFIG_FILE
    assert {train_mod.CHECKPOINTS_DIR, train_mod.LATEST_FILE, train_mod.METRICS_FILE} <= set(
        fsutil.TRAINING_RUN.entries
    )
    assert {synth.TRAIN_SPLIT, synth.TEST_SPLIT} <= set(fsutil.DATA_FOLDER.entries)
