"""Data-parallel training under `torchrun`: the process group, the collectives and the DDP wrapping.

`python -m training.train` (and `dtvnet train`) started by `torchrun --nproc_per_node N` runs N
processes that each train on 1/N of every global batch. The result is the result of one process
training on the whole global batch (up to float rounding), because nothing in a step depends on how
the batch is split:

- the sampler gives rank r the clips `[r::N]` of the step's global batch, and the gradient penalty's
  interpolation weights are drawn for the global batch and sliced the same way (training.train);
- the motion vectors are standardized across the global batch: each process gathers the flow
  encoder's outputs with a differentiable all-gather (`gather_batch`), whose backward pass sums each
  sample's gradient over the processes that used it;
- BatchNorm layers use the statistics of the global batch (`GlobalBatchNorm`, differentiable in the same
  way), so do their running statistics and the flow encoder's running motion moments;
- every loss is a mean over the process's clips and DistributedDataParallel averages the gradients
  over processes, which with equal shares is the gradient of the mean over the global batch.

Every process therefore holds bit-identical weights after every step (`check_replicas` verifies it at
each checkpoint); only rank 0 writes checkpoints, metrics and progress bars.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)

T = TypeVar("T")

# The group every collective of training runs in (DDP's included): created and destroyed by
# `process_group`, None outside it. Not the default group; `process_group` says why.
_group: dist.ProcessGroup | None = None


def training_group() -> dist.ProcessGroup | None:
    """The process group that training's collectives use (None when not under torchrun)."""
    return _group


