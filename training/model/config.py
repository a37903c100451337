"""Model configuration: the paper's DTVNet by default, smaller presets for tests and CPU training.

Widths tied by the architecture (ARCHITECTURE.md): the encoder and content stream run at 2*ngf
channels, the motion stream at ngf, the flow head emits 2*frames channels (u, v per frame at half
resolution) and the decoder runs at 3*frames channels (colour*frames + t after the final reshape).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from runtime.errors import ConfigMismatchError


def field_differences(ours: Any, theirs: Any) -> list[tuple[str, Any, Any]]:
    """(name, ours, theirs) for every field where two instances of one dataclass differ."""
    return [
        (f.name, getattr(ours, f.name), getattr(theirs, f.name))
        for f in dataclasses.fields(ours)
        if getattr(ours, f.name) != getattr(theirs, f.name)
    ]


@dataclass(frozen=True)
class DTVNetConfig:
    image_size: int = 128
    frames: int = 32
    ngf: int = 64
    motion_dim: int = 512
    content_blocks: int = 9
    motion_blocks: int = 6  # one AdaIN after each motion-stream residual block
    mapping_layers: int = 3  # z -> w
    style_layers: int = 2  # w -> s_i, per AdaIN
    ofe_channels: int = 32  # flow encoder width after its stem, doubled at each downsample
    ofe_downsamples: int = 4
    d_channels: int = 32  # discriminator, same shape of stack as the flow encoder
    d_downsamples: int = 4

    def __post_init__(self) -> None:
        positive = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        bad = [name for name, value in positive.items() if not isinstance(value, int) or value < 1]
        if bad:
            raise ValueError(f"DTVNetConfig fields must be positive integers: {', '.join(bad)}")
        for prefix, downs in (("ofe", self.ofe_downsamples), ("d", self.d_downsamples)):
            if self.frames % (2**downs) or self.image_size % (2 ** (downs + 1)):
                raise ValueError(
                    f"{prefix}_downsamples={downs} needs frames divisible by {2**downs} and image_size "
                    f"divisible by {2 ** (downs + 1)} "
                    f"(got frames={self.frames}, image_size={self.image_size})"
                )

    @property
    def flow_size(self) -> int:
        """Side of the motion stream's flows (half the image)."""
        return self.image_size // 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DTVNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DTVNetConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    def check_same(self, other: DTVNetConfig, where: str) -> None:
        """Raise ConfigMismatchError naming every field where `other` (from `where`) differs."""
        diffs = [
            f"{name}={theirs} (expected {ours})" for name, ours, theirs in field_differences(self, other)
        ]
        if diffs:
            raise ConfigMismatchError(
                f"{where} was made for another model configuration: {', '.join(diffs)}; "
                "use a checkpoint of this configuration or build the model from the checkpoint's config."
            )


PRESETS: dict[str, DTVNetConfig] = {
    # The paper / reference-code configuration: 8,336,800 generator parameters.
    "paper": DTVNetConfig(),
    # Smallest sensible model, for unit tests (milliseconds per forward on CPU).
    "tiny": DTVNetConfig(
        image_size=32,
        frames=8,
        ngf=8,
        motion_dim=32,
        content_blocks=2,
        motion_blocks=2,
        ofe_channels=8,
        ofe_downsamples=2,
        d_channels=8,
        d_downsamples=2,
    ),
    # CPU-trainable model with the paper's 32 frames at 64x64.
    "small": DTVNetConfig(
        image_size=64,
        frames=32,
        ngf=32,
        motion_dim=128,
        content_blocks=4,
        motion_blocks=3,
        ofe_channels=16,
        ofe_downsamples=4,
        d_channels=16,
        d_downsamples=4,
    ),
}
# The bundled demo model (training/MODEL_CARD.md): "small" with a 4x cheaper discriminator, which is
# not shipped and only needs to critique 64x64 clips; it leaves more CPU steps for the generator.
PRESETS["demo"] = dataclasses.replace(PRESETS["small"], d_channels=8)


def preset(name: str) -> DTVNetConfig:
    """A named configuration; raises ValueError listing the names if unknown."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}") from None
