"""`python -m export.trt`: checkpoint -> ONNX (fp32, fp16) and a TensorRT engine, which must be built.

The export pipeline (`export.pipeline`, also `dtvnet export`) with the engine required; a module of its
own above the pipeline, so that the TensorRT library (`export.trt`) never imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from export.pipeline import run_export
from runtime.console import run_cli


def main(argv: Sequence[str] | None = None) -> int:
    return run_export(argv, prog="python -m export.trt", require_engine=True)


if __name__ == "__main__":
    sys.exit(run_cli(main))
