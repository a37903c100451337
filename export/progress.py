"""Progress over export steps (tqdm), with how long each step took for the manifest."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from tqdm import tqdm

log = logging.getLogger(__name__)


class Steps:
    """One tqdm bar over the steps of an export; silent when stderr is not a terminal (CI, tests)."""

    def __init__(self, total: int, desc: str = "export") -> None:
        self.bar = tqdm(total=total, desc=desc, unit="step", disable=None, dynamic_ncols=True)

    @contextlib.contextmanager
    def step(self, name: str, timings: dict[str, float] | None = None, artifact: str = "") -> Iterator[None]:
        """Show `artifact: name` while the block runs, then advance; record its seconds in `timings[name]`."""
        self.bar.set_postfix_str(f"{artifact}: {name}" if artifact else name)
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        if timings is not None:
            timings[name] = round(seconds, 3)
        log.debug("%s took %.2fs", name, seconds)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


@contextlib.contextmanager
def steps_or_new(steps: Steps | None, total: int, desc: str) -> Iterator[Steps]:
    """Use the caller's bar, or own one for a standalone call."""
    if steps is not None:
        yield steps
        return
    own = Steps(total, desc)
    try:
        yield own
    finally:
        own.close()
