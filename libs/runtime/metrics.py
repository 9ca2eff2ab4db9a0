"""Prometheus metrics for one service process, and its /metrics text.

Each service defines its metrics on a `Metrics` of its own (services/<name>/metrics.py); the
edge serves them on its HTTP port, the other services on their health port.

Two modes, fixed when the process starts:
- one process (PROMETHEUS_MULTIPROC_DIR unset: the tests, a container per replica): the values
  live in this process and /metrics renders them;
- several workers of one service on one machine (`switchboard up` sets PROMETHEUS_MULTIPROC_DIR
  per service, see metrics_dir.py): prometheus_client keeps every value in a per-process file
  there and whichever worker answers /metrics renders the sum over all of them (counters and
  histograms summed, gauges by their `multiprocess_mode`). prometheus_client picks its mode when
  it is first imported, so the variable must be in the process's environment from the start.
  One process holds one `Metrics` per service: two objects writing the same series to the same
  per-process file would overwrite each other's counts.

Values known only at scrape time (the supervisor's restart counts, the router's breaker states)
come from collectors of the process that answers; JetStream consumer lag is polled every few
seconds by a background task (`watch_consumers`), never per message. With an OTLP endpoint
configured, `start_export` pushes the same values over OTLP/HTTP (libs/runtime/metrics_otlp.py).
"""

import asyncio
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, Literal, Protocol

import nats.errors
import nats.js.errors
import structlog
from aiohttp import web
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from libs.runtime.background import BackgroundTask
from libs.runtime.env import env_float
from libs.runtime.health import supervisor_status
from libs.runtime.metrics_buffer import CounterFamily, Flusher, HistogramFamily
from libs.runtime.metrics_dir import MULTIPROC_ENV

if TYPE_CHECKING:
    from libs.runtime.metrics_otlp import OtlpMetricsPusher

log = structlog.get_logger()

# The classic text format: what every Prometheus (and the OpenTelemetry Collector's receiver) reads.
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
# A label value outside the bounded set a label may take (the GenAI conventions' spelling).
OTHER: Final = "_OTHER"

# Seconds. HTTP and whole-request latencies: a cache hit (ms) to a long generation (minutes).
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# What the gateway adds to a provider call: well under a millisecond to tens of them.
OVERHEAD_BUCKETS: Final = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
# Request to router pick-up: sub-millisecond when idle, seconds when a burst queues (issue 10).
PICKUP_BUCKETS: Final = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The GenAI semantic conventions' advised buckets for gen_ai.client.operation.duration,
# gen_ai.client.token.usage and the time to the first chunk.
GENAI_DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                                 81.92)
GENAI_TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
                              67108864)
GENAI_FIRST_CHUNK_BUCKETS: Final = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                                    5.0, 7.5, 10.0)

# How a gauge's per-worker values combine in multiprocess mode ("live": only running workers).
GaugeMode = Literal["livesum", "livemax", "livemin", "livemostrecent", "sum", "max", "min", "mostrecent"]

_LAG_INTERVAL_S = 5.0
_LAG_RETRY_S = 1.0  # a consumer not created yet (its service is starting) is looked for again sooner
_LAG_TIMEOUT_S = 2.0


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


def multiprocess_dir() -> str | None:
    """The folder shared by this service's workers, or None in single-process mode."""
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


