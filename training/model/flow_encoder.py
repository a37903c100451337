"""Optical Flow Encoder (OFE): a clip's flows -> motion vector, plus its normalization.

The reference code standardizes OFE outputs across the batch inside the model, which zeroes the
vector at batch 1 and couples samples (ARCHITECTURE.md, quirk 1). Here the encoder returns the raw
vector; `batch_standardize` is the training-side standardization, and the encoder keeps running
statistics of its outputs (updated by `update_motion_stats` during training) so that inference can
normalize a single clip's vector with `normalize`.
"""

from __future__ import annotations

import torch
from torch import nn

from training.model.config import DTVNetConfig


def conv3d_stack(
    in_channels: int, base: int, downsamples: int, norm: type[nn.Module], last_slope: float = 0.2
) -> tuple[nn.Sequential, int]:
    """Stem Conv3d k(3,4,4) s(1,2,2) then `downsamples` x [Conv3d k4 s2 -> norm -> LeakyReLU].

    Shared by the flow encoder (BatchNorm3d, no activation after the stem) and the discriminator
    (InstanceNorm3d, LeakyReLU after the stem); returns the stack and its output width.
    """
    layers: list[nn.Module] = [nn.Conv3d(in_channels, base, (3, 4, 4), (1, 2, 2), 1, bias=False)]
    channels = base
    for i in range(downsamples):
        slope = last_slope if i == downsamples - 1 else 0.2
        layers += [
            nn.Conv3d(channels, 2 * channels, 4, 2, 1, bias=False),
            norm(2 * channels),
            nn.LeakyReLU(slope),
        ]
        channels *= 2
    return nn.Sequential(*layers), channels


def final_kernel(config: DTVNetConfig, downsamples: int) -> tuple[int, int, int]:
    """Kernel that reduces the stack's output to 1x1x1 (reference: (2, 4, 4))."""
    side = config.image_size // 2 ** (downsamples + 1)
    return (config.frames // 2**downsamples, side, side)


def batch_standardize(motion: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Training only: standardize each dimension across the batch (mean 0, variance 1).

    This is what the reference model does inside the OFE; it makes samples depend on each other,
    so it never runs at inference.
    """
    mean = motion.mean(dim=0, keepdim=True)
    var = motion.var(dim=0, unbiased=False, keepdim=True)
    return (motion - mean) * torch.rsqrt(var + eps)


class FlowEncoder(nn.Module):
    """psi: flows [B, 2, T, H, W] (pixels at model resolution) -> raw motion vector [B, motion_dim]."""

    def __init__(self, config: DTVNetConfig | None = None, stats_momentum: float = 0.01) -> None:
        super().__init__()
        self.config = config or DTVNetConfig()
        cfg = self.config
        self.features, width = conv3d_stack(2, cfg.ofe_channels, cfg.ofe_downsamples, nn.BatchNorm3d)
        self.reduce = nn.Conv3d(width, width, final_kernel(cfg, cfg.ofe_downsamples), bias=False)
        self.fc = nn.Linear(width, cfg.motion_dim)
        self.stats_momentum = stats_momentum
        # Moments of raw motion vectors over training batches: E[f] and E[f^2] (exponential averages).
        self.register_buffer("motion_mean", torch.zeros(cfg.motion_dim))
        self.register_buffer("motion_sqmean", torch.ones(cfg.motion_dim))

    def forward(self, flows: torch.Tensor) -> torch.Tensor:
        return self.fc(self.reduce(self.features(flows)).flatten(1))

    @torch.no_grad()
    def update_motion_stats(self, motion: torch.Tensor) -> None:
        """Track the first two moments of raw vectors seen in training (exponential moving averages).

        Moments rather than per-batch variances, so that small batches do not bias the variance low.
        """
        m = self.stats_momentum
        motion = motion.detach().to(self.motion_mean.dtype)
        self.motion_mean.lerp_(motion.mean(dim=0), m)
        self.motion_sqmean.lerp_(motion.pow(2).mean(dim=0), m)

    @property
    def motion_var(self) -> torch.Tensor:
        return (self.motion_sqmean - self.motion_mean.pow(2)).clamp_min(0.0)

    def normalize(self, motion: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
        """Inference: standardize with the statistics stored at training time (per sample)."""
        return (motion - self.motion_mean) * torch.rsqrt(self.motion_var + eps)

    def encode(self, flows: torch.Tensor) -> torch.Tensor:
        """Flows -> normalized motion vector ready for `Generator.forward`, batch-independent."""
        return self.normalize(self(flows))
