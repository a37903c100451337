"""Time boxes and the partial-results path: each section runs, fails or runs out of time on its own.

A section is a function of a `Section`: it fills `section.result` as it goes (and may `flush()` it to
disk mid-way), reads `section.left()` to stop starting new work in time, and is stopped by an alarm at
its limit if it does not (`SectionTimeout`, raised between Python bytecodes: a CUDA call or a compile in
progress finishes first). Whatever ends a section, its result so far, status and time are recorded and
written before the next starts; an interrupt (Ctrl-C, SIGTERM) is recorded too and then ends the run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from benchmarks.gpu_check.report import Report

OK, FAILED, TIMED_OUT, INTERRUPTED, RUNNING = "ok", "failed", "timed out", "interrupted", "running"


class SectionTimeout(BaseException):
    """A section ran past its time box (a BaseException, like KeyboardInterrupt, so that no `except
    Exception` on the way, ours or a library's, swallows it)."""


@dataclass
class Section:
    """What a section function gets: where to put results, how much time is left, how to save."""

    key: str
    limit_s: float
    result: dict[str, Any]
    flush: Callable[[], None] = lambda: None
    start: float = field(default_factory=time.perf_counter)

    def spent(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.limit_s - self.spent()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise SectionTimeout in this (main) thread once `seconds` have passed; elsewhere: no alarm."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise SectionTimeout(f"time box of {seconds:.0f} s spent")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def error_text(exc: BaseException) -> str:
    """One line for the report: the exception's type and message (first 600 characters)."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}"[:600]


def run_section(report: Report, key: str, title: str, limit_s: float, fn: Callable[[Section], None]) -> str:
    """Run `fn` under a `limit_s` time box; record its status, time, error and result, and write the
    report (also when it raises). Returns the status; KeyboardInterrupt is recorded and re-raised."""
    entry: dict[str, Any] = {"title": title, "status": RUNNING, "limit_s": limit_s, "seconds": 0.0}
    entry["result"] = {}
    report.data["sections"][key] = entry
    section = Section(key, limit_s, entry["result"], flush=report.write)
    report.write()
    try:
        with time_limit(limit_s):
            fn(section)
        entry["status"] = OK
    except SectionTimeout as exc:
        entry["status"], entry["error"] = TIMED_OUT, error_text(exc)
    except KeyboardInterrupt:
        entry["status"], entry["error"] = INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)"
        raise
    except Exception as exc:
        entry["status"], entry["error"] = FAILED, error_text(exc)
        entry["traceback"] = traceback.format_exc(limit=-6)[-3000:]
    finally:
        entry["seconds"] = round(section.spent(), 2)
        report.write()
    return entry["status"]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a `kill`, a lease that ends) raises KeyboardInterrupt, so the run records it and stops."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
