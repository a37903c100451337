"""Each line in its own process, so that no engine shares a process with another's threads.

PyTorch's OpenMP pool, ONNX Runtime's per-session pools and OpenVINO's TBB arena all keep threads
that wait (and spin for a while) between calls; in one process they would run beside each other's
work and tax whichever line is being timed, PyTorch's the most. A worker loads one line (spawned
fresh, nothing inherited), then sleeps on its pipe until it is told to time a block of calls.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.lines import Context, line, load
from benchmarks.timing import run_block

POLL_SECONDS = 1.0


def _serve(conn: Connection, key: str, context: Context, feeds: dict[int, dict[str, Any]]) -> None:
    try:
        loaded = load(line(key), context)
    except BaseException as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", {"device": loaded.device, "max_batch": loaded.max_batch}))
    while True:
        command, *args = conn.recv()
        if command == "close":
            loaded.close()
            conn.send(("closed", None))
            return
        batch, min_runs, min_seconds = args
        feed = feeds[batch]
        try:
            conn.send(("times", run_block(lambda feed=feed: loaded.run(feed), min_runs, min_seconds)))
        except BaseException as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


@contextlib.contextmanager
def _environment(changes: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class LineWorker:
    """A process that holds one loaded line and times blocks of calls on request."""

    def __init__(self, key: str, context: Context, feeds: dict[int, dict[str, Any]]) -> None:
        self.key = key
        self.conn, child = mp.get_context("spawn").Pipe()
        self.process = mp.get_context("spawn").Process(
            target=_serve, args=(child, key, context, feeds), name=f"dtvnet-bench-{key}", daemon=True
        )
        with _environment(dict(line(key).env)):  # a spawned process starts with a copy of os.environ
            self.process.start()
        self.ready = False
        self.device = ""
        self.max_batch: int | None = None

    def wait_ready(self) -> None:
        """Block until the line is loaded (raises its error if loading failed)."""
        info = self._reply("ready")
        self.device = info["device"]
        self.max_batch = info["max_batch"]
        self.ready = True

    def _reply(self, expected: str) -> Any:
        while not self.conn.poll(POLL_SECONDS):
            if not self.process.is_alive():
                raise RuntimeError(
                    f"benchmark line {self.key}: its process ended (exit code {self.process.exitcode})"
                )
        kind, value = self.conn.recv()
        if kind == "error":
            self.process.join(timeout=10)
            raise RuntimeError(f"benchmark line {self.key} failed: {value}")
        assert kind == expected, (kind, expected)
        return value

    def block(self, batch: int, min_runs: int, min_seconds: float) -> list[float]:
        """Latencies of at least `min_runs` calls over at least `min_seconds` at `batch`."""
        self.conn.send(("block", batch, min_runs, min_seconds))
        times: list[float] = self._reply("times")
        return times

    def close(self) -> None:
        if not self.ready:  # still loading (another line failed): nothing of it to keep
            self.process.terminate()
        elif self.process.is_alive():
            self.conn.send(("close",))
            self._reply("closed")
        self.process.join(timeout=30)


def start_workers(
    keys: Sequence[str], context: Context, feeds: dict[int, dict[str, Any]]
) -> list[LineWorker]:
    """One loaded worker per line. They load side by side (imports, model reads and compilation keep
    every core busy: a quick run's six lines load in ~6 s instead of ~11 one after another); nothing is
    timed until all of them are ready."""
    workers: list[LineWorker] = []
    try:
        for key in keys:
            workers.append(LineWorker(key, context, feeds))
        for worker in workers:
            worker.wait_ready()
    except BaseException:
        for worker in workers:
            worker.close()
        raise
    return workers
