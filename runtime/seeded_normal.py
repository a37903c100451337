"""Seeded standard-normal motion vectors, defined exactly so that every host draws the same numbers.

Python (this module), the C++ host (`cpp/src/seeded_normal.cpp`) and anything else that wants the
same video for the same seed implement this scheme:

1. Bits: SplitMix64 seeded with `seed` (an integer in [0, 2**64)). Word k (k = 0, 1, 2, ...) is
   `mix(seed + (k + 1) * 0x9E3779B97F4A7C15 mod 2**64)` where
   `mix(z) = z ^ (z >> 31)` after `z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9` and
   `z = (z ^ (z >> 27)) * 0x94D049BB133111EB` (all mod 2**64). This is the standard SplitMix64
   stream, and being counter-based any word can be computed directly.
2. Uniforms: `u_k = ((word_k >> 11) + 0.5) * 2**-53`, a double in the open interval (0, 1).
3. Normals (Box-Muller, cosine branch only): element i of the stream is
   `sqrt(-2 ln u_{2i}) * cos(2 pi u_{2i+1})`, computed in double precision, then rounded to float32.
4. Vector j of dimension d (the j-th clip drawn from one seed) is stream elements [j*d, (j+1)*d).
"""

from __future__ import annotations

import numpy as np

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MAX_SEED = 2**64


def splitmix64_words(seed: int, start: int, count: int) -> np.ndarray:
    """Words [start, start+count) of the SplitMix64 stream seeded with `seed`, as uint64."""
    if not 0 <= seed < _MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed}")
    k = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + k * GOLDEN_GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def seeded_normal(seed: int, dim: int, count: int = 1, first: int = 0) -> np.ndarray:
    """`count` float32 vectors of length `dim` (vectors first..first+count-1 of `seed`'s stream)."""
    n = dim * count
    words = splitmix64_words(seed, 2 * first * dim, 2 * n)
    u = ((words >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    normals = np.sqrt(-2.0 * np.log(u[0::2])) * np.cos(2.0 * np.pi * u[1::2])
    return normals.astype(np.float32).reshape(count, dim)
