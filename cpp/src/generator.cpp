#include "dtvnet/generator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "dtvnet/backend.h"
#include "dtvnet/errors.h"
#include "dtvnet/seeded_normal.h"

namespace dtvnet {

void check_motion(const float* values, std::size_t count, const std::string& where) {
  float largest = 0.0f;
  for (std::size_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) throw MotionError(where + " contains NaN or infinite values; pass finite numbers.");
    largest = std::max(largest, std::fabs(values[i]));
  }
  if (largest > kMaxMotionAbs) {
    char magnitude[32];
    std::snprintf(magnitude, sizeof magnitude, "%.3g", static_cast<double>(largest));
    throw MotionError(where + " has an entry of magnitude " + magnitude +
                      ", beyond the 1000 this model accepts (it was trained on N(0, I) vectors); pass a "
                      "standardized vector, or a seed instead.");
  }
}

Generator::Generator(const std::filesystem::path& artifact, GeneratorOptions options)
    : artifact_(resolve_artifact(artifact)), options_(options) {
  validate_generator(artifact_.manifest);
  if (options_.verify_sha256) verify_integrity(artifact_);
  backend_ = make_backend(artifact_);
}

Generator::~Generator() = default;
Generator::Generator(Generator&&) noexcept = default;
Generator& Generator::operator=(Generator&&) noexcept = default;

std::vector<float> Generator::motion(std::uint64_t seed) const { return seeded_normal(seed, motion_dim()); }

Frames Generator::run(const ImageView& image, const std::vector<float>& motion) {
  if (motion.size() != static_cast<std::size_t>(motion_dim())) {
    throw MotionError("The motion vector has " + std::to_string(motion.size()) + " values, but " +
                      artifact_.manifest.where + " needs " + std::to_string(motion_dim()) + ".");
  }
  check_motion(motion.data(), motion.size());
  const std::vector<float> input = prepare_image(image, image_size(), options_.fit);
  const std::vector<float> video = run_tensors(input.data(), motion.data(), 1);
  return to_uint8_frames(video.data(), frames(), image_size());
}

Frames Generator::run(const ImageView& image, std::uint64_t seed) { return run(image, motion(seed)); }

std::vector<float> Generator::run_tensors(const float* image, const float* motion, int batch) {
  if (batch < 1) throw MotionError("The batch must hold at least one image.");
  const auto& b = artifact_.manifest.batch;
  if (b && b->count("max") && batch > b->at("max")) {
    throw MotionError("A batch of " + std::to_string(batch) + " exceeds this artifact's maximum of " +
                      std::to_string(b->at("max")) + "; split it.");
  }
  check_motion(motion, static_cast<std::size_t>(batch) * static_cast<std::size_t>(motion_dim()), "The motion tensor");
  return backend_->run(image, motion, batch);
}

}  // namespace dtvnet
