"""DTVNet's Dynamic Video Generator (DVG): first frame + motion vector -> 32-frame video and flows.

Layer for layer as in ARCHITECTURE.md: shared encoder phi_E, content stream phi_C (residual
blocks), motion stream phi_M (residual blocks, each followed by AdaIN driven by the mapped motion
vector, then a flow head), and decoder phi_D on [content, flows]. No warping, no 3D convolution.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from training.model.config import DTVNetConfig
from training.model.layers import AdaIN, EqualLinear, ResBlock, init_dcgan_, mlp


class GeneratorOutput(NamedTuple):
    video: torch.Tensor  # [B, 3, T, H, W] in [-1, 1]
    flows: torch.Tensor  # [B, 2, T, H/2, W/2]: (u, v) per frame, pixels at half resolution


class Encoder(nn.Module):
    """phi_E: ReflectionPad 2, Conv5x5 3->ngf, then two 3x3 convs to 2*ngf at half resolution."""

    def __init__(self, ngf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, ngf, 5, bias=False)
        self.bn1 = nn.BatchNorm2d(ngf)
        self.conv2 = nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * ngf)
        self.conv3 = nn.Conv2d(2 * ngf, 2 * ngf, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(2 * ngf)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(F.pad(image, (2, 2, 2, 2), mode="reflect"))))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.relu(self.bn3(self.conv3(x)))


class ContentStream(nn.Module):
    """phi_C: residual blocks at 2*ngf channels."""

    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(ResBlock(channels) for _ in range(blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class MotionStream(nn.Module):
    """phi_M: image features + motion vector -> low-resolution flows for every frame."""

    def __init__(self, config: DTVNetConfig) -> None:
        super().__init__()
        c, dim = config.ngf, config.motion_dim
        self.image_conv = nn.Conv2d(2 * c, c, 3, padding=1, bias=False)
        self.image_bn = nn.BatchNorm2d(c)
        self.mapping = mlp(dim, config.mapping_layers)
        self.blocks = nn.ModuleList(ResBlock(c) for _ in range(config.motion_blocks))
        self.styles = nn.ModuleList(mlp(dim, config.style_layers) for _ in range(config.motion_blocks))
        self.adains = nn.ModuleList(AdaIN(c, dim) for _ in range(config.motion_blocks))
        self.flow_head = nn.Conv2d(c, 2 * config.frames, 3, padding=1)

    def forward(self, shared: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.image_bn(self.image_conv(shared)))
        w = self.mapping(motion)
        for block, style, adain in zip(self.blocks, self.styles, self.adains, strict=True):
            x = adain(block(x), style(w))
        return F.leaky_relu(self.flow_head(x), 0.1)


class Decoder(nn.Module):
    """phi_D: [content, flows] -> 3*T channels at full resolution -> tanh."""

    def __init__(self, config: DTVNetConfig) -> None:
        super().__init__()
        c_in = 2 * config.ngf + 2 * config.frames
        width = 3 * config.frames
        self.conv1 = nn.Conv2d(c_in, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.up = nn.ConvTranspose2d(width, width, 3, stride=2, padding=1, output_padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.out_conv = nn.Conv2d(width, width, 5)

    def forward(self, content: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
        x = torch.cat([content, flows], dim=1)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.up(x)))
        return torch.tanh(self.out_conv(F.pad(x, (2, 2, 2, 2), mode="reflect")))


class Generator(nn.Module):
    """DVG. `forward(image, motion)` takes an already-normalized motion vector (ARCHITECTURE.md, quirk 1):
    each sample's output depends only on its own inputs (in eval mode)."""

    def __init__(self, config: DTVNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or DTVNetConfig()
        self.encoder = Encoder(self.config.ngf)
        self.content = ContentStream(2 * self.config.ngf, self.config.content_blocks)
        self.motion = MotionStream(self.config)
        self.decoder = Decoder(self.config)
        init_dcgan_(self)

    def forward(self, image: torch.Tensor, motion: torch.Tensor) -> GeneratorOutput:
        cfg = self.config
        shared = self.encoder(image)
        content = self.content(shared)
        flows = self.motion(shared, motion)  # [B, 2T, h, w], channels 2t, 2t+1 = (u, v) of frame t
        frames = self.decoder(content, flows)  # [B, 3T, H, W], channel = colour * T + t
        b, _, h, w = frames.shape
        video = frames.view(b, 3, cfg.frames, h, w)
        flows = flows.view(b, cfg.frames, 2, h // 2, w // 2).transpose(1, 2)
        return GeneratorOutput(video, flows)

    def fold_equalized_lr(self) -> Generator:
        """Fold every EqualLinear scale into its weight (in place); outputs stay the same."""
        for m in self.modules():
            if isinstance(m, EqualLinear):
                m.fold_scale()
        return self
