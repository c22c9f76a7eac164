"""Speed comparisons that mean something on a shared machine.

Both sides run in one process, interleaved round by round after a warm-up, and the ratio is the
median of the per-round ratios (with its range): a burst of load hits both sides of a round alike,
where "best of 2, one after the other" compares one side's quiet moment with the other's busy one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MIN_ROUNDS = 5


@dataclass
class SpeedComparison:
    """Seconds per call of each function, one entry per round (``times[name][round]``)."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        """Median seconds per call of ``name``."""
        return statistics.median(self._times(name))

    def ratios(self, slow: str, fast: str) -> list[float]:
        """Per-round ``time(slow) / time(fast)``: how many times faster ``fast`` was."""
        return [s / f for s, f in zip(self._times(slow), self._times(fast), strict=True)]

    def ratio(self, slow: str, fast: str) -> float:
        """Median over rounds of ``time(slow) / time(fast)`` (> 1: ``fast`` is faster)."""
        return statistics.median(self.ratios(slow, fast))

    def ratio_range(self, slow: str, fast: str) -> tuple[float, float]:
        """Smallest and largest per-round ratio."""
        ratios = self.ratios(slow, fast)
        return min(ratios), max(ratios)

    def table(self):
        """A DataFrame: median, fastest and slowest ms per call of each function."""
        import pandas as pd

        return pd.DataFrame({name: {"median ms": 1e3 * self.median(name),
                                    "fastest ms": 1e3 * min(t), "slowest ms": 1e3 * max(t)}
                             for name, t in self.times.items()}).T

    def _times(self, name: str) -> list[float]:
        if name not in self.times:
            raise KeyError(f"no timings for {name!r}; timed: {sorted(self.times)}")
        return self.times[name]


def compare_speed(functions: dict[str, Callable[[], object]], rounds: int = 7, warmup: int = 1,
                  calls: int = 1) -> SpeedComparison:
    """Time each zero-argument function ``calls`` times per round, rounds interleaved.

    Each round runs every function once in a rotated order (so none is always first), after
    ``warmup`` untimed rounds. Returns seconds per call per round.
    """
    if len(functions) < 2:
        raise ValueError(f"compare at least two functions, got {len(functions)}")
    if not all(callable(f) for f in functions.values()):
        raise TypeError("every value must be a zero-argument callable")
    if not isinstance(rounds, int) or rounds < MIN_ROUNDS:
        raise ValueError(f"rounds must be an int >= {MIN_ROUNDS} (a median needs several), got {rounds!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")
    if not isinstance(calls, int) or calls < 1:
        raise ValueError(f"calls must be a positive int, got {calls!r}")
    names = list(functions)
    result = SpeedComparison({name: [] for name in names})
    for index in range(warmup + rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            for _ in range(calls):
                functions[name]()
            elapsed = (time.perf_counter() - start) / calls
            if index >= warmup:
                result.times[name].append(elapsed)
    return result
