"""The deployed graphs: the modules that export writes to ONNX and the PyTorch backend runs.

One definition for both, so an exported artifact and the checkpoint it came from compute the same thing
(`export.parity` checks exactly that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from training.model.flow_encoder import FlowEncoder
from training.model.generator import Generator

if TYPE_CHECKING:
    from training.checkpoint import Checkpoint


class GeneratorGraph(nn.Module):
    """The deployed generator: video and its flows (which guide HD rendering), equalized-lr folded."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator.eval().fold_equalized_lr()
        self.eval()  # the legacy exporter restores the wrapper's mode onto every submodule afterwards

    def forward(self, image: torch.Tensor, motion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.generator(image, motion)
        return out.video, out.flows


class FlowEncoderGraph(nn.Module):
    """The deployed flow encoder: flows -> motion vector normalized with training statistics."""

    def __init__(self, flow_encoder: FlowEncoder) -> None:
        super().__init__()
        self.flow_encoder = flow_encoder.eval()
        self.eval()

    def forward(self, flows: torch.Tensor) -> torch.Tensor:
        return self.flow_encoder.encode(flows)


GRAPHS: dict[str, type[nn.Module]] = {"generator": GeneratorGraph, "flow_encoder": FlowEncoderGraph}


def reference_module(source: Checkpoint, kind: str) -> nn.Module:
    """The module that is exported for `kind`, which is also the parity reference."""
    return GRAPHS[kind](source.build(kind))
