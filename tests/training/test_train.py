"""The training loop: loss falls, resume (also after Ctrl-C) gives the same state, clear refusals."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import pytest
import torch

from dtvnet import cli
from runtime.errors import ConfigMismatchError, OutputPathError
from training import checkpoint as ckpt_io
from training import train as train_mod
from training.train import TrainConfig, latest_checkpoint, lr_factor, train


def _config(data: Path, **overrides) -> TrainConfig:
    options = {"preset": "tiny", "batch": 2, "steps": 6, "seed": 1, **overrides}
    return TrainConfig(data=str(data), **options)


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def _state(run: Path) -> tuple[dict[str, torch.Tensor], dict]:
    ckpt = latest_checkpoint(run)
    loaded = ckpt_io.load(ckpt)
    flat = {f"{c}.{k}": v for c, s in loaded.state.items() for k, v in s.items()}
    return flat, ckpt_io.load_training_state(ckpt)


def _assert_same_run(a: Path, b: Path) -> None:
    (wa, sa), (wb, sb) = _state(a), _state(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert sa["step"] == sb["step"]
    for group in ("opt_g", "opt_d"):
        for pid, st in sa[group]["state"].items():
            for name, value in st.items():
                assert torch.equal(value, sb[group]["state"][pid][name]), (group, pid, name)
    assert sa["sched_g"]["last_epoch"] == sb["sched_g"]["last_epoch"]
    assert torch.equal(sa["rng_torch"], sb["rng_torch"])
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in _rows(a)]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in _rows(b)]


def test_tiny_training_run_loss_falls(tiny_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    final = train(_config(tiny_data, steps=24), run, log_every=1, checkpoint_every=100, progress=False)
    assert final == run / "checkpoints" / "step_00000024"
    content = [float(r["content"]) for r in _rows(run)]
    assert len(content) == 24
    assert sum(content[-4:]) / 4 < 0.8 * sum(content[:4]) / 4
    loaded = ckpt_io.load(final)
    assert loaded.components == ["generator", "flow_encoder", "discriminator"] and loaded.step == 24
    assert float(loaded.state["flow_encoder"]["motion_mean"].abs().sum()) > 0  # motion statistics tracked
    assert (run / "tensorboard").is_dir()


@pytest.fixture(scope="module")
def straight_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("straight") / "run"
    train(_config(tiny_data), run, log_every=1, checkpoint_every=2, progress=False)
    return run


def test_resume_gives_the_same_state(tiny_data: Path, tmp_path: Path, straight_run: Path):
    run = tmp_path / "run"
    train(_config(tiny_data), run, log_every=1, checkpoint_every=100, stop_at=3, progress=False)
    assert latest_checkpoint(run).name == "step_00000003" and len(_rows(run)) == 3
    train(_config(tiny_data), run, resume=True, log_every=1, checkpoint_every=100, progress=False)
    _assert_same_run(straight_run, run)


def test_ctrl_c_loses_nothing(tiny_data: Path, tmp_path: Path, straight_run: Path, monkeypatch):
    real_step = train_mod.train_step

    def interrupted_step(trainer, batch):
        if trainer.step == 4:  # Ctrl-C during step 5
            raise KeyboardInterrupt
        return real_step(trainer, batch)

    run = tmp_path / "run"
    monkeypatch.setattr(train_mod, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train(_config(tiny_data), run, log_every=1, checkpoint_every=100, progress=False)
    assert latest_checkpoint(run).name == "step_00000004"  # saved on the way out, not at a checkpoint step
    monkeypatch.setattr(train_mod, "train_step", real_step)
    train(_config(tiny_data), run, resume=True, log_every=1, checkpoint_every=100, progress=False)
    _assert_same_run(straight_run, run)


def test_mixed_precision_code_path_runs_on_cpu(tiny_data: Path, tmp_path: Path):
    """--amp on (bfloat16 autocast and GradScalers here; float16 on CUDA) trains with finite losses."""
    run = tmp_path / "run"
    train(_config(tiny_data, steps=2), run, amp="on", log_every=1, progress=False)
    assert all(float(v) == float(v) for r in _rows(run) for k, v in r.items() if k != "step")


def test_without_tensorboard_csv_still_works(tiny_data: Path, tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    run = tmp_path / "run"
    train(_config(tiny_data, steps=2), run, log_every=1, progress=False)
    assert "tensorboard is not installed" in caplog.text and len(_rows(run)) == 2


def test_refusals(tiny_data: Path, tmp_path: Path, straight_run: Path, capsys):
    with pytest.raises(ValueError, match="at least 2 clips"):
        train(_config(tiny_data, batch=1), tmp_path / "r")
    with pytest.raises(SystemExit) as exit_info:
        train_mod.main(["--data", str(tiny_data), "--out", str(tmp_path / "r"), "--batch", "1"])
    assert exit_info.value.code == 2 and "--batch 1 is too small" in capsys.readouterr().err
    with pytest.raises(OutputPathError, match="already exists; pass --resume"):
        train(_config(tiny_data), straight_run)
    with pytest.raises(OutputPathError, match="nothing to resume"):
        train(_config(tiny_data), tmp_path / "none", resume=True)
    with pytest.raises(ConfigMismatchError, match=r"lr_g=0\.1"):
        train(_config(tiny_data, lr_g=0.1), straight_run, resume=True)


def test_checkpoint_init_force_keeps_a_training_run(straight_run: Path, capsys):
    """The README's `dtvnet checkpoint init runs/tiny ... --force` after `dtvnet train --out runs/tiny`."""
    before = sorted(p.relative_to(straight_run) for p in straight_run.rglob("*"))
    args = ["checkpoint", "init", str(straight_run), "--preset", "tiny", "--seed", "0", "--force"]
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{str(straight_run)!r} holds a training run (checkpoints/, latest" in err
    assert sorted(p.relative_to(straight_run) for p in straight_run.rglob("*")) == before
    assert latest_checkpoint(straight_run).is_dir()


def test_a_failed_start_leaves_nothing_a_retry_refuses(tiny_data: Path, tmp_path: Path, capsys):
    """--data that does not exist creates no run folder; a data file that cannot be decoded stops the
    start after the folder exists, and the plain retry (with the data fixed) is accepted."""
    run = tmp_path / "run"
    args = ["--out", str(run), "--preset", "tiny", "--batch", "2", "--steps", "1", "--no-progress"]
    assert cli.main(["train", "--data", str(tmp_path / "nope"), *args]) == 2
    assert "nope" in capsys.readouterr().err and not run.exists()
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns(".flowcache"))
    frame = sorted((data / "sky_train").rglob("*.jpg"))[0]
    good = frame.read_bytes()
    frame.write_bytes(b"not a jpeg")
    assert cli.main(["train", "--data", str(data), *args]) == 2
    assert frame.name in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["train_config.json"]
    frame.write_bytes(good)
    assert cli.main(["train", "--data", str(data), *args]) == 0
    assert latest_checkpoint(run).name == "step_00000001"


