// The artifact contract of runtime/manifest.py: a folder with one model file and manifest.json.
// read_manifest mirrors Manifest.from_dict's checks (model_file and companions name no path out of the
// folder); validate_generator checks the generator I/O.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dtvnet {

constexpr std::int64_t kBatch = -1;  // the dynamic "batch" dimension in TensorSpec::shape

struct TensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;  // kBatch for "batch"
  std::string dtype;
};

struct Manifest {
  std::string kind;       // "generator" or "flow_encoder"
  std::string engine;     // "onnx", "tensorrt", "torch", "openvino", "aoti"
  std::string precision;  // "fp32", "fp16", "int8"
  std::string model_file;
  std::string model_sha256;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  int image_size = 0;
  int frames = 0;
  int motion_dim = 0;
  std::optional<std::map<std::string, std::int64_t>> batch;  // {"min", "opt", "max"}; none = any
  std::map<std::string, std::string> versions;                // torch, onnx, tensorrt...
  std::map<std::string, std::string> tensorrt;                // version, gpu, compute_capability
  std::map<std::string, std::string> extra;                   // string-valued entries of "extra"
  std::map<std::string, std::string> companions;              // e.g. flow_encoder -> "../ofe-fp32"
  std::string where;                                          // the manifest's path, for messages

  const TensorSpec& input(const std::string& name) const;   // throws ManifestError if absent
  const TensorSpec& output(const std::string& name) const;
};

struct Artifact {
  Manifest manifest;
  std::filesystem::path model_path;
};

Manifest parse_manifest(const std::string& json_text, const std::string& where);
Manifest read_manifest(const std::filesystem::path& manifest_path);
// The artifact given as its folder, its manifest.json or its model file (as resolve_artifact).
// An artifact is one folder: its model_file must resolve, symlinks followed, inside it (ManifestError).
Artifact resolve_artifact(const std::filesystem::path& path);
// folder / name, or ManifestError (naming manifest `where` and field `key`) unless `name` is a relative
// path without ".." that, symlinks followed, stays inside `folder` (runtime.manifest.inside_artifact).
std::filesystem::path inside_artifact(const std::filesystem::path& folder, const std::string& name,
                                      const std::string& where, const std::string& key);
// IntegrityError if the model file's sha256 differs from the manifest's.
void verify_integrity(const Artifact& artifact);
// ManifestError unless it is a generator whose I/O is image [B,3,S,S], motion [B,D] -> video [B,3,T,S,S].
void validate_generator(const Manifest& manifest);

std::string format_shape(const std::vector<std::int64_t>& shape);  // e.g. [batch, 3, 32, 32]

}  // namespace dtvnet
