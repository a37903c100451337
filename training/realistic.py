"""Checkpoints whose generator produces realistic frames, for precision tests and benchmarks.

A freshly initialized generator (conv weights N(0, 0.02), BatchNorm statistics 0/1) outputs frames of
about 1e-3 in magnitude, so a PSNR against [-1, 1] is trivially high and says nothing about fp16.
Here conv weights get He initialization and BatchNorm statistics are measured on random inputs, so
frames spread over [-1, 1] (rms about 0.6) like a trained model's, and every layer carries signal.
Where no trained model of a configuration exists (the paper's), the benchmarks time and quantize one
of these: int8 layer selection depends on the weights, and a fresh init would let every layer pass.

Random weights make frames of per-pixel noise that changes completely from one frame to the next, the
worst case for a video encoder (no frame predicts the next). `fitted_checkpoint` is a generator after a
minute of fitting to procedural time-lapses instead: smooth frames that change a little from one to the
next, like a trained model's, for measuring what writing a real model's video costs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training import checkpoint
from training.data.synth import render_clip
from training.model import build_models, preset

FIT_CLIPS = 16  # procedural clips the fitted generator learns to reproduce
FIT_BATCH = 2
FIT_LR = 1e-3


@torch.no_grad()
def calibrate(
    generator: nn.Module, image_size: int, motion_dim: int, batches: int = 2, seed: int = 0
) -> None:
    """He-initialize convolutions, then set BatchNorm running statistics from random inputs."""
    gen = torch.Generator().manual_seed(seed)
    for m in generator.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            fan_in = (
                m.weight[0].numel()
                if isinstance(m, nn.Conv2d)
                else m.weight.shape[0] * m.weight[0, 0].numel()
            )
            m.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    generator.train()
    for _ in range(batches):
        image = torch.rand(4, 3, image_size, image_size, generator=gen) * 2 - 1
        generator(image, torch.randn(4, motion_dim, generator=gen))
    for m in generator.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    generator.eval()


def realistic_checkpoint(path: Path, preset_name: str = "tiny", seed: int = 0) -> Path:
    """A checkpoint (generator, flow encoder, discriminator) with a calibrated generator."""
    config = preset(preset_name)
    generator, flow_encoder, discriminator = build_models(config, seed=seed)
    calibrate(generator, config.image_size, config.motion_dim, seed=seed)
    return checkpoint.save(
        path,
        config,
        generator=generator,
        flow_encoder=flow_encoder,
        discriminator=discriminator,
        metadata={
            "source": f"realistic random weights (training.realistic), preset {preset_name}, seed {seed}"
        },
    )


def fitted_checkpoint(path: Path, preset_name: str = "tiny", seed: int = 0, steps: int = 100) -> Path:
    """A checkpoint whose generator was fitted for `steps` steps (L1 to the clip, from its first frame
    and a random motion vector) to procedural time-lapses: no model of skies, but its frames are smooth
    and coherent in time like a trained model's (random weights make per-frame noise)."""
    config = preset(preset_name)
    generator, flow_encoder, _ = build_models(config, seed=seed)
    clips = np.stack(
        [render_clip(seed * FIT_CLIPS + i, config.frames, config.image_size).frames for i in range(FIT_CLIPS)]
    )
    videos = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1)  # [N, 3, T, S, S]
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(generator.parameters(), lr=FIT_LR, betas=(0.5, 0.999))
    generator.train()
    for _ in range(steps):
        target = videos[torch.randint(0, FIT_CLIPS, (FIT_BATCH,), generator=gen)]
        video = generator(target[:, :, 0], torch.randn(FIT_BATCH, config.motion_dim, generator=gen)).video
        loss = (video - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    generator.eval()
    return checkpoint.save(
        path,
        config,
        generator=generator,
        flow_encoder=flow_encoder,
        metadata={
            "source": f"generator fitted to procedural time-lapses for {steps} steps (training.realistic), "
            f"preset {preset_name}, seed {seed}"
        },
    )
