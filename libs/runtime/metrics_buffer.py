"""Counters and histograms that count in plain Python and hand the totals to prometheus_client
at most once a second, and always before /metrics or an OTLP push reads them.

Why: a request moves about ten series (the router's requests, durations, tokens, cost; the
edge's requests and durations). Through prometheus_client directly each move takes a lock and,
with several workers, writes a memory-mapped file: about 20 µs of CPU per request, over issue
10's budget of 30 µs for a feature once the edge's share is added. Here a move is an addition
(well under a microsecond) and the flush is one write per series that moved.

What a reader sees: this process's own values are exact at every scrape (it flushes first);
another worker's, in multiprocess mode, are at most `FLUSH_S` old. A process that dies loses
what it counted since its last flush, as it would lose its in-memory values anyway.

The histogram flush writes the buckets prometheus_client keeps per child (`_buckets`, `_sum`,
`_upper_bounds`, as in its own `observe`); `HistogramTally` checks those exist when it is made
and falls back to calling `observe` if a release ever changes them.
"""

import asyncio
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Histogram

FLUSH_S = 1.0
T = TypeVar("T", "CounterTally", "HistogramTally")


class Flusher:
    """The series of one process that moved since the last flush, and the timer that flushes them."""

    __slots__ = ("_dirty", "_timer")

    def __init__(self) -> None:
        self._dirty: list[_Tally] = []
        self._timer: asyncio.TimerHandle | None = None

    def moved(self, series: "_Tally") -> None:
        self._dirty.append(series)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a script, a unit test): nothing would flush later
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:  # a reader flushed first: the next move starts a new second
            self._timer.cancel()
            self._timer = None
        dirty, self._dirty = self._dirty, []
        for series in dirty:
            series.flush()


class _Tally:
    __slots__ = ("_flusher", "_moved")

    def __init__(self, flusher: Flusher) -> None:
        self._flusher = flusher
        self._moved = False

    def _mark(self) -> None:
        """Called after counting: with no event loop, moved() flushes at once."""
        if not self._moved:
            self._moved = True
            self._flusher.moved(self)

    def flush(self) -> None:
        raise NotImplementedError


class CounterTally(_Tally):
    __slots__ = ("_child", "_pending")

    def __init__(self, child: Counter, flusher: Flusher) -> None:
        super().__init__(flusher)
        self._child = child
        self._pending = 0.0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._pending += amount
        self._mark()

    def flush(self) -> None:
        self._moved = False
        pending, self._pending = self._pending, 0.0
        if pending:
            self._child.inc(pending)


class HistogramTally(_Tally):
    __slots__ = ("_bounds", "_child", "_counts", "_direct", "_pending_values", "_sum")

    def __init__(self, child: Histogram, flusher: Flusher) -> None:
        super().__init__(flusher)
        self._child = child
        bounds = getattr(child, "_upper_bounds", None)
        buckets = getattr(child, "_buckets", None)
        # The internals this flush writes; without them (another release), observe() per value.
        self._direct = not (isinstance(bounds, list) and isinstance(buckets, list) and hasattr(child, "_sum")
                            and len(bounds) == len(buckets))
        self._bounds: list[float] = list(bounds) if not self._direct else []  # type: ignore[arg-type]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._pending_values: list[float] = []

    def observe(self, amount: float) -> None:
        if self._direct:
            self._pending_values.append(amount)
        else:
            # prometheus_client's rule: the first bucket whose bound is >= amount (the last is +Inf).
            self._counts[bisect_left(self._bounds, amount)] += 1
            self._sum += amount
        self._mark()

    def flush(self) -> None:
        self._moved = False
        if self._direct:
            values, self._pending_values = self._pending_values, []
            for value in values:
                self._child.observe(value)
            return
        child = self._child
        if any(self._counts):
            child._sum.inc(self._sum)  # type: ignore[attr-defined]
            for index, count in enumerate(self._counts):
                if count:
                    child._buckets[index].inc(count)  # type: ignore[attr-defined]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0


class _Family(Generic[T]):
    """A prometheus_client metric whose children count through tallies, made once per label set."""

    __slots__ = ("_children", "_flusher", "_tally", "metric")

    def __init__(self, metric: Any, flusher: Flusher, tally: Callable[[Any, Flusher], T]) -> None:
        self.metric = metric
        self._flusher = flusher
        self._tally = tally
        self._children: dict[tuple[str, ...], T] = {}

    def labels(self, *values: object) -> T:
        key = tuple(map(str, values))
        child = self._children.get(key)
        if child is None:
            source = self.metric.labels(*key) if key else self.metric
            child = self._children[key] = self._tally(source, self._flusher)
        return child


class CounterFamily(_Family[CounterTally]):
    __slots__ = ()

    def __init__(self, metric: Counter, flusher: Flusher) -> None:
        super().__init__(metric, flusher, CounterTally)

    def inc(self, amount: float = 1) -> None:
        self.labels().inc(amount)


class HistogramFamily(_Family[HistogramTally]):
    __slots__ = ()

    def __init__(self, metric: Histogram, flusher: Flusher) -> None:
        super().__init__(metric, flusher, HistogramTally)

    def observe(self, amount: float) -> None:
        self.labels().observe(amount)
