"""DTVNet in PyTorch: generator, optical flow encoder, discriminator and their configuration."""

from training.model.config import PRESETS, DTVNetConfig, preset
from training.model.discriminator import Discriminator
from training.model.flops import generator_flops
from training.model.flow_encoder import FlowEncoder, batch_standardize
from training.model.generator import Generator, GeneratorOutput
from training.model.layers import EqualLinear

__all__ = [
    "PRESETS",
    "DTVNetConfig",
    "Discriminator",
    "EqualLinear",
    "FlowEncoder",
    "Generator",
    "GeneratorOutput",
    "batch_standardize",
    "build_models",
    "generator_flops",
    "preset",
]


def build_models(
    config: DTVNetConfig | None = None, seed: int | None = 0
) -> tuple[Generator, FlowEncoder, Discriminator]:
    """Generator, flow encoder and discriminator, initialized deterministically from `seed`."""
    import torch

    config = config or DTVNetConfig()
    if seed is not None:
        torch.manual_seed(seed)
    return Generator(config), FlowEncoder(config), Discriminator(config)
