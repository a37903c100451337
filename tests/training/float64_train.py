"""`python -m tests.training.float64_train ARGS` is `python -m training.train ARGS` in float64.

The data-parallel tests compare runs of one and of two processes tensor by tensor. In float32 such runs
agree only to float32 rounding amplified by Adam: a parameter whose gradient is zero in exact
arithmetic (the flow encoder's last bias, which the batch standardization removes; BatchNorm biases that
an instance norm removes) gets a rounding-noise gradient that Adam scales up to about the learning rate
per step, so even one process with another thread count differs by ~1e-4 after a few steps. In float64
the same comparison is tight (1e-12 measured) and any mistake in the data-parallel arithmetic shows.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

import torch

from runtime.console import run_cli
from training import train


@contextlib.contextmanager
def float64() -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def main(argv: Sequence[str] | None = None) -> int:
    with float64():
        return train.main(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
