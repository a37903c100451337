// An inference engine behind the Generator: runs the generator graph on preprocessed tensors.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dtvnet/manifest.h"

namespace dtvnet {

class Backend {
 public:
  virtual ~Backend() = default;
  // image float32 [batch, 3, S, S] and motion float32 [batch, D] -> video float32 [batch, 3, T, S, S].
  virtual std::vector<float> run(const float* image, const float* motion, int batch) = 0;
};

// The backend for the artifact's engine; BackendUnavailableError if this build lacks it.
std::unique_ptr<Backend> make_backend(const Artifact& artifact);
// The engines this build can run ("aoti", "tensorrt").
std::vector<std::string> available_engines();

}  // namespace dtvnet
