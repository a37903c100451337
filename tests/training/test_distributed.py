"""Data-parallel training: `torchrun` with 2 gloo processes on CPU trains the same run as one process with
the same global batch, resumes across a changed number of processes, and stops cleanly on Ctrl-C.

Weights are compared in float64 (tests/training/float64_train.py says why): every tensor of the
generator, flow encoder and discriminator, BatchNorm running statistics and the flow encoder's running
motion moments included, and the optimizer moments, within 1e-9 absolute. Measured: about 2e-12 after
4 steps. Mistakes move weights by far more: after a single step, standardizing the motion vectors or
computing BatchNorm statistics per process, a gather whose gradient stays in its process, or
gradient-penalty weights drawn per process each gave differences of 6e-4 or more (checked by hand); here
it is checked that training moves every model by more than 1e-5 and that another global batch gives
weights that differ by more than 1e-3. The float32 path users run is checked on the losses it logs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from runtime.errors import BackendUnavailableError
from tests.training.float64_train import float64
from tests.training.float64_train import main as float64_main
from tests.training.test_train import _rows, _state
from training import train as train_mod
from training.model import build_models, preset
from training.train import TrainConfig, latest_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-9  # float64; see the module docstring
STEPS = 4


def _args(data: Path, run: Path, *extra: str, batch: int = 4, steps: int = STEPS) -> list[str]:
    return [
        *("--data", str(data), "--out", str(run), "--preset", "tiny", "--seed", "1", "--batch", str(batch)),
        *("--steps", str(steps), "--log-every", "1", "--checkpoint-every", "100", "--no-progress", *extra),
    ]


def _torchrun_command(module: str, args: list[str], processes: int = 2) -> list[str]:
    return [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)),
        *("-m", module, *args, "--threads", "1"),
    ]


def _torchrun(module: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        _torchrun_command(module, args), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[:8000] + "\n...\n" + done.stderr[-4000:]
    return done


def _max_differences(a: Path, b: Path) -> dict[str, float]:
    """Largest absolute difference of each weight and buffer between the latest checkpoints of two runs
    (integer tensors, e.g. BatchNorm batch counts, must be equal)."""
    (wa, _), (wb, _) = _state(a), _state(b)
    assert wa.keys() == wb.keys()
    out = {}
    for key, value in wa.items():
        if value.is_floating_point():
            out[key] = float((value.double() - wb[key].double()).abs().max())
        else:
            assert torch.equal(value, wb[key]), key
    return out


def _assert_same_weights(a: Path, b: Path) -> float:
    diffs = _max_differences(a, b)
    worst = max(diffs, key=diffs.__getitem__)
    assert diffs[worst] <= TOLERANCE, f"{worst} differs by {diffs[worst]:.3g}"
    (_, sa), (_, sb) = _state(a), _state(b)
    assert sa["step"] == sb["step"]
    for group in ("opt_g", "opt_d"):
        for pid, state in sa[group]["state"].items():
            for name, value in state.items():
                other = sb[group]["state"][pid][name]
                assert torch.allclose(value.double(), other.double(), rtol=0, atol=TOLERANCE), (group, name)
    return diffs[worst]


def _assert_same_losses(a: Path, b: Path, rtol: float) -> None:
    rows_a, rows_b = _rows(a), _rows(b)
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key in train_mod.METRICS:
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=rtol, abs=1e-6), (ra["step"], key)


@pytest.fixture(scope="module")
def one_process(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("one") / "run"
    assert float64_main(_args(tiny_data, run)) == 0
    return run


@pytest.fixture(scope="module")
def two_processes(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("two") / "run"
    done = _torchrun("tests.training.float64_train", _args(tiny_data, run))
    assert done.stdout.count("checkpoint ") == 1  # printed by rank 0 only
    return run


def test_two_processes_give_the_weights_of_one_process(
    tiny_data: Path, tmp_path: Path, one_process: Path, two_processes: Path
):
    worst = _assert_same_weights(one_process, two_processes)
    print(f"largest difference between 1 and 2 processes after {STEPS} steps (float64): {worst:.3g}")
    _assert_same_losses(one_process, two_processes, rtol=1e-6)
    assert latest_checkpoint(two_processes).name == f"step_{STEPS:08d}"

    # Not trivially equal: training moved every model, and another global batch gives other weights.
    with float64():
        models = build_models(preset("tiny"), seed=1)
    initial = dict(zip(("generator", "flow_encoder", "discriminator"), models, strict=True))
    trained, _ = _state(one_process)
    for name, model in initial.items():
        moved = max(float((trained[f"{name}.{k}"] - v).abs().max()) for k, v in model.state_dict().items())
        assert moved > 1e-5, name  # the discriminator's learning rate is 3e-5
    other_batch = tmp_path / "batch2"
    assert float64_main(_args(tiny_data, other_batch, batch=2)) == 0
    assert max(_max_differences(one_process, other_batch).values()) > 1e-3


def test_resume_with_another_number_of_processes(tiny_data: Path, tmp_path: Path, one_process: Path):
    """2 processes to step 2, 1 process to step 3, 2 processes to the end: the straight 1-process run."""
    run = tmp_path / "run"
    _torchrun("tests.training.float64_train", _args(tiny_data, run, "--stop-at", "2"))
    assert latest_checkpoint(run).name == "step_00000002"
    assert float64_main(["--out", str(run), "--resume", "--stop-at", "3", "--no-progress"]) == 0
    _torchrun("tests.training.float64_train", ["--out", str(run), "--resume", "--no-progress"])
    _assert_same_weights(one_process, run)
    _assert_same_losses(one_process, run, rtol=1e-6)


def test_float32_command_line_with_one_clip_per_process(tiny_data: Path, tmp_path: Path):
    """`torchrun ... -m training.train` as users run it (float32, --batch 2: one clip per process, so
    the motion standardization and BatchNorm only work through the global batch) logs the losses of one
    process with the same batch: to float32 rounding for the first step (same weights), to Adam-amplified
    rounding for the next."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert train_mod.main(_args(tiny_data, one, batch=2, steps=2)) == 0
    _torchrun("training.train", _args(tiny_data, two, batch=2, steps=2))
    _assert_same_losses(one, two, rtol=1e-4)
    first = _rows(one)[0], _rows(two)[0]
    for key in train_mod.METRICS:
        assert float(first[0][key]) == pytest.approx(float(first[1][key]), rel=1e-5, abs=1e-7), key