def test_cli_trains_and_resumes_with_stored_options(tiny_data: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    args = ["--data", str(tiny_data), "--out", str(run), "--preset", "tiny", "--batch", "2", "--steps", "3"]
    assert train_mod.main([*args, "--stop-at", "2", "--no-progress"]) == 0
    assert train_mod.main(["--out", str(run), "--resume", "--no-progress"]) == 0
    assert "step_00000003" in capsys.readouterr().out


def test_reference_schedule():
    total = 199
    assert lr_factor(0, total, 100 / 199, 0.01) == 1.0
    assert lr_factor(99, total, 100 / 199, 0.01) == 1.0
    assert lr_factor(198, total, 100 / 199, 0.01) == pytest.approx(0.01)
    assert lr_factor(149, total, 100 / 199, 0.01) == pytest.approx(1 - 0.99 * 49 / 98)


def test_trains_on_a_folder_of_videos(tmp_path: Path):
    from tests.training.test_data import _write_mp4

    for name in ("a", "b"):
        _write_mp4(
            tmp_path / "videos" / f"{name}.mp4", [(20 * i + (name == "b") * 50) % 256 for i in range(10)]
        )
    run = tmp_path / "run"
    train(TrainConfig(data=str(tmp_path / "videos"), preset="tiny", batch=2, steps=2), run, progress=False)
    assert latest_checkpoint(run).name == "step_00000002"
    assert len(list((tmp_path / "videos" / ".flowcache").rglob("*.flows.npy"))) == 2
