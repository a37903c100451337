"""How every command line of the project ends: one sentence for a user's mistake, no traceback.

`run_cli` wraps a `main(argv)`: the `dtvnet` dispatcher (dtvnet.cli) and the `python -m ...` entry
points of training, export, runtime and benchmarks all run through it. It lives in the runtime, the
bottom layer, so that every package can use it without importing upward.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from runtime.errors import DTVNetError

OWN_PACKAGES = ("training", "export", "runtime", "benchmarks", "dtvnet", "__main__")
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run_cli(main_fn: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI main, mapping user errors to one stderr line and exit code 2, Ctrl-C to 130."""
    if not logging.getLogger().handlers:
        # Our packages speak at INFO; third-party libraries (exporters, optimizers) only at WARNING.
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        for name in OWN_PACKAGES:
            logging.getLogger(name).setLevel(logging.INFO)
    try:
        return int(main_fn(argv) or 0)
    except DTVNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
