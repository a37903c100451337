"""3D-convolutional video discriminator: one score per clip (ARCHITECTURE.md)."""

from __future__ import annotations

import torch
from torch import nn

from training.model.config import DTVNetConfig
from training.model.flow_encoder import conv3d_stack, final_kernel
from training.model.layers import init_dcgan_


class Discriminator(nn.Module):
    """video [B, 3, T, H, W] -> scores [B]. InstanceNorm3d without affine; last block LeakyReLU 0.01."""

    def __init__(self, config: DTVNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or DTVNetConfig()
        cfg = self.config
        stack, width = conv3d_stack(3, cfg.d_channels, cfg.d_downsamples, nn.InstanceNorm3d, last_slope=0.01)
        # The discriminator's stem is followed by LeakyReLU 0.2 (the flow encoder's is not).
        self.features = nn.Sequential(stack[0], nn.LeakyReLU(0.2), *list(stack)[1:])
        self.score = nn.Conv3d(width, 1, final_kernel(cfg, cfg.d_downsamples), bias=False)
        init_dcgan_(self)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(video)).flatten()
