"""Every user mistake has its own exception type, all deriving from `DTVNetError`.

This module is torch-free on purpose: `training` and `export` import it too, and the CLIs catch
`DTVNetError` to print its one-sentence message (name the input, say what is wrong and the fix)
and exit non-zero without a traceback.
"""

from __future__ import annotations


class DTVNetError(Exception):
    """A user-facing error whose message is one sentence naming the input, the problem and the fix."""


class InputFileError(DTVNetError):
    """A named input file is missing, unreadable or of the wrong kind."""


class CheckpointError(InputFileError):
    """A checkpoint is missing, not a checkpoint, or unreadable."""


class ConfigMismatchError(CheckpointError):
    """A checkpoint was made for another model configuration than the one asked for."""


class ImageError(InputFileError):
    """An input image is missing, unreadable, truncated, or of an unsupported size."""


class MotionError(DTVNetError):
    """A motion vector or motion source has the wrong size, non-finite values or cannot be read."""


class ArtifactError(InputFileError):
    """An exported artifact (model file plus manifest.json) is missing or unusable."""


class ManifestError(ArtifactError):
    """manifest.json is missing, malformed, or disagrees with the artifact."""


class IntegrityError(ArtifactError):
    """A model file's sha256 does not match its manifest: it was edited or truncated."""


class EngineMismatchError(ArtifactError):
    """A TensorRT engine was built for another GPU or TensorRT version than this machine's."""


class OutputPathError(DTVNetError):
    """An output path cannot be written, or exists and would be overwritten without --force."""


class BackendUnavailableError(DTVNetError):
    """A requested backend (TensorRT, CUDA, OpenVINO, ...) is not installed or has no device here."""


class DataError(DTVNetError):
    """Training or evaluation data is missing, empty, too short, or unreadable."""


class ExportError(DTVNetError):
    """An export step failed (the message says which and why)."""


class ParityError(ExportError):
    """An exported artifact's outputs differ from the PyTorch model's beyond the allowed bound."""