def test_ctrl_c_stops_every_process_after_the_same_step(tiny_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        _torchrun_command("training.train", _args(tiny_data, run, steps=500)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so that a failure below can end its workers too
    )
    try:
        deadline = time.monotonic() + 120
        while not ((run / "metrics.csv").is_file() and len(_rows(run)) >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGINT)  # torchrun passes it on to both processes
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    # both processes ended by the agreed stop; their two lines can interleave on the shared stderr
    assert stderr.count("interrupted") - stderr.count("interrupted:") == 2, stderr
    step = int(_rows(run)[-1]["step"])
    assert 2 <= step < 500
    assert latest_checkpoint(run).name == f"step_{step:08d}"  # saved after the step all stopped at
    assert f"interrupted: saving step {step} " in stderr and stderr.count("interrupted: saving") == 1
    assert train_mod.main(["--out", str(run), "--resume", "--stop-at", str(step + 1), "--no-progress"]) == 0
    assert latest_checkpoint(run).name == f"step_{step + 1:08d}"  # and a single process continues it


def test_global_batch_must_split_evenly(tiny_data: Path, tmp_path: Path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="multiple of 2"):
        TrainConfig(data=str(tiny_data), batch=3).validate(world_size=2)
    TrainConfig(data=str(tiny_data), batch=2).validate(world_size=2)  # one clip per process is fine
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun --nproc_per_node 2 sets it
    with pytest.raises(SystemExit) as exit_info:
        train_mod.main(_args(tiny_data, tmp_path / "run", batch=3))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "--batch 3 is the global batch, split evenly over the 2 processes" in err
    assert "(for example --batch 4)" in err and "Traceback" not in err


def test_devices_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert train_mod.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(BackendUnavailableError, match="each process uses its own, cuda:LOCAL_RANK"):
        train_mod.resolve_device("cuda:0")
