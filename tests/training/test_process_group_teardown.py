"""Leaving `training.distributed.process_group` joins the worker threads of the group that ran the
collectives (issue 24).

Under torchrun, a gloo worker thread that drops the last reference to a finished collective takes the
GIL to free Python state captured with it; if the interpreter is already finalizing, the thread is
unwound inside a noexcept destructor and the process aborts ("terminate called without an active
exception"), at random, more often on a loaded machine. `destroy_process_group` alone did not prevent
it: DistributedDataParallel keeps the default group alive in C++ (torch 2.13), so its worker threads,
which had run every collective, lived on into interpreter finalization. Here 2 processes run every
kind of collective training uses and the test checks that none of the threads that could have run
them is alive once the block is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from training import distributed

ROOT = Path(__file__).resolve().parents[2]
REPORTS = "DTVNET_TEST_TEARDOWN_REPORTS"  # the folder each torchrun process writes its report to


def _gloo_threads() -> dict[int, str]:
    """Native id -> name of this process's gloo threads (each group's transport loop and workers)."""
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if "gloo" in name:
            found[int(tid)] = name
    return found


def _probe() -> dict[str, object]:
    """Run each collective training uses inside `process_group`; report the gloo threads alive at the
    end of the block and after it."""
    with distributed.process_group(torch.device("cpu")):
        group = distributed.training_group()
        layers = nn.Sequential(nn.Conv1d(3, 4, 1), nn.BatchNorm1d(4))  # GlobalBatchNorm under DDP
        model = distributed.data_parallel(layers, torch.device("cpu"))
        uses_group = group is not None and model.process_group is group
        loss = distributed.gather_batch(model(torch.rand(2, 3, 5))).square().mean()
        loss.backward()
        distributed.mean_over_processes({"loss": float(loss)})
        distributed.check_replicas(model.module)
        distributed.on_main_process(lambda: None)
        distributed.barrier()
        inside = _gloo_threads()
        del model, layers, loss, group  # the caller's part: drop what holds the group (Trainer.release)
    return {"ddp_uses_training_group": uses_group, "inside": inside, "after": _gloo_threads()}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from Linux's /proc")
def test_leaving_the_process_group_joins_the_threads_of_the_group_that_ran_collectives(tmp_path: Path):
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *("-m", "tests.training.test_process_group_teardown"),
    ]
    env = {**os.environ, REPORTS: str(tmp_path)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    # one file per process: two processes printing lines to one pipe can interleave mid-line (a
    # reproduction merged 33 of 600 JSON lines in 1 of 3 torchrun runs, 24 in 1 of 6 without torchrun)
    reports = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("rank*.json"))]
    assert len(reports) == 2, done.stdout
    for report in reports:
        inside, after = report["inside"], report["after"]
        assert report["ddp_uses_training_group"], report
        assert set(after) < set(inside), report  # no thread started on the way out; some joined
        # the training group's transport loop and workers are gone; at most the default group's stay
        # (DDP keeps that one alive in torch 2.13; it ran no collective of ours, so none ends at exit)
        loops = [list(threads.values()).count("gloo_tcp_loop") for threads in (inside, after)]
        assert loops[1] <= loops[0] - 1, report


if __name__ == "__main__":  # one torchrun process of the test above
    report = json.dumps(_probe())
    (Path(os.environ[REPORTS]) / f"rank{os.environ['RANK']}.json").write_text(report)
    sys.exit(0)
