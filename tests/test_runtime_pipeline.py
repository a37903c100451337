"""The background stage: order, bounded look-ahead, errors handed over, and a clean stop."""

from __future__ import annotations

import threading
import time

import pytest

from runtime.pipeline import background, chunks


def test_items_arrive_in_order_from_another_thread():
    threads = []

    def source():
        for i in range(20):
            threads.append(threading.current_thread())
            yield i

    assert list(background(source(), 3)) == list(range(20))
    assert threading.current_thread() not in threads


def test_the_producer_stays_a_bounded_number_of_items_ahead():
    produced = []

    def source():
        for i in range(1000):
            produced.append(i)
            yield i

    stream = background(source(), 2)
    assert next(stream) == 0
    time.sleep(0.3)
    assert len(produced) <= 1 + 2 + 1  # taken, queued, and one waiting to be queued
    stream.close()


def test_errors_reach_the_consumer():
    def source():
        yield 1
        raise KeyError("broken source")

    stream = background(source(), 2)
    assert next(stream) == 1
    with pytest.raises(KeyError, match="broken source"):
        next(stream)


def test_closing_stops_the_producer_and_closes_its_source():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = background(endless(), 2, name="test-worker")
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    stream.close()
    assert closed.is_set()  # close() waits for the worker, which closed its source
    assert not any(t.name == "test-worker" for t in threading.enumerate())


def test_chunks():
    assert list(chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 3)) == []
