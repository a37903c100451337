"""Building blocks shared by the generator, flow encoder and discriminator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate (StyleGAN): weight ~ N(0, 1), scaled at run time.

    The reference code applies the scale sqrt(2 / fan_in) through a forward pre-hook; here it is a
    plain attribute used in `forward` (ARCHITECTURE.md, quirk 6). Export folds it into the weight
    with `fold_scale`, after which `scale` is 1.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = math.sqrt(2.0 / in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.scale == 1.0 else self.weight * self.scale
        return F.linear(x, weight, self.bias)

    @torch.no_grad()
    def fold_scale(self) -> None:
        """Multiply the scale into the stored weight (for export); the output is unchanged."""
        self.weight.mul_(self.scale)
        self.scale = 1.0

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, scale={self.scale:.5f}"


def mlp(width: int, layers: int, slope: float = 0.2) -> nn.Sequential:
    """`layers` x [EqualLinear(width, width) -> LeakyReLU(slope)]: the mapping and style networks."""
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [EqualLinear(width, width), nn.LeakyReLU(slope)]
    return nn.Sequential(*modules)


class ResBlock(nn.Module):
    """ReflectionPad 1 -> Conv3x3 -> BN -> ReLU -> ReflectionPad 1 -> Conv3x3 -> BN, plus identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        y = self.bn2(self.conv2(F.pad(y, (1, 1, 1, 1), mode="reflect")))
        return x + y


def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-sample, per-channel normalization over H, W (= InstanceNorm2d without affine).

    Written with explicit reductions rather than `F.instance_norm` so that exporters see plain ops
    (the legacy ONNX exporter mishandles InstanceNorm with a dynamic batch) and the FP16 pass can
    keep exactly these statistics in float32.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    centered = x - mean
    var = centered.pow(2).mean(dim=(2, 3), keepdim=True)
    return centered * torch.rsqrt(var + eps)


class AdaIN(nn.Module):
    """InstanceNorm then `gamma * x + beta`, with (gamma, beta) = EqualLinear(style), split in half.

    The affine bias starts at gamma = 1, beta = 0, so an untrained layer is a plain InstanceNorm.
    """

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(style_dim, 2 * channels)
        with torch.no_grad():
            self.affine.bias[:channels] = 1.0
            self.affine.bias[channels:] = 0.0

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(style).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return gamma * instance_norm(x) + beta


@torch.no_grad()
def init_dcgan_(module: nn.Module) -> None:
    """Reference init: conv weights N(0, 0.02), BN weights N(1, 0.02), biases 0.

    EqualLinear keeps its N(0, 1) weights: equalized learning rate depends on them.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
