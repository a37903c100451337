// Seeded standard-normal motion vectors, bit for bit the scheme of runtime/seeded_normal.py:
// SplitMix64 words, u = ((w >> 11) + 0.5) * 2^-53, Box-Muller cosine branch in double, then float.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dtvnet {

// Word k (k = 0, 1, ...) of the SplitMix64 stream seeded with `seed`.
std::uint64_t splitmix64_word(std::uint64_t seed, std::uint64_t k);

// `count` vectors of length `dim` (vectors first .. first+count-1 of the seed's stream), row-major.
std::vector<float> seeded_normal(std::uint64_t seed, std::size_t dim, std::size_t count = 1,
                                 std::size_t first = 0);

}  // namespace dtvnet
