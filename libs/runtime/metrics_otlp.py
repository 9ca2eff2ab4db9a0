"""The same metrics as /metrics, pushed over OTLP/HTTP when an OTLP endpoint is configured.

prometheus_client keeps the values (it is what sums a service's worker processes, which the
OpenTelemetry SDK's readers cannot); every `OTEL_METRIC_EXPORT_INTERVAL` ms (default 60,000)
this reads what /metrics would render and posts it as one `ExportMetricsServiceRequest` to
`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`):
counters as cumulative monotonic sums, gauges as gauges, histograms as cumulative explicit-bucket
histograms. Off when no endpoint is set or `OTEL_METRICS_EXPORTER=none`.

Several workers of one service on a machine (PROMETHEUS_MULTIPROC_DIR) all see the same sum, so
one posts it: whichever holds an flock on a file in that directory; when it dies the lock goes
with it and another worker takes over at its next interval.
"""

import asyncio
import fcntl
import os
import time
from collections.abc import Iterable, Mapping
from typing import Protocol

import aiohttp
import structlog
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from prometheus_client.metrics_core import Metric

from libs.runtime.background import BackgroundTask

log = structlog.get_logger()
_CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE


class Source(Protocol):
    def collect(self) -> Iterable[Metric]: ...


def endpoint(env: Mapping[str, str]) -> str | None:
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get("OTEL_METRICS_EXPORTER", "") == "none":
        return None
    explicit = env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    if explicit:
        return explicit
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/metrics" if base else None


def _attributes(labels: Mapping[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in sorted(labels.items())]


def _histograms(family: Metric, now_ns: int, start_ns: int) -> list[metrics_pb2.HistogramDataPoint]:
    """Prometheus's cumulative `le` buckets, `_sum` and `_count` as OTLP points (per-bucket counts)."""
    series: dict[tuple[tuple[str, str], ...], dict[str, object]] = {}
    for sample in family.samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        entry = series.setdefault(tuple(sorted(labels.items())), {"buckets": [], "sum": 0.0, "count": 0})
        if sample.name.endswith("_bucket"):
            entry["buckets"].append((float(sample.labels["le"]), sample.value))  # type: ignore[union-attr]
        elif sample.name.endswith("_sum"):
            entry["sum"] = sample.value
        elif sample.name.endswith("_count"):
            entry["count"] = int(sample.value)
    points = []
    for key, entry in series.items():
        buckets = sorted(entry["buckets"])  # type: ignore[arg-type]
        bounds = [le for le, _ in buckets if le != float("inf")]
        cumulative = [count for _, count in buckets]
        counts = [int(c - (cumulative[i - 1] if i else 0)) for i, c in enumerate(cumulative)]
        points.append(metrics_pb2.HistogramDataPoint(
            attributes=_attributes(dict(key)), start_time_unix_nano=start_ns, time_unix_nano=now_ns,
            count=int(entry["count"]), sum=float(entry["sum"]), bucket_counts=counts,  # type: ignore[arg-type]
            explicit_bounds=bounds))
    return points


def to_otlp(families: Iterable[Metric], resource: Mapping[str, str], start_ns: int,
            now_ns: int | None = None) -> ExportMetricsServiceRequest:
    now_ns = now_ns or time.time_ns()
    metrics = []
    for family in families:
        if family.type == "histogram":
            metrics.append(metrics_pb2.Metric(name=family.name, description=family.documentation,
                                              histogram=metrics_pb2.Histogram(
                                                  data_points=_histograms(family, now_ns, start_ns),
                                                  aggregation_temporality=_CUMULATIVE)))
            continue
        points = [metrics_pb2.NumberDataPoint(attributes=_attributes(s.labels), as_double=float(s.value),
                                              start_time_unix_nano=start_ns, time_unix_nano=now_ns)
                  for s in family.samples if not s.name.endswith("_created")]
        if family.type == "counter":
            metrics.append(metrics_pb2.Metric(name=family.name, description=family.documentation,
                                              sum=metrics_pb2.Sum(data_points=points, is_monotonic=True,
                                                                  aggregation_temporality=_CUMULATIVE)))
        else:
            metrics.append(metrics_pb2.Metric(name=family.name, description=family.documentation,
                                              gauge=metrics_pb2.Gauge(data_points=points)))
    return ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource=Resource(attributes=_attributes(resource)),
        scope_metrics=[metrics_pb2.ScopeMetrics(scope=InstrumentationScope(name="switchboard"), metrics=metrics)])])


class OtlpMetricsPusher:
    """Posts `source`'s metrics every interval while running; `start` does nothing when off."""

    def __init__(self, service: str, source: Source, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.url = endpoint(env)
        self._source = source
        self._interval_s = float(env.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")) / 1000
        self._resource = {"service.name": env.get("OTEL_SERVICE_NAME") or f"switchboard-{service}",
                          "service.instance.id": f"{os.uname().nodename}-{os.getpid()}"}
        self._started_ns = time.time_ns()
        self._task = BackgroundTask("otlp-metrics-push")
        self._shared_dir = env.get("PROMETHEUS_MULTIPROC_DIR")
        self._lock_fd: int | None = None

    def _my_turn(self) -> bool:
        """Alone: always. One of several workers: while this one holds the directory's lock."""
        if not self._shared_dir:
            return True
        if self._lock_fd is None:
            fd = os.open(os.path.join(self._shared_dir, "otlp-push.lock"), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._lock_fd = fd  # held for the life of the process
        return True

    def start(self) -> None:
        if self.url is not None:
            self._task.start(self._run())

    async def stop(self) -> None:
        if self.url is None:
            return
        await self._task.stop()
        if self._my_turn():
            await self.push()  # what accumulated since the last push

    async def push(self) -> None:
        assert self.url is not None
        body = to_otlp(self._source.collect(), self._resource, self._started_ns).SerializeToString()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, session.post(
                    self.url, data=body, headers={"Content-Type": "application/x-protobuf"}) as response:
                if response.status >= 300:
                    log.warning("otlp_metrics_refused", status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:  # the collector away: the next push carries on
            log.warning("otlp_metrics_failed", error=repr(exc))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if self._my_turn():
                await self.push()
