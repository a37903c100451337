// The LibTorch backend: an AOTInductor package (model.pt2 from `python -m export.aoti`) run on CPU.
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <sstream>

#include "dtvnet/backend.h"
#include "dtvnet/errors.h"

namespace dtvnet {
namespace {

std::string major_minor(const std::string& version) {
  const auto first = version.find('.');
  return version.substr(0, version.find_first_of(".+", first == std::string::npos ? 0 : first + 1));
}

// The package's kernels use the vector instructions of the machine that compiled them.
bool cpu_has(const std::string& isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa == "avx2") return __builtin_cpu_supports("avx2");
  if (isa == "avx512") return __builtin_cpu_supports("avx512f");
  if (isa == "avx512_vnni") return __builtin_cpu_supports("avx512vnni");
#endif
  (void)isa;
  return true;  // unknown names (and other architectures) are not checked
}

void check_compatible(const Manifest& m) {
  const auto torch = m.versions.find("torch");
  if (torch != m.versions.end() && major_minor(torch->second) != major_minor(DTVNET_TORCH_VERSION)) {
    throw EngineMismatchError(m.where + " was compiled with torch " + torch->second + ", but this host links " +
                              "LibTorch " + DTVNET_TORCH_VERSION +
                              "; re-export it with `python -m export.aoti` from this torch.");
  }
  const auto isa = m.extra.find("cpu_isa");
  if (isa == m.extra.end()) return;
  std::istringstream names(isa->second);
  for (std::string name; names >> name;) {
    if (!cpu_has(name)) {
      throw EngineMismatchError(m.where + " was compiled for CPUs with " + name +
                                ", which this CPU lacks; re-export it with `python -m export.aoti` on this "
                                "machine (or one like it).");
    }
  }
}

class AotiBackend final : public Backend {
 public:
  explicit AotiBackend(const Artifact& artifact) : manifest_(artifact.manifest) {
    if (manifest_.precision != "fp32" || manifest_.input("image").dtype != "float32") {
      throw ManifestError(manifest_.where + " is an aoti artifact with precision " + manifest_.precision +
                          "; the C++ host runs fp32 aoti artifacts.");
    }
    check_compatible(manifest_);
    try {
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(artifact.model_path.string());
    } catch (const std::exception& exc) {
      throw ArtifactError("Could not load the AOTInductor package '" + artifact.model_path.string() + "' (" +
                          first_line(exc.what()) + "); re-export it with `python -m export.aoti`.");
    }
  }

  std::vector<float> run(const float* image, const float* motion, int batch) override {
    const std::int64_t s = manifest_.image_size, d = manifest_.motion_dim, t = manifest_.frames;
    // from_blob does not copy; the loader only reads its inputs.
    at::Tensor image_t = at::from_blob(const_cast<float*>(image), {batch, 3, s, s}, at::kFloat);
    at::Tensor motion_t = at::from_blob(const_cast<float*>(motion), {batch, d}, at::kFloat);
    std::vector<at::Tensor> outputs;
    try {
      outputs = loader_->run({image_t, motion_t});
    } catch (const std::exception& exc) {
      throw ArtifactError("Running '" + manifest_.model_file + "' failed (" + first_line(exc.what()) + ").");
    }
    const std::vector<std::int64_t> expected{batch, 3, t, s, s};
    // outputs[0] is the video; the flows after it (artifacts that have them) are not used at model size
    if (outputs.size() != manifest_.outputs.size() || outputs[0].sizes().vec() != expected ||
        outputs[0].scalar_type() != at::kFloat) {
      throw ManifestError(manifest_.where + " promises video " + format_shape(expected) +
                          " float32, but the model returned something else; re-export the artifact.");
    }
    const at::Tensor video = outputs[0].contiguous();
    const float* data = video.data_ptr<float>();
    return std::vector<float>(data, data + video.numel());
  }

 private:
  static std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

  Manifest manifest_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

}  // namespace

std::unique_ptr<Backend> make_aoti_backend(const Artifact& artifact) {
  return std::make_unique<AotiBackend>(artifact);
}

}  // namespace dtvnet
