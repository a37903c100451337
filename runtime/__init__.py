"""dtvnet runtime: load an exported artifact, generate and stream frames, write video.

`from runtime import Generator` is lazy (PEP 562), so importing the package stays cheap and torch-free;
the ONNX Runtime and TensorRT paths never import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.generator import Clip, Generator, Throughput

__all__ = ["Clip", "Generator", "Throughput"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from runtime import generator

        return getattr(generator, name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
