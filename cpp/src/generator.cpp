#include "dtvnet/generator.h"

#include <cmath>
#include <string>

#include "dtvnet/backend.h"
#include "dtvnet/errors.h"
#include "dtvnet/seeded_normal.h"

namespace dtvnet {

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
  for (float v : motion) {
    if (!std::isfinite(v)) throw MotionError("The motion vector holds a non-finite value; pass finite numbers.");
  }
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
  return backend_->run(image, motion, batch);
}

}  // namespace dtvnet
