"""libs/runtime/metrics_buffer.py: counting in memory, flushed to prometheus_client, reads the same."""

import asyncio
import random

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest

from libs.runtime.metrics import Metrics
from libs.runtime.metrics_buffer import CounterFamily, Flusher, HistogramFamily, HistogramTally

BOUNDS = (0.001, 0.01, 0.1, 1.0)


def _pair() -> tuple[CollectorRegistry, CollectorRegistry, Flusher, tuple[Counter, Histogram],
                     tuple[CounterFamily, HistogramFamily]]:
    disable_created_metrics()  # as Metrics does: creation times would differ between the two
    direct, buffered, flusher = CollectorRegistry(), CollectorRegistry(), Flusher()
    plain = (Counter("calls", "c", ("route",), registry=direct),
             Histogram("seconds", "h", ("route",), buckets=BOUNDS, registry=direct))
    families = (CounterFamily(Counter("calls", "c", ("route",), registry=buffered), flusher),
                HistogramFamily(Histogram("seconds", "h", ("route",), buckets=BOUNDS, registry=buffered), flusher))
    return direct, buffered, flusher, plain, families


def test_flushed_values_render_exactly_as_direct_calls_would() -> None:
    direct, buffered, _, (counter, histogram), (counters, histograms) = _pair()
    rng = random.Random(7)
    # Bounds themselves (a value on a bound is in that bucket), beyond the last (+Inf), zero, negatives.
    values = [*BOUNDS, 5.0, 0.0, -1.0, *(rng.uniform(0, 2) for _ in range(500))]
    for n, value in enumerate(values):
        route = ("a", "b", "c")[n % 3]
        counter.labels(route).inc(n % 4)
        histogram.labels(route).observe(value)
        counters.labels(route).inc(n % 4)
        histograms.labels(route).observe(value)
    asyncio.run(asyncio.sleep(0))  # no loop was running above: every move flushed at once
    assert generate_latest(buffered) == generate_latest(direct)


def test_in_a_loop_values_wait_for_the_flush_and_collect_flushes_first() -> None:
    async def scenario() -> None:
        metrics = Metrics("unit")
        calls = metrics.counter("unit_calls", "c", ("route",))
        seconds = metrics.histogram("unit_seconds", "h", (), BOUNDS)
        calls.labels("x").inc()
        calls.labels("x").inc(2)
        seconds.observe(0.05)
        assert metrics.registry.get_sample_value("unit_calls_total", {"route": "x"}) == 0  # not handed over yet
        text = metrics.render().decode()  # a scrape: this process's values exact
        assert 'unit_calls_total{route="x"} 3.0' in text
        assert 'unit_seconds_bucket{le="0.1"} 1.0' in text and "unit_seconds_count 1.0" in text
        calls.labels("x").inc()
        await asyncio.sleep(1.2)  # the timer flushes without a reader
        assert metrics.registry.get_sample_value("unit_calls_total", {"route": "x"}) == 4.0
        calls.labels("y").inc()
        await metrics.stop()  # and so does stopping
        assert metrics.registry.get_sample_value("unit_calls_total", {"route": "y"}) == 1.0

    asyncio.run(scenario())


def test_a_counter_refuses_to_go_down() -> None:
    family = CounterFamily(Counter("down", "d", registry=CollectorRegistry()), Flusher())
    try:
        family.inc(-1)
    except ValueError:
        return
    raise AssertionError("a negative increment was accepted")


class _OtherRelease:
    """A histogram child without the internals the flush writes."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def observe(self, amount: float) -> None:
        self.seen.append(amount)


def test_without_the_internals_each_value_is_observed_as_it_was() -> None:
    child = _OtherRelease()
    tally = HistogramTally(child, Flusher())  # type: ignore[arg-type]
    tally.observe(0.5)  # no loop: flushed at once, through observe()
    tally.observe(3.0)
    assert child.seen == [0.5, 3.0]
