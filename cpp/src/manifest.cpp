#include "dtvnet/manifest.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "dtvnet/errors.h"
#include "dtvnet/sha256.h"

namespace dtvnet {
namespace {

using nlohmann::json;

constexpr const char* kManifestName = "manifest.json";
constexpr const char* kFormat = "dtvnet-artifact";
constexpr int kFormatVersion = 1;
const std::vector<std::string> kKinds{"generator", "flow_encoder"};
const std::vector<std::string> kEngines{"onnx", "tensorrt", "torch", "openvino", "aoti"};
const std::vector<std::string> kPrecisions{"fp32", "fp16", "int8"};
const std::vector<std::string> kRequired{"kind",   "engine",    "precision",  "model_file",
                                         "model_sha256", "inputs", "outputs", "image_size",
                                         "frames", "motion_dim", "model_config"};
constexpr const char* kReexport = "re-export the artifact";

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

// A JSON scalar or list of scalars as text: "9.0" stays "9.0", [9, 0] becomes "9.0", 8 becomes "8".
std::string as_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {
    std::string out;
    for (const json& item : value) out += (out.empty() ? "" : ".") + as_text(item);
    return out;
  }
  return value.dump();
}

std::map<std::string, std::string> text_map(const json& object) {
  std::map<std::string, std::string> out;
  if (object.is_object()) {
    for (const auto& [key, value] : object.items()) {
      if (!value.is_object()) out[key] = as_text(value);
    }
  }
  return out;
}

TensorSpec tensor_spec(const json& j) {
  TensorSpec spec{j.at("name").get<std::string>(), {}, j.at("dtype").get<std::string>()};
  for (const json& d : j.at("shape")) {
    if (d.is_string()) {
      if (d.get<std::string>() != "batch") throw std::invalid_argument("unknown dimension " + d.dump());
      spec.shape.push_back(kBatch);
    } else {
      spec.shape.push_back(d.get<std::int64_t>());
    }
  }
  return spec;
}

const TensorSpec& by_name(const std::vector<TensorSpec>& specs, const std::string& name, const Manifest& m,
                          const char* what) {
  auto it = std::find_if(specs.begin(), specs.end(), [&](const TensorSpec& s) { return s.name == name; });
  if (it == specs.end()) {
    throw ManifestError(m.where + " has no " + what + " named " + in_quotes(name) + "; " + kReexport + ".");
  }
  return *it;
}

void expect_tensor(const Manifest& m, const TensorSpec& spec, const std::vector<std::int64_t>& shape) {
  if (spec.shape != shape) {
    throw ManifestError(m.where + " gives '" + spec.name + "' the shape " + format_shape(spec.shape) +
                        ", but a generator with image_size " + std::to_string(m.image_size) + ", frames " +
                        std::to_string(m.frames) + " and motion_dim " + std::to_string(m.motion_dim) +
                        " needs " + format_shape(shape) + "; " + kReexport + ".");
  }
  if (spec.dtype != "float32" && spec.dtype != "float16") {
    throw ManifestError(m.where + " gives '" + spec.name + "' the dtype " + in_quotes(spec.dtype) +
                        "; this host feeds float32 or float16.");
  }
}

// ManifestError unless `name` is, as a path alone, a non-empty relative path without "..", root or drive.
void check_relative_inside(const std::string& name, const std::string& where, const std::string& key) {
  const bool blank = name.find_first_not_of(" \t\r\n") == std::string::npos || name.find('\0') != std::string::npos;
  if (blank) throw ManifestError(where + " gives " + key + " as " + in_quotes(name) + ", not a file name; " + kReexport + ".");
  std::string slashed = name;
  std::replace(slashed.begin(), slashed.end(), '\\', '/');
  bool outside = slashed.front() == '/' || (slashed.size() > 1 && slashed[1] == ':');
  for (const auto& part : std::filesystem::path(slashed)) outside = outside || part == "..";
  if (outside) {
    throw ManifestError(where + " gives " + key + " as " + in_quotes(name) +
                        ", outside the artifact folder; an artifact is one folder, so every file it names must "
                        "lie inside it (no '..', no absolute path): " + kReexport + ".");
  }
}

// A companion ("../NAME", a sibling artifact of the same export, or a path inside the artifact) without
// its one leading "../".
std::string sibling_name(const std::string& name) { return name.rfind("../", 0) == 0 ? name.substr(3) : name; }

bool strictly_inside(const std::filesystem::path& path, const std::filesystem::path& top) {
  auto [t, p] = std::mismatch(top.begin(), top.end(), path.begin(), path.end());
  return t == top.end() && p != path.end();
}

}  // namespace

