"""Section 4: training on CUDA: the paper preset with AMP, a checkpoint and a resume; torchrun with NCCL.

Procedural clips (`training.data.synth`) at the paper's size are the data. The AMP run trains half its
steps, stops with a checkpoint, and resumes to the end (`training.train.train`, exactly what `dtvnet
train --amp on --stop-at N` then `--resume` do): every logged loss must be finite, every model's weights
must move between the two checkpoints, and the resumed run must end at the last step with one metrics
row per step. torchrun then starts one process (`nccl_worker`), which opens an NCCL process group,
checks an all-reduce, and trains 2 steps through `training.train.main` inside it: with WORLD_SIZE=1
`training.distributed.process_group` opens no group itself, so NCCL would otherwise not be touched.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.sections import Section

PRESET = "paper"
STEPS, QUICK_STEPS = 20, 4
CLIPS, QUICK_CLIPS = 8, 4
BATCH = 4
TORCHRUN_STEPS, TORCHRUN_BATCH = 2, 2
ROOT = Path(__file__).resolve().parents[2]
NCCL_MARK = "GPU_CHECK_NCCL "  # the worker's line of JSON on stdout


def finite_losses(rows: list[dict[str, str]]) -> tuple[bool, list[str]]:
    """Whether every logged number is finite, and the columns where one is not."""
    bad = sorted(
        {
            k
            for row in rows
            for k, v in row.items()
            if k not in ("step", "wall_s") and not math.isfinite(float(v))
        }
    )
    return not bad, bad


def moved(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Per model, the largest change of any floating-point tensor between two checkpoints' states."""
    return {
        component: max(
            (
                float((after[component][k].float() - v.float()).abs().max())
                for k, v in state.items()
                if v.is_floating_point() and v.numel()
            ),
            default=0.0,
        )
        for component, state in before.items()
    }


def nccl_result(stdout: str) -> dict[str, Any] | None:
    """The worker's JSON line, or None if it printed none."""
    for line in stdout.splitlines():
        if line.startswith(NCCL_MARK):
            return json.loads(line[len(NCCL_MARK) :])
    return None


def make_data(folder: Path, preset_name: str, clips: int) -> Path:
    """`clips` procedural training clips (and one held out) at the preset's frame count and size."""
    from training.data.synth import write_dataset
    from training.model import preset

    cfg = preset(preset_name)
    return write_dataset(folder, clips, test_clips=1, frames=cfg.frames, size=cfg.image_size, progress=False)


def train_and_resume(
    data: Path, run_dir: Path, preset_name: str, steps: int, device: str, amp: str = "on"
) -> dict[str, Any]:
    """Train half of `steps` (with AMP by default), stop with a checkpoint, resume to `steps`; what came
    out of it, and `passed`: losses finite, weights moved, the resume ended at `steps` with every row."""
    import torch

    from training import checkpoint as ckpt_io
    from training.train import TrainConfig, latest_checkpoint, train

    cuda = device.startswith("cuda")
    config = TrainConfig(data=str(data), preset=preset_name, batch=BATCH, steps=steps, seed=0)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    options: dict[str, Any] = {"device": device, "amp": amp, "log_every": 1, "progress": False}
    out: dict[str, Any] = {"steps": steps, "batch": BATCH, "preset": preset_name}
    start = time.perf_counter()
    first = train(config, run_dir, checkpoint_every=steps, stop_at=steps // 2, **options)
    out["first_session_s"] = time.perf_counter() - start
    out["checkpoint_written"] = first.name
    before = ckpt_io.load(first).state
    start = time.perf_counter()
    train(config, run_dir, resume=True, checkpoint_every=steps, **options)
    out["resumed_session_s"] = time.perf_counter() - start
    out["seconds_per_step_resumed"] = out["resumed_session_s"] / (steps - steps // 2)
    out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    final = latest_checkpoint(run_dir)
    if final is None:
        raise RuntimeError(f"the resumed run in {run_dir} left no checkpoint")
    state = ckpt_io.load_training_state(final) or {}
    with (run_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    finite, bad = finite_losses(rows)
    change = moved(before, ckpt_io.load(final).state)
    out.update(
        {
            "amp": "float16 autocast on CUDA (training.train.Trainer.autocast)"
            if cuda
            else "bfloat16 on CPU",
            "resumed_to": final.name,
            "resumed_step": state.get("step"),
            "metrics_rows": len(rows),
            "losses_finite": finite,
            "non_finite_columns": bad,
            "last_losses": {k: float(v) for k, v in rows[-1].items() if k not in ("step", "wall_s")},
            "max_weight_change": change,
            "weights_moved": bool(change) and all(v > 0 for v in change.values()),
        }
    )
    out["passed"] = bool(
        finite and out["weights_moved"] and state.get("step") == steps and len(rows) == steps
    )
    return out


def run(section: Section, quick: bool) -> None:
    out = section.result
    steps = QUICK_STEPS if quick else STEPS
    clips = QUICK_CLIPS if quick else CLIPS
    with tempfile.TemporaryDirectory(prefix="dtvnet-gpu-train-") as tmp:
        start = time.perf_counter()
        data = make_data(Path(tmp) / "data", PRESET, clips)
        out["data"] = f"{clips} procedural clips at the {PRESET} preset's frames and size"
        out["data_seconds"] = time.perf_counter() - start
        out["amp_run"] = train_and_resume(data, Path(tmp) / "run", PRESET, steps, "cuda")
        section.flush()
        out["torchrun"] = torchrun(data, Path(tmp) / "torchrun", section.left() - 3)


def torchrun(
    data: Path, run_dir: Path, timeout_s: float, preset_name: str = PRESET, device: str = "cuda"
) -> dict[str, Any]:
    """`torchrun --standalone --nproc_per_node 1` of the NCCL worker for 2 steps (AMP on CUDA)."""
    amp = "on" if device == "cuda" else "off"
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"),
        *("-m", "benchmarks.gpu_check.nccl_worker", "--data", str(data), "--out", str(run_dir)),
        *("--preset", preset_name, "--batch", str(TORCHRUN_BATCH), "--steps", str(TORCHRUN_STEPS)),
        *("--device", device, "--amp", amp, "--no-progress", "--log-every", "1", "--checkpoint-every", "100"),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=max(10.0, timeout_s))
    checkpoint = run_dir / "checkpoints" / f"step_{TORCHRUN_STEPS:08d}"
    result = {
        "command": "torchrun --standalone --nproc_per_node 1 -m benchmarks.gpu_check.nccl_worker ...",
        "exit_status": done.returncode,
        "seconds": time.perf_counter() - start,
        "nccl": nccl_result(done.stdout),
        "checkpoint_written": checkpoint.is_dir(),
    }
    if done.returncode:
        result["stderr_tail"] = done.stderr[-1500:]
    result["passed"] = done.returncode == 0 and bool((result["nccl"] or {}).get("all_reduce_ok"))
    result["passed"] = result["passed"] and result["checkpoint_written"]
    return result
