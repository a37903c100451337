"""`python -m benchmarks.gpu_check`: see benchmarks.gpu_check.cli."""

import sys

from benchmarks.gpu_check.cli import main
from runtime.console import run_cli

sys.exit(run_cli(main))
