// Dispatch on the manifest's engine to the backends compiled into this build.
#include "dtvnet/backend.h"
#include "dtvnet/errors.h"

namespace dtvnet {

#ifdef DTVNET_WITH_AOTI
std::unique_ptr<Backend> make_aoti_backend(const Artifact& artifact);
#endif
#ifdef DTVNET_WITH_TENSORRT
std::unique_ptr<Backend> make_tensorrt_backend(const Artifact& artifact);
#endif

std::vector<std::string> available_engines() {
  std::vector<std::string> engines;
#ifdef DTVNET_WITH_AOTI
  engines.push_back("aoti");
#endif
#ifdef DTVNET_WITH_TENSORRT
  engines.push_back("tensorrt");
#endif
  return engines;
}

std::unique_ptr<Backend> make_backend(const Artifact& artifact) {
  const std::string& engine = artifact.manifest.engine;
#ifdef DTVNET_WITH_AOTI
  if (engine == "aoti") return make_aoti_backend(artifact);
#endif
#ifdef DTVNET_WITH_TENSORRT
  if (engine == "tensorrt") return make_tensorrt_backend(artifact);
#endif
  std::string have;
  for (const std::string& e : available_engines()) have += (have.empty() ? "" : ", ") + e;
  throw BackendUnavailableError(
      artifact.manifest.where + " is a '" + engine + "' artifact, but this build of the dtvnet C++ host runs " +
      (have.empty() ? std::string("no engine") : have) +
      "; export an aoti artifact (`python -m export.aoti CHECKPOINT`), or rebuild with "
      "-DDTVNET_WITH_TENSORRT=ON where TensorRT is installed.");
}

}  // namespace dtvnet
