"""The Prometheus values as OTLP: counters as cumulative monotonic sums, gauges as gauges,
cumulative `le` buckets as per-bucket counts; posted to a real OTLP/HTTP endpoint."""

import asyncio

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from libs.runtime.metrics_otlp import OtlpMetricsPusher, endpoint, to_otlp


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    requests = Counter("requests", "Requests.", ["status"], registry=registry)
    requests.labels("200").inc(3)
    requests.labels("500").inc()
    Gauge("open_streams", "Open streams.", registry=registry).set(7)
    latency = Histogram("latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=registry)
    for value in (0.05, 0.5, 0.7, 3.0):
        latency.observe(value)
    return registry


def test_each_kind_maps_to_its_otlp_shape() -> None:
    request = to_otlp(_registry().collect(), {"service.name": "switchboard-test"}, start_ns=1, now_ns=2)
    (resource,) = request.resource_metrics
    assert resource.resource.attributes[0].value.string_value == "switchboard-test"
    metrics = {m.name: m for m in resource.scope_metrics[0].metrics}
    counter = metrics["requests"]
    assert counter.sum.is_monotonic and counter.sum.aggregation_temporality == 2  # cumulative
    values = {p.attributes[0].value.string_value: p.as_double for p in counter.sum.data_points}
    assert values == {"200": 3.0, "500": 1.0}
    assert metrics["open_streams"].gauge.data_points[0].as_double == 7.0
    (point,) = metrics["latency_seconds"].histogram.data_points
    assert list(point.explicit_bounds) == [0.1, 1.0]
    assert list(point.bucket_counts) == [1, 2, 1] and point.count == 4 and abs(point.sum - 4.25) < 1e-9


def test_off_without_an_endpoint_and_the_metrics_path_otherwise() -> None:
    assert endpoint({}) is None
    assert endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == "http://c:4318/v1/metrics"
    assert endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRICS_EXPORTER": "none"}) is None
    assert endpoint({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m/x"}) == "http://m/x"


async def test_the_pusher_posts_to_a_receiver(unused_tcp_port: int) -> None:
    received: list[ExportMetricsServiceRequest] = []

    async def metrics(request: web.Request) -> web.Response:
        message = ExportMetricsServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(body=b"")

    app = web.Application()
    app.router.add_post("/v1/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        pusher = OtlpMetricsPusher("test", _registry(), {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{unused_tcp_port}",
            "OTEL_METRIC_EXPORT_INTERVAL": "50"})
        pusher.start()
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.02)
        await pusher.stop()
    finally:
        await runner.cleanup()
    assert received
    names = {m.name for m in received[0].resource_metrics[0].scope_metrics[0].metrics}
    assert {"requests", "open_streams", "latency_seconds"} <= names
