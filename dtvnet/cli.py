"""The `dtvnet` console script: a thin dispatcher to each package's own `main(argv)`.

Subcommand modules are named by module path and imported only when chosen, so `dtvnet generate` on the
ONNX Runtime path never imports torch, and this top-layer module imports no package below it but the
runtime's `run_cli`. Every entry point runs through `run_cli`, which turns a `DTVNetError` into one
line on stderr and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from runtime.console import EXIT_USER_ERROR, run_cli

# name -> (module with main(argv) -> int, one-line help). Add a line when a subcommand lands.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "checkpoint": ("training.checkpoint", "inspect checkpoints; convert a reference DTV_G.pth"),
    "data": ("training.data.synth", "training data tools: write procedural time-lapse clips"),
    "train": ("training.train", "train DTVNet on time-lapse clips (resumable)"),
    "evaluate": ("training.evaluate", "PSNR, SSIM and Flow-MSE of a checkpoint on held-out clips"),
    "export": ("export.pipeline", "checkpoint -> verified ONNX (fp32, fp16) and TensorRT artifacts"),
    "generate": ("runtime.generate", "turn a photo into a time-lapse video (mp4, gif, png frames)"),
    "demo": ("dtvnet.demo", "a time-lapse of a procedural landscape with the bundled demo model"),
    "bench": ("benchmarks.fps", "frames/s, latency, end to end and quality of every engine here"),
}


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: dtvnet <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `dtvnet <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dtvnet` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"error: unknown command {name!r}.\n\n{_usage()}", file=sys.stderr)
        return EXIT_USER_ERROR
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return run_cli(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