std::filesystem::path inside_artifact(const std::filesystem::path& folder, const std::string& name,
                                      const std::string& where, const std::string& key) {
  namespace fs = std::filesystem;
  check_relative_inside(name, where, key);
  const fs::path path = folder / name;
  const fs::path top = fs::weakly_canonical(folder.empty() ? fs::path(".") : folder);
  const fs::path resolved = fs::weakly_canonical(top / name);
  if (!strictly_inside(resolved, top)) {
    throw ManifestError(where + " gives " + key + " as " + in_quotes(name) + ", which resolves (symlinks followed) to " +
                        in_quotes(resolved.string()) + ", not inside " + in_quotes(top.string()) +
                        "; an artifact is one folder, so copy the file into it or re-export it.");
  }
  return path;
}

std::string format_shape(const std::vector<std::int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    out << (i ? ", " : "");
    if (shape[i] == kBatch) {
      out << "batch";
    } else {
      out << shape[i];
    }
  }
  out << "]";
  return out.str();
}

const TensorSpec& Manifest::input(const std::string& name) const { return by_name(inputs, name, *this, "input"); }
const TensorSpec& Manifest::output(const std::string& name) const {
  return by_name(outputs, name, *this, "output");
}

Manifest parse_manifest(const std::string& json_text, const std::string& where) {
  json data;
  try {
    data = json::parse(json_text);
  } catch (const json::parse_error& exc) {
    throw ManifestError(where + " is not a readable JSON manifest (" + exc.what() + "); " + kReexport + ".");
  }
  if (!data.is_object() || data.value("format", json()) != kFormat) {
    throw ManifestError(where + " is not a dtvnet artifact manifest; " + kReexport + ".");
  }
  if (data.value("format_version", json()) != kFormatVersion) {
    throw ManifestError(where + " has manifest format_version " + data.value("format_version", json()).dump() +
                        ", this dtvnet reads " + std::to_string(kFormatVersion) + "; " + kReexport +
                        " with this version.");
  }
  std::string missing;
  for (const std::string& key : kRequired) {
    if (!data.contains(key)) missing += (missing.empty() ? "" : ", ") + key;
  }
  if (!missing.empty()) throw ManifestError(where + " lacks the field(s) " + missing + "; " + kReexport + ".");
  Manifest m;
  m.where = where;
  try {
    m.kind = data.at("kind").get<std::string>();
    m.engine = data.at("engine").get<std::string>();
    m.precision = data.at("precision").get<std::string>();
    m.model_file = data.at("model_file").get<std::string>();
    m.model_sha256 = data.at("model_sha256").get<std::string>();
    for (const json& t : data.at("inputs")) m.inputs.push_back(tensor_spec(t));
    for (const json& t : data.at("outputs")) m.outputs.push_back(tensor_spec(t));
    m.image_size = data.at("image_size").get<int>();
    m.frames = data.at("frames").get<int>();
    m.motion_dim = data.at("motion_dim").get<int>();
    if (data.contains("batch") && !data.at("batch").is_null()) {
      m.batch = data.at("batch").get<std::map<std::string, std::int64_t>>();
    }
    m.versions = text_map(data.value("versions", json::object()));
    m.tensorrt = text_map(data.value("tensorrt", json::object()));
    m.extra = text_map(data.value("extra", json::object()));
    m.companions = data.value("companions", std::map<std::string, std::string>{});
  } catch (const std::exception& exc) {  // json type errors, missing keys, unknown dimensions
    throw ManifestError(where + " is malformed (" + exc.what() + "); " + kReexport + ".");
  }
  const std::pair<const char*, const std::vector<std::string>*> enums[] = {
      {"kind", &kKinds}, {"engine", &kEngines}, {"precision", &kPrecisions}};
  const std::string* values[] = {&m.kind, &m.engine, &m.precision};
  for (int i = 0; i < 3; ++i) {
    const auto& allowed = *enums[i].second;
    if (std::find(allowed.begin(), allowed.end(), *values[i]) == allowed.end()) {
      throw ManifestError(where + " has unknown " + enums[i].first + " " + in_quotes(*values[i]) + ".");
    }
  }
  check_relative_inside(m.model_file, where, "model_file");
  for (const auto& [key, name] : m.companions) check_relative_inside(sibling_name(name), where, "companions." + key);
  return m;
}

