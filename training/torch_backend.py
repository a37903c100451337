"""PyTorch backend: a checkpoint folder run directly (the reference exported artifacts are checked against).

A checkpoint has no manifest.json, so `checkpoint_manifest` describes it as one (engine "torch",
model file `model.safetensors` with the sha256 its config.json records); from there on it is
validated and fed like any other artifact. This is the only backend that imports torch, so it lives in
training, above the runtime: `runtime.backends` names it by module path and imports it only when a
checkpoint is run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from runtime.backends import parse_device
from runtime.errors import BackendUnavailableError, CheckpointError
from runtime.manifest import Manifest, model_manifest
from training import checkpoint as ckpt_io
from training.model.deployed import FlowEncoderGraph, GeneratorGraph


def checkpoint_manifest(path: Path, kind: str = "generator") -> tuple[Manifest, Path]:
    """An in-memory manifest for one component of a checkpoint folder, and its weights file."""
    folder = ckpt_io.checkpoint_dir(path)
    info = ckpt_io.read_info(folder)
    cfg = info["config"]
    if kind not in info.get("components", []):
        raise CheckpointError(
            f"Checkpoint {str(folder)!r} has no {kind.replace('_', ' ')} (it holds "
            f"{', '.join(info.get('components', []))}); use a checkpoint written by `dtvnet train`."
        )
    manifest = model_manifest(
        kind,
        "torch",
        "fp32",
        ckpt_io.WEIGHTS_FILE,
        info.get("weights_sha256", ""),
        cfg,
        source_checkpoint=str(folder),
        source_sha256=info.get("weights_sha256"),
    )
    return manifest, folder / ckpt_io.WEIGHTS_FILE


def torch_device(device: str | None) -> torch.device:
    """None: the first CUDA GPU if there is one, else the CPU."""
    kind, index = parse_device(device)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"Device {device!r} was asked for but this PyTorch has no CUDA GPU; use device='cpu'."
        )
    if kind == "tensorrt":
        raise BackendUnavailableError("The torch backend runs on cpu or cuda[:N], not on TensorRT.")
    return torch.device(kind, index) if kind == "cuda" else torch.device("cpu")


class TorchBackend:
    """The checkpoint's generator (equalized-lr folded, as exported) or flow encoder, in eval mode."""

    name = "torch"
    max_batch: int | None = None

    def __init__(self, manifest: Manifest, model_path: Path, device: str | None = None) -> None:
        self.torch_device = torch_device(device)
        self.device = str(self.torch_device)
        checkpoint = ckpt_io.load(model_path.parent, components=[manifest.kind])
        if manifest.kind == "generator":
            module: torch.nn.Module = GeneratorGraph(checkpoint.generator())
        else:
            module = FlowEncoderGraph(checkpoint.flow_encoder())
        self.module = module.to(self.torch_device).eval()
        self.input_names = [spec.name for spec in manifest.inputs]
        self.output_names = [spec.name for spec in manifest.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The manifest's outputs by name: a generator's `video` and `flows`, a flow encoder's `motion`."""
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n], np.float32)) for n in self.input_names]
        with torch.inference_mode():
            out = self.module(*(a.to(self.torch_device) for a in args))
        outputs = out if isinstance(out, tuple) else (out,)
        return {
            name: value.float().cpu().numpy() for name, value in zip(self.output_names, outputs, strict=True)
        }

    def close(self) -> None:
        self.__dict__.pop("module", None)


def load(manifest: Manifest, model_path: Path, device: str | None) -> TorchBackend:
    return TorchBackend(manifest, model_path, device)
