"""Train DTVNet: the generator and flow encoder against a 3D discriminator, as the reference code does.

Each step: raw = OFE(real flows); the OFE's running motion statistics are updated from raw; the
generator gets the batch-standardized vector and the first frame; the discriminator is updated once on
the detached fake (adversarial loss + gradient penalty), then generator and OFE together (100 x
content L1 + 1 x motion L1 + 1 x adversarial). Defaults are the reference settings (ARCHITECTURE.md).

The same code runs on CPU (float32) and CUDA (autocast + GradScaler). A run is a folder:

    RUN/
      train_config.json           the options of the run (a resume reuses them)
      checkpoints/step_00001000/  checkpoint folders (training.checkpoint format, with training_state.pt)
      latest                      the newest complete checkpoint, relative to RUN (replaced atomically)
      metrics.csv                 losses and learning rates, one row per --log-every steps
      tensorboard/                the same metrics for TensorBoard (when tensorboard is installed)

A run survives crashes and Ctrl-C: checkpoints are written atomically every --checkpoint-every steps
and on Ctrl-C, and `--resume` continues from `latest` with the optimizer, scheduler, step and RNG state,
and with the data sampler at the same position (batches are a pure function of seed and step).

Data-parallel training: start the same command with `torchrun --nproc_per_node N -m training.train`;
--batch stays the global batch and the run (its checkpoints included) is the same as in one process
(training.distributed), so a run may be resumed with another number of processes.

Usage:
    python -m training.train --data DATA --out runs/NAME [--preset small] [--steps N] [--resume]
    torchrun --nproc_per_node 8 -m training.train --data DATA --out runs/NAME --batch 32
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import logging
import math
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from runtime.errors import BackendUnavailableError, ConfigMismatchError, OutputPathError
from runtime.fsutil import TRAINING_RUN, atomic_file, refuse_overwrite
from training import checkpoint as ckpt_io
from training import distributed
from training.data.clips import Clip, find_clips
from training.data.windows import StepBatchSampler, WindowDataset
from training.distributed import is_main_process, rank_and_world
from training.flow.cache import FlowCache
from training.flow.estimator import get_estimator
from training.losses import (
    GAN_LOSSES,
    content_loss,
    discriminator_loss,
    generator_adversarial_loss,
    gradient_penalty,
    motion_loss,
)
from training.model import (
    Discriminator,
    DTVNetConfig,
    FlowEncoder,
    Generator,
    batch_standardize,
    build_models,
)
from training.model import preset as model_preset
from training.model.config import field_differences

log = logging.getLogger(__name__)

CONFIG_FILE = "train_config.json"
LATEST_FILE = "latest"
METRICS_FILE = "metrics.csv"
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
METRICS = ("loss_d", "d_adv", "gp", "d_real", "d_fake", "loss_g", "content", "motion", "g_adv")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run's result. Defaults: the reference code's settings."""

    data: str
    split: str = "sky_train"
    preset: str = "paper"
    steps: int | None = None  # None: from `epochs` (one window per clip per epoch)
    epochs: float = 199.0
    batch: int = 4
    lr_g: float = 3e-4
    lr_ofe: float = 3e-4
    lr_d: float = 3e-5
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-7
    constant_lr_fraction: float = 100 / 199  # then linear decay ...
    final_lr_factor: float = 0.01  # ... to this fraction of the initial rate
    content_weight: float = 100.0
    motion_weight: float = 1.0
    adv_weight: float = 1.0
    gp_weight: float = 10.0
    gan: str = "lsgan"
    seed: int = 0
    flow: str = "dis"
    flow_cache: str | None = None  # default: <data>/.flowcache

    def model_config(self) -> DTVNetConfig:
        return model_preset(self.preset)

    def validate(self, world_size: int = 1) -> None:
        """Raise ValueError naming the bad option (`world_size`: the number of data-parallel processes)."""
        if self.batch < 2:
            raise ValueError(
                f"--batch {self.batch} is too small: the motion vectors are standardized across the batch "
                "during training, which needs at least 2 clips; use --batch 2 or more (the reference uses 4)."
            )
        if self.batch % world_size:
            suggestion = world_size * -(-self.batch // world_size)
            raise ValueError(
                f"--batch {self.batch} is the global batch, split evenly over the {world_size} processes, "
                f"so it must be a multiple of {world_size} (for example --batch {suggestion})."
            )
        if self.gan not in GAN_LOSSES:
            raise ValueError(f"--gan must be one of {', '.join(GAN_LOSSES)}, got {self.gan!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {self.steps}")
        if not 0 <= self.constant_lr_fraction <= 1 or not 0 < self.final_lr_factor <= 1:
            raise ValueError("--constant-lr-fraction must be in [0, 1] and --final-lr-factor in (0, 1]")
        self.model_config()  # unknown preset -> ValueError
        get_estimator(self.flow)  # unknown estimator -> ValueError


@dataclass
class Trainer:
    """The models, optimizers, schedulers and scalers of a run, and its position."""

    config: TrainConfig
    device: torch.device
    amp: bool
    total_steps: int
    generator: Generator
    flow_encoder: FlowEncoder
    discriminator: Discriminator
    opt_g: torch.optim.Optimizer  # generator and flow encoder, one param group each
    opt_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    step: int = 0
    elapsed_s: float = 0.0  # training wall time over all sessions of the run
    # What train_step calls, by attribute name: the DistributedDataParallel wrappers under torchrun
    # (`parallelize`); the models themselves otherwise. Checkpoints always hold the models themselves.
    wrapped: dict[str, nn.Module] = field(default_factory=dict)

    def train_module(self, name: str) -> nn.Module:
        return self.wrapped.get(name, getattr(self, name))

    def parallelize(self) -> None:
        """Wrap the trained models for data-parallel training (a no-op in a single process)."""
        for name in ("generator", "flow_encoder", "discriminator"):
            module = getattr(self, name)
            wrapped = distributed.data_parallel(module, self.device)
            if wrapped is not module:
                self.wrapped[name] = wrapped

    def release(self) -> None:
        """Drop the DDP wrappers: they hold the process group, which `distributed.process_group` must be
        able to tear down (joining its threads) before the interpreter exits."""
        self.wrapped.clear()

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """float16 autocast on CUDA (bfloat16 on CPU, where --amp on is only useful for testing)."""
        dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.amp)


