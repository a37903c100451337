"""Backends that run several requests at once on parallel streams (OpenVINO on a multi-core CPU), and
the clock that turns their overlapping requests into engine time. Engine-free, so the runtime can
use it without importing any engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable

import numpy as np


class BusyClock:
    """Seconds during which at least one request was in flight: the engine time of overlapping requests."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._since = 0.0

    def enter(self) -> None:
        with self._lock:
            if self._in_flight == 0:
                self._since = time.perf_counter()
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self.seconds += time.perf_counter() - self._since


@runtime_checkable
class ParallelStreams(Protocol):
    """A backend that can keep one batch-1 request in flight on each of `streams` streams (0: none)."""

    streams: int
    busy: BusyClock  # engine time of run_each

    def run_each(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]: ...
