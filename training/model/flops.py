"""Analytic compute cost of the generator from its configuration (convolutions and linears).

Benchmarks divide this by measured time to report achieved GFLOP/s. One multiply-add counts as
2 FLOP; normalization, activations and the reshape are left out (well under 1% of the total).
"""

from __future__ import annotations

from training.model.config import DTVNetConfig


def _conv(c_in: int, c_out: int, k: int, out_side: int) -> int:
    return c_in * c_out * k * k * out_side * out_side


def generator_macs(config: DTVNetConfig) -> dict[str, int]:
    """Multiply-accumulates of one clip, per part of the generator."""
    s, h, c, t, d = config.image_size, config.image_size // 2, config.ngf, config.frames, config.motion_dim
    res_block = 2 * _conv(2 * c, 2 * c, 3, h)
    motion_block = 2 * _conv(c, c, 3, h)
    return {
        "encoder": _conv(3, c, 5, s) + _conv(c, 2 * c, 3, h) + _conv(2 * c, 2 * c, 3, h),
        "content": config.content_blocks * res_block,
        "motion": (
            _conv(2 * c, c, 3, h)
            + config.motion_blocks * motion_block
            + _conv(c, 2 * t, 3, h)
            + d * d * (config.mapping_layers + config.motion_blocks * config.style_layers)
            + config.motion_blocks * d * 2 * c
        ),
        "decoder": (
            _conv(2 * c + 2 * t, 3 * t, 3, h)
            + _conv(3 * t, 3 * t, 3, h)
            + 3 * t * 3 * t * 9 * h * h  # transposed conv: every input pixel meets the full kernel
            + _conv(3 * t, 3 * t, 5, s)
        ),
    }


def generator_flops(config: DTVNetConfig) -> int:
    """FLOP of one clip (2 per multiply-add): about 38.5 GFLOP in the paper configuration."""
    return 2 * sum(generator_macs(config).values())