# ---------------------------------------------------------------------------------------------
# What makes a step independent of how its batch is split across processes (training.distributed)
# ---------------------------------------------------------------------------------------------


def standardize_motion(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training-time batch standardization of the OFE output, across the global batch: returns this
    process's standardized vectors and the global batch's raw vectors (gathered from every process
    under torchrun, differentiably, so each sample's vector equals a single process's)."""
    global_raw = distributed.gather_batch(raw)
    return distributed.local_rows(batch_standardize(global_raw)), global_raw


def interpolation_weights(seed: int, step: int, local_batch: int) -> torch.Tensor:
    """The gradient penalty's U(0, 1) weights for this process's clips of `step`: drawn for the global
    batch from (seed, step) and sliced like the sampler slices clips, so they do not depend on what ran
    before (a resumed run draws the same) nor on how the batch is split across processes."""
    rank, world = rank_and_world()
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.rand(local_batch * world, generator=generator)[rank::world]


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu. Under torchrun with several processes, "cuda" means
    each process's own GPU, cuda:LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if distributed.env_world_size() > 1 and device.type == "cuda":
        if device.index is not None:
            raise BackendUnavailableError(
                f"--device {name} names one GPU for all {distributed.env_world_size()} torchrun processes; "
                "pass --device cuda (or auto) and each process uses its own, cuda:LOCAL_RANK."
            )
        device = torch.device("cuda", distributed.local_rank())
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"--device {name} was asked for but CUDA is not available; use --device cpu."
        )
    return device


def lr_factor(step: int, total: int, constant_fraction: float, final: float) -> float:
    """Reference schedule: constant, then linear decay to `final` at the last step."""
    decay_start = round(total * constant_fraction)
    if step < decay_start or total <= decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / max(1, total - 1 - decay_start))
    return 1.0 - (1.0 - final) * progress


def build_trainer(config: TrainConfig, total_steps: int, device: torch.device, amp: bool) -> Trainer:
    """Models initialized from the seed, Adam optimizers and the reference learning-rate schedule."""
    generator, flow_encoder, discriminator = (
        m.to(device).train() for m in build_models(config.model_config(), seed=config.seed)
    )
    betas, eps = (config.beta1, config.beta2), config.adam_eps
    opt_g = torch.optim.Adam(
        [
            {"params": generator.parameters(), "lr": config.lr_g},
            {"params": flow_encoder.parameters(), "lr": config.lr_ofe},
        ],
        betas=betas,
        eps=eps,
    )
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=betas, eps=eps)

    def schedule(step: int) -> float:
        return lr_factor(step, total_steps, config.constant_lr_fraction, config.final_lr_factor)

    return Trainer(
        config=config,
        device=device,
        amp=amp,
        total_steps=total_steps,
        generator=generator,
        flow_encoder=flow_encoder,
        discriminator=discriminator,
        opt_g=opt_g,
        opt_d=opt_d,
        sched_g=torch.optim.lr_scheduler.LambdaLR(opt_g, schedule),
        sched_d=torch.optim.lr_scheduler.LambdaLR(opt_d, schedule),
        scaler_g=torch.amp.GradScaler(device.type, enabled=amp),
        scaler_d=torch.amp.GradScaler(device.type, enabled=amp),
    )


def train_step(t: Trainer, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """One discriminator update then one generator + flow encoder update; returns the losses."""
    cfg = t.config
    dtype = next(t.generator.parameters()).dtype  # float32 (float64 if that was torch's default dtype)
    real, flows, flows_half = (
        batch[key].to(t.device, dtype, non_blocking=True) for key in ("video", "flows", "flows_half")
    )

    with t.autocast():
        raw = t.train_module("flow_encoder")(flows)
        motion, global_raw = standardize_motion(raw)
        out = t.train_module("generator")(real[:, :, 0], motion)
    t.flow_encoder.update_motion_stats(global_raw)

    # Discriminator, on the detached fake. Under DDP the gradient penalty is fine as it is: its
    # autograd.grad is taken with respect to the interpolated clips only (no parameter gradient, so no
    # DDP hook fires), and the parameters' gradients of d_adv and gp then arrive in one backward.
    discriminator = t.train_module("discriminator")
    t.discriminator.requires_grad_(True)
    t.opt_d.zero_grad(set_to_none=True)
    with t.autocast():
        d_real = discriminator(real)
        d_fake = discriminator(out.video.detach())
        d_adv = discriminator_loss(cfg.gan, d_real, d_fake)
        gp = gradient_penalty(
            discriminator,
            real,
            out.video,
            alpha=interpolation_weights(cfg.seed, t.step, real.shape[0]),
            scale_loss=t.scaler_d.scale,
            inv_scale=1.0 / t.scaler_d.get_scale(),
        )
        loss_d = d_adv + cfg.gp_weight * gp
    t.scaler_d.scale(loss_d).backward()
    t.scaler_d.step(t.opt_d)
    t.scaler_d.update()

    # Generator and flow encoder together. The frozen discriminator runs without its DDP wrapper: it
    # has no gradients to average in this update.
    t.discriminator.requires_grad_(False)
    t.opt_g.zero_grad(set_to_none=True)
    with t.autocast():
        g_adv = generator_adversarial_loss(cfg.gan, t.discriminator(out.video))
        content = content_loss(out.video, real)
        motion = motion_loss(out.flows, flows_half)
        loss_g = cfg.content_weight * content + cfg.motion_weight * motion + cfg.adv_weight * g_adv
    t.scaler_g.scale(loss_g).backward()
    t.scaler_g.step(t.opt_g)
    t.scaler_g.update()
    t.discriminator.requires_grad_(True)

    t.sched_g.step()
    t.sched_d.step()
    t.step += 1
    values = {
        "loss_d": loss_d,
        "d_adv": d_adv,
        "gp": gp,
        "d_real": d_real.float().mean(),
        "d_fake": d_fake.float().mean(),
        "loss_g": loss_g,
        "content": content,
        "motion": motion,
        "g_adv": g_adv,
    }
    return {k: float(v.detach()) for k, v in values.items()}


# ---------------------------------------------------------------------------------------------
# Checkpoints and the run folder
# ---------------------------------------------------------------------------------------------


def training_state(t: Trainer) -> dict[str, Any]:
    return {
        "step": t.step,
        "elapsed_s": t.elapsed_s,
        "opt_g": t.opt_g.state_dict(),
        "opt_d": t.opt_d.state_dict(),
        "sched_g": t.sched_g.state_dict(),
        "sched_d": t.sched_d.state_dict(),
        "scaler_g": t.scaler_g.state_dict(),
        "scaler_d": t.scaler_d.state_dict(),
        "rng_torch": torch.get_rng_state(),
        # This process's device only: asking for every GPU's state would create a context on each of
        # them from rank 0, and a resume on fewer GPUs could not restore them.
        "rng_cuda": [torch.cuda.get_rng_state(t.device)] if t.device.type == "cuda" else [],
    }


def save_checkpoint(t: Trainer, run: Path, keep: int) -> Path:
    """Write checkpoints/step_N atomically, point `latest` at it, prune all but the newest `keep`."""
    name = f"{CHECKPOINTS_DIR}/step_{t.step:08d}"
    path = ckpt_io.save(
        run / name,
        t.config.model_config(),
        generator=t.generator,
        flow_encoder=t.flow_encoder,
        discriminator=t.discriminator,
        step=t.step,
        metadata={"train_config": dataclasses.asdict(t.config), "total_steps": t.total_steps},
        training_state=training_state(t),
    )
    with atomic_file(run / LATEST_FILE) as tmp:
        tmp.write_text(name + "\n")
    older = sorted((run / CHECKPOINTS_DIR).glob("step_*"))[:-keep] if keep > 0 else []
    for old in older:
        if old != path:
            shutil.rmtree(old, ignore_errors=True)
    return path


def latest_checkpoint(run: str | Path) -> Path | None:
    """The checkpoint `latest` points to in a run folder, or None if there is none yet."""
    pointer = Path(run) / LATEST_FILE
    if not pointer.is_file():
        return None
    return Path(run) / pointer.read_text().strip()


def restore(t: Trainer, checkpoint: Path) -> None:
    """Load weights and training state from a checkpoint of this run into `t`."""
    loaded = ckpt_io.load(checkpoint, expect_config=t.config.model_config())
    for name in ("generator", "flow_encoder", "discriminator"):
        getattr(t, name).load_state_dict(loaded.state[name])
    state = ckpt_io.load_training_state(checkpoint)
    if state is None:
        raise ConfigMismatchError(
            f"Checkpoint {str(checkpoint)!r} has no training state; resume from a checkpoint written by "
            "`dtvnet train`."
        )
    t.opt_g.load_state_dict(state["opt_g"])
    t.opt_d.load_state_dict(state["opt_d"])
    t.sched_g.load_state_dict(state["sched_g"])
    t.sched_d.load_state_dict(state["sched_d"])
    t.scaler_g.load_state_dict(state["scaler_g"])
    t.scaler_d.load_state_dict(state["scaler_d"])
    torch.set_rng_state(state["rng_torch"])
    if state["rng_cuda"] and t.device.type == "cuda":
        torch.cuda.set_rng_state(state["rng_cuda"][0], t.device)
    t.step, t.elapsed_s = int(state["step"]), float(state["elapsed_s"])


class MetricsLog:
    """metrics.csv (kept consistent with the checkpoint on resume) and TensorBoard, rank 0 only."""

    def __init__(self, run: Path, resume_step: int | None) -> None:
        self.path = run / METRICS_FILE
        self.columns = ["step", "wall_s", "lr_g", "lr_d", *METRICS]
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
            with atomic_file(self.path) as tmp, tmp.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, self.columns)
                writer.writeheader()
                writer.writerows(rows)
        else:
            with self.path.open("w", newline="") as fh:
                csv.DictWriter(fh, self.columns).writeheader()
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning(
                "tensorboard is not installed (pip install 'dtvnet[train]'); logging to %s only", self.path
            )
        else:
            self.tensorboard = SummaryWriter(str(run / TENSORBOARD_DIR), purge_step=resume_step)

    def write(self, row: dict[str, float]) -> None:
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, self.columns).writerow({k: row[k] for k in self.columns})
        if self.tensorboard is not None:
            step = int(row["step"])
            for key in self.columns[2:]:
                self.tensorboard.add_scalar(f"train/{key}", row[key], step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def check_run(config: TrainConfig, run: Path, resume: bool, force: bool) -> TrainConfig:
    """Check the run folder without writing anything; returns the config to train with (the stored one
    on --resume). A folder holding anything but a training run is refused even with --force."""
    stored_file = run / CONFIG_FILE
    if resume:
        if not stored_file.is_file():
            raise OutputPathError(
                f"Run folder {str(run)!r} has no {CONFIG_FILE}; there is nothing to resume, drop --resume."
            )
        stored = TrainConfig(**json.loads(stored_file.read_text()))
        diffs = [
            f"{name}={given!r} (run: {run_value!r})"
            for name, given, run_value in field_differences(config, stored)
        ]
        if diffs:
            raise ConfigMismatchError(
                f"Run {str(run)!r} was started with other options: {', '.join(diffs)}; resume with the run's "
                "options (omit them) or start a new run with --out."
            )
        return stored
    if run.is_dir() and TRAINING_RUN.holds(run) and not force and started(run):
        raise OutputPathError(
            f"Run folder {str(run)!r} already exists; pass --resume to continue it, --force to start it "
            "over, or choose another --out."
        )
    refuse_overwrite(run, force or (run.is_dir() and not started(run)), "run folder")
    return config


def started(run: Path) -> bool:
    """Whether a run folder holds anything a start would lose (checkpoints, metrics, evaluations). A run
    whose start failed before its first step (a data file that cannot be decoded, say) holds only its
    train_config.json, and a plain retry may replace it."""
    return any((run / name).exists() for name in TRAINING_RUN.entries)


def create_run(config: TrainConfig, run: Path) -> None:
    """Start a new run in `run` (after `check_run` accepted it): clear it, store the config."""
    if run.is_dir() and any(run.iterdir()):
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    with atomic_file(run / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def find_training_clips(config: TrainConfig) -> list[Clip]:
    return find_clips(config.data, config.split, min_frames=config.model_config().frames)


def make_loader(
    config: TrainConfig,
    clips: Sequence[Clip],
    first_step: int,
    last_step: int,
    workers: int,
    device: torch.device,
) -> DataLoader:
    """This process's windows of the training clips for steps [first_step, last_step)."""
    model = config.model_config()
    cache = FlowCache(config.data, model.image_size, get_estimator(config.flow), config.flow_cache)
    rank, world = rank_and_world()
    # Under torchrun each process computes a share of the missing entries (they are separate files,
    # each written atomically), then all wait until the cache is complete before reading it.
    cache.build(clips[rank::world], progress=rank == 0)
    distributed.barrier()
    dataset = WindowDataset(clips, cache, model.frames)
    sampler = StepBatchSampler(
        dataset.lengths(), model.frames, config.batch, config.seed, first_step, last_step, rank, world
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG untouched
    )
    return loader


def total_steps_for(config: TrainConfig, clips: int) -> int:
    if config.steps is not None:
        return config.steps
    return max(1, math.ceil(config.epochs * clips / config.batch))


def save_on_main(t: Trainer, run: Path, keep: int) -> None:
    """Checkpoint the run: rank 0 writes it, after checking that every process holds the same weights,
    and the others wait until it is complete. Every process calls this at the same step."""
    distributed.check_replicas(t.generator, t.flow_encoder, t.discriminator)
    if is_main_process():
        save_checkpoint(t, run, keep)
    distributed.barrier()


def train(
    config: TrainConfig,
    run: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    device: str = "auto",
    amp: str = "auto",
    workers: int = 0,
    checkpoint_every: int = 1000,
    keep: int = 3,
    log_every: int = 10,
    stop_at: int | None = None,
    progress: bool = True,
) -> Path:
    """Train (or resume) the run in `run`; returns the newest checkpoint. See the module docstring.

    Started by torchrun with several processes, each process calls this: it sets up the process group
    itself (training.distributed), `config.batch` is the global batch, and every process returns the
    checkpoint that rank 0 wrote.
    """
    run = Path(run)
    dev = resolve_device(device)
    # `cleanup` closes before the process group does, so the group's last holders are gone by then.
    with distributed.process_group(dev), contextlib.ExitStack() as cleanup:
        config.validate(rank_and_world()[1])
        config = distributed.on_main_process(check_run, config, run, resume, force)
        clips = find_training_clips(config)  # every input is checked before the run folder is created
        if not resume:
            distributed.on_main_process(create_run, config, run)
        use_amp = dev.type == "cuda" if amp == "auto" else amp == "on"
        trainer = build_trainer(config, total_steps_for(config, len(clips)), dev, use_amp)
        cleanup.callback(trainer.release)
        resume_from = latest_checkpoint(run) if resume else None
        if resume_from is not None:
            restore(trainer, resume_from)
            log.info("resumed %s at step %d from %s", run, trainer.step, resume_from)
        trainer.parallelize()
        last = min(trainer.total_steps, stop_at) if stop_at is not None else trainer.total_steps
        if trainer.step >= last:
            log.info("run %s is already at step %d; nothing to do", run, trainer.step)
            if resume_from is None:
                save_on_main(trainer, run, keep)
        else:
            loader = make_loader(config, clips, trainer.step, last, workers, dev)
            metrics = MetricsLog(run, trainer.step if resume else None) if is_main_process() else None
            run_loop(trainer, loader, run, metrics, last, checkpoint_every, keep, log_every, progress)
        return latest_checkpoint(run) or run


def run_loop(
    trainer: Trainer,
    loader: DataLoader,
    run: Path,
    metrics: MetricsLog | None,
    last: int,
    checkpoint_every: int,
    keep: int,
    log_every: int,
    progress: bool,
) -> None:
    """Train until step `last`, logging and checkpointing; on Ctrl-C save the last finished step."""
    main = is_main_process()
    bar = tqdm(
        total=trainer.total_steps,
        initial=trainer.step,
        desc="train",
        unit="step",
        disable=not (main and progress),
    )
    sums: dict[str, float] = dict.fromkeys(METRICS, 0.0)
    count, saved_step = 0, trainer.step
    started = time.monotonic() - trainer.elapsed_s
    with distributed.deferred_interrupts() as stop_requested:
        try:
            for batch in loader:
                values, stop = distributed.mean_over_processes(
                    train_step(trainer, batch), stop_requested.is_set()
                )
                if not all(math.isfinite(v) for v in values.values()):
                    raise FloatingPointError(
                        f"training diverged at step {trainer.step} ({values}); lower the learning rates or "
                        "check the data"
                    )
                trainer.elapsed_s = time.monotonic() - started
                for key in METRICS:
                    sums[key] += values[key]
                count += 1
                bar.update(1)
                if trainer.step % log_every == 0 or trainer.step == last:
                    row = {k: sums[k] / count for k in METRICS}
                    row.update(
                        step=trainer.step,
                        wall_s=round(trainer.elapsed_s, 2),
                        lr_g=trainer.opt_g.param_groups[0]["lr"],
                        lr_d=trainer.opt_d.param_groups[0]["lr"],
                    )
                    if metrics is not None:
                        metrics.write(row)
                    bar.set_postfix(
                        content=f"{row['content']:.4f}",
                        motion=f"{row['motion']:.4f}",
                        d=f"{row['loss_d']:.3f}",
                    )
                    sums, count = dict.fromkeys(METRICS, 0.0), 0
                if trainer.step % checkpoint_every == 0:
                    save_on_main(trainer, run, keep)
                    saved_step = trainer.step
                if stop:  # a process was sent Ctrl-C or SIGTERM under torchrun; all stop here
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if trainer.step > saved_step:
                if main:
                    log.warning("interrupted: saving step %d so that --resume continues", trainer.step)
                save_on_main(trainer, run, keep)
            raise
        finally:
            bar.close()
            if metrics is not None:
                metrics.close()
    if trainer.step > saved_step:
        save_on_main(trainer, run, keep)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    defaults = TrainConfig(data="")
    parser = argparse.ArgumentParser(
        prog="dtvnet train",
        description="Train DTVNet on a Sky Time-lapse-layout folder or a folder of videos.",
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, metrics)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its latest checkpoint"
    )
    parser.add_argument(
        "--force", action="store_true", help="delete a training run in --out and start over (no other folder)"
    )
    parser.add_argument("--data", help="data root: <split>/<video>/<clip>/*.jpg, or video files")
    opt = parser.add_argument_group("training options (stored in the run; a resume reuses them)")
    opt.add_argument("--split", help=f"split folder under --data (default {defaults.split})")
    opt.add_argument("--preset", help=f"model preset: paper, small, demo, tiny (default {defaults.preset})")
    opt.add_argument("--steps", type=int, help="training steps (default: from --epochs)")
    opt.add_argument(
        "--epochs", type=float, help=f"epochs of one window per clip (default {defaults.epochs:g})"
    )
    opt.add_argument("--batch", type=int, help=f"clips per step, at least 2 (default {defaults.batch})")
    opt.add_argument("--lr-g", type=float, help=f"generator learning rate (default {defaults.lr_g:g})")
    opt.add_argument("--lr-ofe", type=float, help=f"flow encoder learning rate (default {defaults.lr_ofe:g})")
    opt.add_argument("--lr-d", type=float, help=f"discriminator learning rate (default {defaults.lr_d:g})")
    opt.add_argument(
        "--constant-lr-fraction", type=float, help="share of steps before the linear decay (default 100/199)"
    )
    opt.add_argument(
        "--final-lr-factor",
        type=float,
        help=f"lr at the end / initial (default {defaults.final_lr_factor:g})",
    )
    opt.add_argument("--content-weight", type=float, help=f"default {defaults.content_weight:g}")
    opt.add_argument("--motion-weight", type=float, help=f"default {defaults.motion_weight:g}")
    opt.add_argument("--adv-weight", type=float, help=f"default {defaults.adv_weight:g}")
    opt.add_argument("--gp-weight", type=float, help=f"default {defaults.gp_weight:g}")
    opt.add_argument("--gan", choices=GAN_LOSSES, help=f"adversarial loss (default {defaults.gan})")
    opt.add_argument("--seed", type=int, help=f"model init and data sampling (default {defaults.seed})")
    opt.add_argument("--flow", help=f"flow estimator (default {defaults.flow})")
    opt.add_argument("--flow-cache", help="flow cache folder (default <data>/.flowcache)")
    rt = parser.add_argument_group("session options (may change between resumes)")
    rt.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    rt.add_argument(
        "--amp", choices=("auto", "on", "off"), default="auto", help="mixed precision (auto: on CUDA)"
    )
    rt.add_argument("--workers", type=int, default=0, help="data loader processes (default 0)")
    rt.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: torch's; 1 is faster on a busy shared CPU)",
    )
    rt.add_argument(
        "--checkpoint-every", type=int, default=1000, help="steps between checkpoints (default 1000)"
    )
    rt.add_argument("--keep", type=int, default=3, help="checkpoints to keep (default 3)")
    rt.add_argument("--log-every", type=int, default=10, help="steps per metrics row (default 10)")
    rt.add_argument(
        "--stop-at", type=int, help="stop after this step with a checkpoint; --resume continues later"
    )
    rt.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    if args.resume:
        stored = args.out / CONFIG_FILE
        base = json.loads(stored.read_text()) if stored.is_file() else {"data": args.data or ""}
        config = TrainConfig(**{**base, **given})
    else:
        if not args.data:
            parser.error("--data is required (unless --resume)")
        config = TrainConfig(**given)
    try:
        config.validate(distributed.env_world_size())
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` saves a checkpoint like Ctrl-C does
    try:
        final = train(
            config,
            args.out,
            resume=args.resume,
            force=args.force,
            device=args.device,
            amp=args.amp,
            workers=args.workers,
            checkpoint_every=args.checkpoint_every,
            keep=args.keep,
            log_every=args.log_every,
            stop_at=args.stop_at,
            progress=not args.no_progress,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    if distributed.env_rank() == 0:
        print(f"checkpoint {final}")
    return 0


if __name__ == "__main__":
    import sys

    from runtime.console import run_cli

    sys.exit(run_cli(main))