class Metrics:
    """One service process's metric definitions, and their rendering for /metrics."""

    def __init__(self, service: str) -> None:
        # `*_created` series double the series count and are absent in multiprocess mode anyway.
        disable_created_metrics()
        self.service = service
        self.registry = CollectorRegistry()
        self._dir = multiprocess_dir()
        self._at_scrape: list[Collector] = [SupervisorRestarts(service)]
        self._lag: ConsumerLag | None = None
        self._otlp: OtlpMetricsPusher | None = None
        self._flusher = Flusher()  # counters and histograms count in memory between flushes

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> CounterFamily:
        return CounterFamily(Counter(name, documentation, labels, registry=self.registry), self._flusher)

    def histogram(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
                  ) -> HistogramFamily:
        return HistogramFamily(Histogram(name, documentation, labels, registry=self.registry, buckets=buckets),
                               self._flusher)

    def gauge(self, name: str, documentation: str, labels: Sequence[str], mode: GaugeMode) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry, multiprocess_mode=mode)

    def at_scrape(self, collector: Collector) -> None:
        """Values this process computes when /metrics is read."""
        self._at_scrape.append(collector)

    def flush(self) -> None:
        """Hand what the counters and histograms counted since the last flush to prometheus_client."""
        self._flusher.flush()

    def collect(self) -> Iterator[Metric]:
        self.flush()  # every reader (a scrape, an OTLP push) sees this process's values exact
        if self._dir is not None:
            # Read afresh from every worker's files at each scrape; this process's own values are among them.
            yield from MultiProcessCollector(None, self._dir).collect()
        else:
            yield from self.registry.collect()
        for collector in self._at_scrape:
            yield from collector.collect()

    def render(self) -> bytes:
        return generate_latest(self)

    async def handler(self, _: web.Request) -> web.Response:
        """GET /metrics on a health port (internal: no key)."""
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE})

    def watch_consumers(self, js: JetStreamContext, consumers: Sequence[tuple[str, str]]) -> None:
        """Poll the lag of these (stream, durable) consumers from now on."""
        if self._lag is None:
            self._lag = ConsumerLag(self, js, consumers)
            self._lag.start()

    def start_export(self) -> None:
        """Push these metrics over OTLP/HTTP from now on, if an OTLP endpoint is configured."""
        from libs.runtime import metrics_otlp  # the protobuf modules only where something may be sent

        if self._otlp is None and metrics_otlp.endpoint(os.environ) is not None:
            self._otlp = metrics_otlp.OtlpMetricsPusher(self.service, self)
            self._otlp.start()

    async def stop(self) -> None:
        """Stop polling and exporting (the exporter sends what accumulated since its last push)."""
        if self._lag is not None:
            await self._lag.stop()
            self._lag = None
        if self._otlp is not None:
            await self._otlp.stop()
            self._otlp = None
        self.flush()  # into the multiprocess files, where the other workers' scrapes read it


class SupervisorRestarts:
    """How often the supervisor (`switchboard up`, the test fixture) restarted this service's
    processes, from the status file every service already reads for /readyz."""

    def __init__(self, service: str) -> None:
        self._service = service

    def _mine(self, name: str) -> bool:
        # The supervisor names a service's processes `router`, `router-2`, ... (tests: `router-0`, ...).
        return name == self._service or name.startswith(self._service + "-")

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("switchboard_supervisor_restarts",
                                     "Times the supervisor restarted a process of this service after it exited.",
                                     labels=("process",))
        status = supervisor_status()
        if status is not None:
            for process in status.processes:
                if self._mine(process.name):
                    family.add_metric((process.name,), process.restarts)
        yield family


class ConsumerLag:
    """num_pending + num_ack_pending of durable JetStream consumers: messages not yet handled.

    One consumer_info request per consumer every SWITCHBOARD_METRICS_LAG_INTERVAL_S (5 s), from a
    background task: what KEDA scales the queue consumers on, seen from inside."""

    def __init__(self, metrics: Metrics, js: JetStreamContext, consumers: Sequence[tuple[str, str]]) -> None:
        self._js = js
        self._consumers = tuple(consumers)
        self._interval_s = env_float("SWITCHBOARD_METRICS_LAG_INTERVAL_S", _LAG_INTERVAL_S)
        # Every replica sees the same lag: in multiprocess mode the live workers' highest reading.
        self._gauge = metrics.gauge("switchboard_jetstream_consumer_lag",
                                    "Messages of a durable consumer not yet acknowledged: pending delivery "
                                    "plus delivered and awaiting their ack.", ("stream", "consumer"), "livemax")
        self._task = BackgroundTask("consumer-lag")

    def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    async def poll(self) -> bool:
        """Read every consumer once; False if one could not be read (absent, or NATS away)."""
        complete = True
        for stream, durable in self._consumers:
            try:
                info = await self._js.consumer_info(stream, durable, timeout=_LAG_TIMEOUT_S)
            except nats.js.errors.NotFoundError:  # not created yet: its service is starting
                complete = False
                continue
            except (nats.errors.Error, TimeoutError) as exc:
                log.debug("consumer_lag_unavailable", stream=stream, consumer=durable, error=repr(exc))
                complete = False
                continue
            self._gauge.labels(stream, durable).set((info.num_pending or 0) + (info.num_ack_pending or 0))
        return complete

    async def _run(self) -> None:
        while True:
            try:
                complete = await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a metric must never take the service down
                log.warning("consumer_lag_failed", error=repr(exc))
                complete = False
            await asyncio.sleep(self._interval_s if complete else min(self._interval_s, _LAG_RETRY_S))
