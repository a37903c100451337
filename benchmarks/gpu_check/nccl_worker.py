"""What the GPU check's torchrun starts: an NCCL process group around `training.train.main`.

`training.distributed.process_group` opens a group only when torchrun starts several processes, so a
one-GPU machine never exercises NCCL through it. This worker opens the NCCL group itself (the training
code then uses it as is), checks an all-reduce on the GPU, prints one JSON line for the check, and runs
the training command line it was given inside the group. Without CUDA it does the same with gloo on
the CPU (how its tests run it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence


def nccl_version() -> str:
    import torch

    version = torch.cuda.nccl.version()  # a tuple in recent PyTorch, an int (2.18.3 -> 21803) before
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def main(argv: Sequence[str] | None = None) -> int:
    import torch
    import torch.distributed as dist

    from benchmarks.gpu_check.training_check import NCCL_MARK
    from training.train import main as train_main

    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        world = dist.get_world_size()
        values = torch.full((4,), float(dist.get_rank() + 1), device=device)
        dist.all_reduce(values)
        expected = world * (world + 1) / 2
        report = {
            "backend": dist.get_backend(),
            "world_size": world,
            "nccl_version": nccl_version() if cuda else None,
            "all_reduce_ok": bool(torch.all(values == expected)),
        }
        print(NCCL_MARK + json.dumps(report), flush=True)
        return train_main(argv)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    from runtime.console import run_cli

    sys.exit(run_cli(main))
