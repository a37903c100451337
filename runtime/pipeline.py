"""Overlap: a producer runs in a background thread, a bounded number of items ahead of its consumer.

The runtime chains these so that loading and pre-processing, inference, and post-processing or
encoding (in the caller's thread) run at the same time; the bound keeps memory flat however long
the run. Closing the consumer (or an exception on either side) stops the producer after its current
item and waits for it, and the producer closes its own source, so chained stages wind down together.
Workers still running when the interpreter exits are stopped and joined first: an inference engine
torn down under a running call aborts the process.
"""

from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_POLL_SECONDS = 0.05
_DONE = object()
_running: set[tuple[threading.Event, threading.Thread]] = set()


def background(source: Iterable[T], maxsize: int, name: str = "dtvnet-worker") -> Iterator[T]:
    """Iterate `source` in a daemon thread, at most `maxsize` items ahead; re-raise its errors here."""
    items: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=max(1, maxsize))
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                items.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        iterator = iter(source)
        try:
            for item in iterator:
                if not put((True, item)):
                    return
            put((False, _DONE))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put((False, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name=name, daemon=True)
    worker = (stop, thread)
    _running.add(worker)
    thread.start()
    try:
        while True:
            ok, item = items.get()
            if ok:
                yield item
            elif item is _DONE:
                return
            else:
                raise item
    finally:
        stop.set()
        if thread is not threading.current_thread():
            thread.join()
        _running.discard(worker)


@atexit.register
def _stop_all() -> None:
    for stop, _ in list(_running):
        stop.set()
    for _, thread in list(_running):
        thread.join(timeout=60)


def chunks(source: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    batch: list[T] = []
    for item in source:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
