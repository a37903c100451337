#include "dtvnet/seeded_normal.h"

#include <cmath>

namespace dtvnet {
namespace {
constexpr std::uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ULL;
constexpr double kPi = 3.141592653589793;  // == numpy.pi
constexpr double kTwoToMinus53 = 1.0 / 9007199254740992.0;

double uniform(std::uint64_t seed, std::uint64_t k) {
  return (static_cast<double>(splitmix64_word(seed, k) >> 11) + 0.5) * kTwoToMinus53;
}
}  // namespace

std::uint64_t splitmix64_word(std::uint64_t seed, std::uint64_t k) {
  std::uint64_t z = seed + (k + 1) * kGoldenGamma;  // unsigned arithmetic wraps mod 2^64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<float> seeded_normal(std::uint64_t seed, std::size_t dim, std::size_t count, std::size_t first) {
  std::vector<float> out(dim * count);
  const std::uint64_t start = 2 * static_cast<std::uint64_t>(first) * dim;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double u0 = uniform(seed, start + 2 * i);
    const double u1 = uniform(seed, start + 2 * i + 1);
    // Same operation order as numpy: sqrt(-2.0 * log(u0)) * cos((2.0 * pi) * u1).
    const double radius = std::sqrt(-2.0 * std::log(u0));
    const double angle = (2.0 * kPi) * u1;
    out[i] = static_cast<float>(radius * std::cos(angle));
  }
  return out;
}

}  // namespace dtvnet