def env_world_size() -> int:
    """The number of processes torchrun started (1 when not started by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    """This process's rank among all torchrun processes (RANK; 0 when not started by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's index on its machine (torchrun's LOCAL_RANK; 0 when not started by torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless torch.distributed is initialized."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """Only rank 0 writes checkpoints, metrics and progress bars."""
    return rank_and_world()[0] == 0


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Initialize the process group when torchrun started several processes, destroy it on the way out.

    NCCL for CUDA devices (each process on cuda:LOCAL_RANK), gloo on CPU. Does nothing without torchrun
    (WORLD_SIZE unset or 1) or when the caller has initialized torch.distributed itself.

    Every collective runs in a group of its own (`training_group`), which is really torn down on the
    way out, its worker threads joined while the interpreter is alive: a gloo worker thread that drops
    the last reference to a finished collective takes the GIL to free the Python state captured with it,
    and if the interpreter is already finalizing, that thread is unwound inside a noexcept destructor and
    the process aborts ("terminate called without an active exception", SIGABRT; issue 24). The default
    group cannot be that group: constructing DistributedDataParallel keeps it alive in C++ after
    `destroy_process_group` (torch 2.13), so its threads outlive us; it stays idle, with no collective
    whose destruction could still be pending at exit. So the caller must drop every object that holds
    the training group (the DDP wrappers: `Trainer.release`) before leaving the block.
    """
    global _group
    if env_world_size() <= 1 or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
        _group = dist.new_group(device_id=device)
    else:
        dist.init_process_group("gloo")
        _group = dist.new_group()
    quiet = logging.getLogger("training")
    level = quiet.level
    if dist.get_rank() != 0:
        quiet.setLevel(logging.WARNING)  # info lines once, from rank 0
    try:
        yield
    finally:
        quiet.setLevel(level)
        group, _group = _group, None
        gc.collect()  # DDP wrappers in reference cycles would keep the group (and its threads) alive
        dist.destroy_process_group(group)
        del group  # the last reference: the group joins its worker threads here
        dist.destroy_process_group()


def barrier() -> None:
    if rank_and_world()[1] > 1:
        dist.barrier(group=_group)


def on_main_process(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` on rank 0 only (e.g. create the run folder) while the others wait; every process returns
    rank 0's result, or raises rank 0's exception, so that a user error stops all of them alike."""
    rank, world = rank_and_world()
    if world == 1:
        return fn(*args, **kwargs)
    outcome: list[Any] = [None]
    if rank == 0:
        try:
            outcome = [(True, fn(*args, **kwargs))]
        except Exception as exc:
            outcome = [(False, exc)]
    dist.broadcast_object_list(outcome, src=0, group=_group)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; its gradient is the sum over processes of each process's gradient."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=_group)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


def gather_batch(local: torch.Tensor) -> torch.Tensor:
    """Differentiable all-gather along dim 0: the rows of every process, in rank order.

    Gradients flow back to each process's own rows, summed over all processes' losses (the
    semantics of `torch.distributed.nn.functional.all_gather`, which torch 2.13 deprecates and which
    needs all-to-all, missing from some backends): written as an all-reduce of zero-padded rows, exact
    because adding zeros is. Same shape on every process. At world size 1, `local` itself.
    """
    rank, world = rank_and_world()
    if world == 1:
        return local
    slots = [local if r == rank else torch.zeros_like(local) for r in range(world)]
    return _AllReduceSum.apply(torch.cat(slots))


def local_rows(batch: torch.Tensor) -> torch.Tensor:
    """This process's rows of a tensor that `gather_batch` assembled."""
    rank, world = rank_and_world()
    share = batch.shape[0] // world
    return batch[rank * share : (rank + 1) * share]


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch: training statistics (and so the running statistics) are those
    of all processes' samples together, as one process with the whole batch computes them.

    `torch.nn.SyncBatchNorm` does the same but refuses CPU tensors (gloo); this one serves every device,
    so the code that runs on GPUs is the code the CPU tests check. Per process: mean and variance of its
    samples in float32; across processes they are combined exactly (Chan et al.), one collective per
    layer forward and one backward. Evaluation, and training in a single process, are plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 3:
            raise ValueError(f"GlobalBatchNorm expects [B, C, ...] input, got {input.dim()} dimensions")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        uses_batch_statistics = self.training or not self.track_running_stats
        if not uses_batch_statistics or rank_and_world()[1] == 1:
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.shape[1]
        x = input.to(torch.promote_types(input.dtype, torch.float32))  # statistics in float32 at least
        dims = [0, *range(2, x.dim())]
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        count = torch.full((1,), x.numel() // channels, dtype=x.dtype, device=x.device)
        stats = gather_batch(torch.cat([mean, var, count]).unsqueeze(0))  # [world, 2C + 1]
        means, variances, counts = stats[:, :channels], stats[:, channels:-1], stats[:, -1:]
        total = counts.sum()
        mean = (counts * means).sum(0) / total
        var = (counts * (variances + (means - mean).pow(2))).sum(0) / total
        tracked, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
        if self.training and tracked is not None and running_mean is not None and running_var is not None:
            with torch.no_grad():
                tracked.add_(1)
                momentum = 1.0 / float(tracked) if self.momentum is None else self.momentum
                unbiased = var * (total / (total - 1))
                running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
                running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        shape = [1, channels] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
        out = (x - mean.view(shape)) * scale.view(shape)
        if self.affine:
            out = out + self.bias.view(shape)
        return out.to(input.dtype)

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """Replace every BatchNorm layer under `module` (in place) by one that shares its parameters and
        buffers, so optimizers and state dicts are unaffected. Returns `module`."""
        for parent in list(module.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, cls):
                    replacement = cls(
                        child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
                    )
                    replacement.weight, replacement.bias = child.weight, child.bias
                    for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                        setattr(replacement, buffer, getattr(child, buffer))
                    replacement.train(child.training)
                    setattr(parent, name, replacement)
        return module


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` wrapped for data-parallel training (its BatchNorm layers made global first); `module`
    itself in a single process.

    forward_sync_buffers=False (formerly broadcast_buffers): every buffer (BatchNorm running statistics,
    the flow encoder's motion moments) is updated from the global batch and is identical on every
    process already, which `check_replicas` verifies; broadcasting rank 0's copy before every forward
    would cost a collective per forward and only hide a bug.
    """
    if rank_and_world()[1] == 1:
        return module
    GlobalBatchNorm.convert(module)
    device_ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(
        module, device_ids=device_ids, forward_sync_buffers=False, process_group=_group
    )


def mean_over_processes(values: dict[str, float], stop: bool = False) -> tuple[dict[str, float], bool]:
    """The mean of each value over processes (losses of the global batch, the same on every process)
    and whether any process asked to stop, in one collective."""
    if rank_and_world()[1] == 1:
        return values, stop
    packed = torch.tensor([*values.values(), float(stop)], dtype=torch.float64)
    if dist.get_backend(_group) == "nccl":
        packed = packed.cuda()
    dist.all_reduce(packed, group=_group)
    packed = packed.cpu() / rank_and_world()[1]
    return dict(zip(values, packed[:-1].tolist(), strict=True)), bool(packed[-1] > 0)


def check_replicas(*modules: nn.Module) -> None:
    """Raise RuntimeError unless every process holds bit-identical parameters and buffers."""
    if rank_and_world()[1] == 1:
        return
    digest = hashlib.sha256()
    for module in modules:
        for key, value in module.state_dict().items():
            digest.update(key.encode())
            digest.update(value.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    digests: list[str | None] = [None] * rank_and_world()[1]
    dist.all_gather_object(digests, digest.hexdigest(), group=_group)
    if len(set(digests)) != 1:
        raise RuntimeError(
            "the data-parallel processes hold different weights (a bug: every update is meant to be "
            "identical on every process); stopping before writing a checkpoint"
        )


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[threading.Event]:
    """Under torchrun: Ctrl-C and SIGTERM set the yielded flag instead of raising at once, so that the
    processes can agree (`mean_over_processes(..., stop=flag.is_set())`) to stop after the same step,
    and rank 0 can save that step, rather than each dying in a different place. In a single process
    signals keep their usual effect and the flag stays unset."""
    flag = threading.Event()
    if rank_and_world()[1] == 1:
        yield flag
        return
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in handlers:
        signal.signal(sig, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
