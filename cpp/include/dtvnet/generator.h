// dtvnet::Generator: one landscape image and a motion vector in, T uint8 RGB frames out, through an
// exported artifact (model file + manifest.json) checked against its manifest before use.
//
//   dtvnet::Generator generator("exports/run/aoti-fp32");
//   dtvnet::Frames frames = generator.run(dtvnet::load_image("in.png").view(), /*seed=*/7);
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dtvnet/image.h"
#include "dtvnet/manifest.h"
#include "dtvnet/preprocess.h"

namespace dtvnet {

class Backend;

// Every entry of a motion vector lies within +-kMaxMotionAbs (runtime.motion.MAX_MOTION_ABS): the model
// was trained on N(0, I) vectors, so anything larger is a mistake, refused rather than turned into frames.
constexpr float kMaxMotionAbs = 1000.0f;
// MotionError unless all `count` values are finite and within +-kMaxMotionAbs; `where` starts the message.
void check_motion(const float* values, std::size_t count, const std::string& where = "The motion vector");

struct GeneratorOptions {
  bool verify_sha256 = true;  // hash the model file and compare with the manifest (IntegrityError)
  Fit fit = Fit::Crop;        // how a non-square image becomes square
};

// One Generator serves one thread at a time: give each thread its own, or serialize run calls.
class Generator {
 public:
  // Throws ManifestError / IntegrityError / BackendUnavailableError / ArtifactError.
  explicit Generator(const std::filesystem::path& artifact, GeneratorOptions options = {});
  ~Generator();
  Generator(Generator&&) noexcept;
  Generator& operator=(Generator&&) noexcept;

  const Manifest& manifest() const { return artifact_.manifest; }
  int image_size() const { return artifact_.manifest.image_size; }
  int frames() const { return artifact_.manifest.frames; }
  int motion_dim() const { return artifact_.manifest.motion_dim; }

  // The seeded motion vector the Python runtime draws for `seed` (runtime.seeded_normal).
  std::vector<float> motion(std::uint64_t seed) const;
  // Any image -> preprocessed -> generated -> frames. MotionError if motion has the wrong size, or
  // values that are non-finite or beyond +-kMaxMotionAbs.
  Frames run(const ImageView& image, const std::vector<float>& motion);
  Frames run(const ImageView& image, std::uint64_t seed);
  // Model tensors directly: image [batch, 3, S, S] in [-1, 1], motion [batch, D] -> video [batch, 3, T, S, S].
  // The motion values are held to check_motion too.
  std::vector<float> run_tensors(const float* image, const float* motion, int batch);

 private:
  Artifact artifact_;
  GeneratorOptions options_;
  std::unique_ptr<Backend> backend_;
};

}  // namespace dtvnet