Manifest read_manifest(const std::filesystem::path& manifest_path) {
  std::ifstream in(manifest_path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    throw ManifestError(in_quotes(manifest_path.string()) + " cannot be read; " + kReexport + ".");
  }
  return parse_manifest(text.str(), in_quotes(manifest_path.string()));
}

Artifact resolve_artifact(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) {
    throw ManifestError("Artifact " + in_quotes(path.string()) +
                        " does not exist; export one with `dtvnet export CHECKPOINT` (or "
                        "`python -m export.aoti CHECKPOINT` for the C++ host).");
  }
  fs::path manifest_path;
  if (fs::is_directory(path)) {
    manifest_path = path / kManifestName;
  } else if (path.filename() == kManifestName) {
    manifest_path = path;
  } else {
    manifest_path = path.parent_path() / kManifestName;
  }
  if (!fs::is_regular_file(manifest_path)) {
    throw ManifestError(std::string("No ") + kManifestName + " beside " + in_quotes(path.string()) +
                        "; every artifact needs its manifest, so re-export it.");
  }
  Artifact artifact;
  artifact.manifest = read_manifest(manifest_path);
  artifact.model_path = inside_artifact(manifest_path.parent_path(), artifact.manifest.model_file,
                                       artifact.manifest.where, "model_file");
  if (fs::is_regular_file(path) && path != manifest_path &&
      fs::weakly_canonical(path) != fs::weakly_canonical(artifact.model_path)) {
    throw ManifestError(in_quotes(manifest_path.string()) + " describes " + in_quotes(artifact.manifest.model_file) +
                        ", not " + in_quotes(path.filename().string()) + "; keep one model per artifact folder.");
  }
  if (!fs::is_regular_file(artifact.model_path)) {
    throw ManifestError(in_quotes(manifest_path.string()) + " names the model file " +
                        in_quotes(artifact.manifest.model_file) + ", which is missing.");
  }
  return artifact;
}

void verify_integrity(const Artifact& artifact) {
  const std::string actual = sha256_file(artifact.model_path);
  const std::string& expected = artifact.manifest.model_sha256;
  if (actual != expected) {
    throw IntegrityError(in_quotes(artifact.model_path.string()) + " does not match its manifest (sha256 " +
                         actual.substr(0, 12) + "... instead of " + expected.substr(0, 12) +
                         "...): the file was changed or truncated; re-export it.");
  }
}

void validate_generator(const Manifest& m) {
  if (m.kind != "generator") {
    throw ManifestError(m.where + " describes a " + m.kind + ", not a generator; pass a generator artifact.");
  }
  if (m.image_size <= 0 || m.frames <= 0 || m.motion_dim <= 0) {
    throw ManifestError(m.where + " has non-positive image_size, frames or motion_dim; " + kReexport + ".");
  }
  const std::int64_t s = m.image_size, t = m.frames, d = m.motion_dim;
  expect_tensor(m, m.input("image"), {kBatch, 3, s, s});
  expect_tensor(m, m.input("motion"), {kBatch, d});
  expect_tensor(m, m.output("video"), {kBatch, 3, t, s, s});
  // flows (half resolution) are a second output since they became part of the artifact; older ones lack it
  if (m.outputs.size() == 2) expect_tensor(m, m.output("flows"), {kBatch, 2, t, s / 2, s / 2});
  if (m.inputs.size() != 2 || m.outputs.size() < 1 || m.outputs.size() > 2) {
    throw ManifestError(m.where + " lists " + std::to_string(m.inputs.size()) + " inputs and " +
                        std::to_string(m.outputs.size()) +
                        " outputs; a generator has image, motion -> video (and flows); " + kReexport + ".");
  }
}

}  // namespace dtvnet
