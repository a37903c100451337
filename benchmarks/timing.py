"""Timing: warm-up, then rounds of timed calls, interleaved across everything being compared.

On a shared machine the load drifts while a benchmark runs; measuring every configuration once per
round, round after round, exposes all of them to the same drift, so their ratios stay meaningful even
when their absolute numbers move. Each round runs a configuration until it has both `min_runs` calls
and `min_seconds` of them; medians over all rounds are the headline, the spread of the per-round
medians says how steady the machine was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SETTLE_SECONDS = 0.2  # pause between blocks, so the last library's spinning threads go to sleep


@dataclass(frozen=True)
class Protocol:
    """How long to measure each configuration."""

    warmup_runs: int = 3
    rounds: int = 3
    min_runs: int = 10
    min_seconds: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "warmup_runs": self.warmup_runs,
            "rounds": self.rounds,
            "min_runs_per_round": self.min_runs,
            "min_seconds_per_round": self.min_seconds,
        }


@dataclass
class Samples:
    """Latencies (seconds) of one configuration, by round."""

    rounds: list[list[float]] = field(default_factory=list)

    @property
    def all(self) -> np.ndarray:
        return np.array([t for r in self.rounds for t in r])

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.all, q))

    def summary(self) -> dict[str, Any]:
        """p50/p90/p99/mean/min latency in ms, runs, and the spread of per-round medians (%)."""
        medians = [float(np.median(r)) for r in self.rounds if r]
        p50 = self.percentile(50)
        return {
            "runs": int(self.all.size),
            "latency_ms": {
                "p50": 1e3 * p50,
                "p90": 1e3 * self.percentile(90),
                "p99": 1e3 * self.percentile(99),
                "mean": 1e3 * float(self.all.mean()),
                "min": 1e3 * float(self.all.min()),
            },
            "round_medians_ms": [1e3 * m for m in medians],
            "round_spread_pct": 100 * (max(medians) - min(medians)) / p50 if p50 else 0.0,
        }


def run_block(fn: Callable[[], object], min_runs: int, min_seconds: float) -> list[float]:
    """Call `fn` until both `min_runs` calls and `min_seconds` have passed; the latency of each call."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


Block = Callable[[int, float], list[float]]  # (min_runs, min_seconds) -> latencies of one block


def measure_interleaved(
    blocks: Sequence[Block], protocol: Protocol, on_round: Callable[[int], None] | None = None
) -> list[Samples]:
    """Warm up every configuration, then `protocol.rounds` rounds over all of them, one block each;
    Samples in the same order."""
    for block in blocks:
        block(protocol.warmup_runs, 0.0)
    samples = [Samples() for _ in blocks]
    for round_index in range(protocol.rounds):
        for block, sample in zip(blocks, samples, strict=True):
            time.sleep(SETTLE_SECONDS)
            sample.rounds.append(block(protocol.min_runs, protocol.min_seconds))
        if on_round is not None:
            on_round(round_index)
    return samples
