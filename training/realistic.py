"""Checkpoints whose generator produces realistic frames, for precision tests and benchmarks.

A freshly initialized generator (conv weights N(0, 0.02), BatchNorm statistics 0/1) outputs frames of
about 1e-3 in magnitude, so a PSNR against [-1, 1] is trivially high and says nothing about fp16.
Here conv weights get He initialization and BatchNorm statistics are measured on random inputs, so
frames spread over [-1, 1] (rms about 0.6) like a trained model's, and every layer carries signal.
Where no trained model of a configuration exists (the paper's), the benchmarks time and quantize one
of these: int8 layer selection depends on the weights, and a fresh init would let every layer pass.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from training import checkpoint
from training.model import build_models, preset


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
