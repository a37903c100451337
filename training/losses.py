"""DTVNet's losses (ARCHITECTURE.md, "Training"): content L1, motion L1, and the adversarial loss.

Generator:      100 * L1(video, real) + 1 * L1(flows, real flows at half resolution) + 1 * adversarial.
Discriminator:  adversarial + 10 * gradient penalty on random interpolates of real and fake clips.
The reference code's adversarial loss is LSGAN (what this project uses by default); the paper calls it
WGAN-GP, which is selectable. Means, not sums, over every element: the weights are the reference's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

GAN_LOSSES = ("lsgan", "wgan")


def content_loss(video: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over every pixel of every frame."""
    return F.l1_loss(video.float(), real.float())


def motion_loss(flows: torch.Tensor, real_flows_half: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between the generator's half-resolution flows and the real ones."""
    return F.l1_loss(flows.float(), real_flows_half.float())


def discriminator_loss(kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN: 0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2)); WGAN: mean(D(fake)) - mean(D(real))."""
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    if kind == "lsgan":
        return 0.5 * ((real_scores - 1).pow(2).mean() + fake_scores.pow(2).mean())
    if kind == "wgan":
        return fake_scores.mean() - real_scores.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(GAN_LOSSES)}")


def generator_adversarial_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN: mean((D(fake) - 1)^2); WGAN: -mean(D(fake))."""
    fake_scores = fake_scores.float()
    if kind == "lsgan":
        return (fake_scores - 1).pow(2).mean()
    if kind == "wgan":
        return -fake_scores.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(GAN_LOSSES)}")


def gradient_penalty(
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    alpha: torch.Tensor | None = None,
    scale_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
    inv_scale: float = 1.0,
) -> torch.Tensor:
    """mean over the batch of (||grad_x D(x)||_2 - 1)^2 at x = a * real + (1 - a) * fake, a ~ U(0, 1).

    `alpha` ([B], one weight per clip) defaults to fresh uniform draws from the global RNG.

    Under mixed precision pass the GradScaler's `scale` and the inverse of its current scale: the
    gradient is taken of the scaled scores (so fp16 gradients do not underflow) and then unscaled,
    as in PyTorch's AMP recipe for gradient penalties.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device)
    alpha = alpha.to(real.device, real.dtype).view(-1, *([1] * (real.dim() - 1)))
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = discriminator(mixed).sum()
    if scale_loss is not None:
        scores = scale_loss(scores)
    (grad,) = torch.autograd.grad(scores, mixed, create_graph=True)
    grad = grad.float() * inv_scale
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
