// One exception type per kind of user mistake, mirroring runtime/errors.py. Every message is one
// sentence that names the input, says what is wrong and what to do.
#pragma once

#include <stdexcept>

namespace dtvnet {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InputFileError : public Error {
 public:
  using Error::Error;
};
class ImageError : public InputFileError {
 public:
  using InputFileError::InputFileError;
};
class ArtifactError : public InputFileError {
 public:
  using InputFileError::InputFileError;
};
class ManifestError : public ArtifactError {
 public:
  using ArtifactError::ArtifactError;
};
class IntegrityError : public ArtifactError {
 public:
  using ArtifactError::ArtifactError;
};
class EngineMismatchError : public ArtifactError {
 public:
  using ArtifactError::ArtifactError;
};
class MotionError : public Error {
 public:
  using Error::Error;
};
class OutputPathError : public Error {
 public:
  using Error::Error;
};
class BackendUnavailableError : public Error {
 public:
  using Error::Error;
};

}  // namespace dtvnet
