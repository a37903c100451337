#pragma once

#include <filesystem>
#include <string>

namespace dtvnet {

// Lower-case hex sha256 of a file's bytes (OpenSSL); throws ArtifactError if it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace dtvnet
