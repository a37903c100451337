"""Losses against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.losses import (
    content_loss,
    discriminator_loss,
    generator_adversarial_loss,
    gradient_penalty,
    motion_loss,
)


def test_l1_losses_are_means():
    a = torch.zeros(2, 3, 4, 5, 5)
    b = torch.full_like(a, 0.5)
    b[0] = -1.5
    assert float(content_loss(a, b)) == pytest.approx((1.5 + 0.5) / 2)
    assert float(motion_loss(torch.ones(1, 2, 3, 4, 4), torch.zeros(1, 2, 3, 4, 4))) == 1.0


def test_adversarial_losses():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert float(discriminator_loss("lsgan", real, fake)) == pytest.approx(0.5 * (0.5 + 0.5))
    assert float(discriminator_loss("wgan", real, fake)) == pytest.approx(0.5 - 0.5)
    assert float(discriminator_loss("wgan", torch.tensor([2.0]), torch.tensor([-1.0]))) == -3.0
    assert float(generator_adversarial_loss("lsgan", torch.tensor([0.0, 3.0]))) == pytest.approx((1 + 4) / 2)
    assert float(generator_adversarial_loss("wgan", torch.tensor([0.5, 1.5]))) == -1.0
    with pytest.raises(ValueError, match="unknown GAN loss"):
        discriminator_loss("hinge", real, fake)


class LinearCritic(nn.Module):
    """D(x) = <w, x> per sample: its input gradient is w everywhere, whatever the interpolate."""

    def __init__(self, shape: tuple[int, ...], norm: float) -> None:
        super().__init__()
        w = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        self.w = nn.Parameter(w / w.norm() * norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


@pytest.mark.parametrize("norm", [2.0, 0.25])
def test_gradient_penalty_of_a_linear_critic(norm: float):
    critic = LinearCritic((3, 2, 4, 4), norm)
    real, fake = torch.randn(3, 3, 2, 4, 4), torch.randn(3, 3, 2, 4, 4)
    assert float(gradient_penalty(critic, real, fake).detach()) == pytest.approx((norm - 1) ** 2, rel=1e-5)
    # The mixed-precision path: gradients of scaled scores, unscaled afterwards.
    scaled = gradient_penalty(critic, real, fake, scale_loss=lambda s: s * 1024.0, inv_scale=1 / 1024.0)
    assert float(scaled.detach()) == pytest.approx((norm - 1) ** 2, rel=1e-5)


def test_gradient_penalty_reaches_the_critic_weights():
    critic = LinearCritic((2, 1, 2, 2), 3.0)
    gradient_penalty(critic, torch.randn(2, 2, 1, 2, 2), torch.randn(2, 2, 1, 2, 2)).backward()
    assert critic.w.grad is not None and float(critic.w.grad.abs().sum()) > 0
