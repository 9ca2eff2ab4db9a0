"""OpenTelemetry traces and metrics, received by a real OTLP/HTTP endpoint: one trace per request
from the edge's SERVER span through NATS (PRODUCER -> CONSUMER) to the provider call (a GenAI
CLIENT span), continuing the client's traceparent; no prompt or completion in any span; the
services' metrics pushed to the same endpoint."""

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster
from tests.integration.webhooks_support import Receiver as WebhookReceiver
from tools.cli.processes import free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
PROMPT = "a secret prompt that must never reach a span"
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # the OTLP SpanKind numbers


@dataclass
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, object]
    error: bool


@dataclass
class Receiver:
    port: int
    spans: list[ReceivedSpan] = field(default_factory=list)
    metrics: dict[str, set[str]] = field(default_factory=dict)  # service -> metric names pushed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]


def _value(any_value) -> object:  # type: ignore[no-untyped-def]
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _serve(receiver: Receiver) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/metrics":
                pushed = ExportMetricsServiceRequest()
                pushed.ParseFromString(raw)
                with receiver.lock:
                    for resource in pushed.resource_metrics:
                        service = next(str(_value(a.value)) for a in resource.resource.attributes
                                       if a.key == "service.name")
                        receiver.metrics.setdefault(service, set()).update(
                            m.name for scope in resource.scope_metrics for m in scope.metrics)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            request = ExportTraceServiceRequest()
            request.ParseFromString(raw)
            with receiver.lock:
                for resource in request.resource_spans:
                    service = next(str(_value(a.value)) for a in resource.resource.attributes
                                   if a.key == "service.name")
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            receiver.spans.append(ReceivedSpan(
                                service, span.name, span.kind, span.trace_id.hex(), span.span_id.hex(),
                                span.parent_span_id.hex(), {a.key: _value(a.value) for a in span.attributes},
                                span.status.code == 2))
            body = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def traced() -> Iterator[tuple[Cluster, Receiver]]:
    receiver = Receiver(free_port())
    server = _serve(receiver)
    cluster = start_cluster(extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                                       "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "300"})
    yield cluster, receiver
    cleanup(cluster)
    server.shutdown()


def _traceparent(trace_id: str) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"}


def _whole_trace(receiver: Receiver, trace_id: str, names: set[str]) -> list[ReceivedSpan]:
    def complete() -> list[ReceivedSpan] | None:
        spans = receiver.of_trace(trace_id)
        return spans if names <= {s.name for s in spans} else None

    return eventually(complete, timeout_s=15, interval_s=0.1)


def test_a_chat_request_is_one_trace_from_the_edge_to_the_provider(traced: tuple[Cluster, Receiver]) -> None:
    cluster, receiver = traced
    client = cluster.client()
    raw = client.chat.completions.with_raw_response.create(
        model="sim/gpt-sim", messages=[{"role": "user", "content": PROMPT}], extra_headers={
            **_traceparent(TRACE_ID), "x-aig-tag": "traced"})
    assert raw.parse().choices[0].message.content
    spans = _whole_trace(receiver, TRACE_ID, {"POST /v1/chat/completions", "send sb.infer.chat",
                                              "process sb.infer.chat", "chat gpt-sim"})
    by_name = {s.name: s for s in spans}
    server, producer = by_name["POST /v1/chat/completions"], by_name["send sb.infer.chat"]
    consumer, call = by_name["process sb.infer.chat"], by_name["chat gpt-sim"]
    assert (server.service, server.kind, server.parent) == ("switchboard-edge", SERVER, CLIENT_SPAN)
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert (producer.kind, producer.parent) == (PRODUCER, server.span_id)
    assert (consumer.service, consumer.kind, consumer.parent) == ("switchboard-router", CONSUMER, producer.span_id)
    assert (call.kind, call.parent) == (CLIENT, consumer.span_id)
    attributes = call.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "sim"
    assert attributes["gen_ai.request.model"] == "gpt-sim"
    assert attributes["gen_ai.request.stream"] is False
    assert attributes["gen_ai.response.model"] and attributes["gen_ai.response.id"]
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["switchboard.cost_micros"] > 0 and attributes["switchboard.tag"] == "traced"
    assert "gen_ai.system" not in attributes  # the deprecated name
    for span in spans:
        assert all(PROMPT not in str(value) for value in span.attributes.values()), span


def test_a_stream_and_a_failover_are_traced_with_their_outcome(traced: tuple[Cluster, Receiver]) -> None:
    cluster, receiver = traced
    client = cluster.client()
    stream_trace = "5bf92f3577b34da6a3ce929d0e0e4737"
    chunks = list(client.chat.completions.create(model="sim/gpt-sim", stream=True, extra_headers=_traceparent(
        stream_trace), messages=[{"role": "user", "content": "stream please"}]))
    assert chunks
    call = next(s for s in _whole_trace(receiver, stream_trace, {"chat gpt-sim"}) if s.name == "chat gpt-sim")
    assert call.attributes["gen_ai.request.stream"] is True and call.attributes["gen_ai.usage.output_tokens"] > 0

    failover_trace = "6bf92f3577b34da6a3ce929d0e0e4738"
    client.chat.completions.create(model="sim/flaky", extra_headers=_traceparent(failover_trace),
                                   messages=[{"role": "user", "content": "fall back"}])
    spans = _whole_trace(receiver, failover_trace, {"chat gpt-sim+status=500", "chat gpt-sim",
                                                    "process sb.infer.chat"})
    failed = [s for s in spans if s.name == "chat gpt-sim+status=500"]
    assert failed and all(s.error and s.attributes["error.type"] == "500" for s in failed)
    answered = next(s for s in spans if s.name == "chat gpt-sim")
    assert not answered.error
    consumer = next(s for s in spans if s.name == "process sb.infer.chat")
    assert consumer.attributes["switchboard.fallback_chain"][-1] == "sim/gpt-sim"


def test_a_refused_request_is_a_server_span_with_its_status(traced: tuple[Cluster, Receiver]) -> None:
    cluster, receiver = traced
    import httpx

    refused_trace = "7bf92f3577b34da6a3ce929d0e0e4739"
    response = httpx.post(f"{cluster.base_url}/chat/completions", headers={
        **_traceparent(refused_trace), "Authorization": "Bearer sk-wrong"}, json={"model": "sim/gpt-sim"})
    assert response.status_code == 401
    (server,) = _whole_trace(receiver, refused_trace, {"POST /v1/chat/completions"})
    assert server.attributes["http.response.status_code"] == 401 and not server.error


def test_a_job_continues_the_trace_through_jobs_and_its_webhook(traced: tuple[Cluster, Receiver]) -> None:
    cluster, receiver = traced
    import httpx

    job_trace = "8bf92f3577b34da6a3ce929d0e0e473a"
    with WebhookReceiver() as hooks:
        accepted = httpx.post(f"{cluster.base_url}/chat/completions", timeout=15, headers={
            **_traceparent(job_trace), "Authorization": f"Bearer {cluster.admin_key}"}, json={
            "model": "sim/gpt-sim", "messages": [{"role": "user", "content": PROMPT}],
            "webhook_url": hooks.url("/job-done")})
        assert accepted.status_code == 202, accepted.text
        hooks.wait("/job-done", 1)
    spans = _whole_trace(receiver, job_trace, {"POST /v1/chat/completions", "send sb.infer.chat",
                                                "process sb.infer.chat", "chat gpt-sim", "POST"})
    server = next(s for s in spans if s.name == "POST /v1/chat/completions")
    producer = next(s for s in spans if s.name == "send sb.infer.chat")
    consumer = next(s for s in spans if s.name == "process sb.infer.chat")
    delivery = next(s for s in spans if s.name == "POST")
    assert (producer.service, producer.parent) == ("switchboard-jobs", server.span_id)
    assert consumer.parent == producer.span_id
    assert (delivery.service, delivery.kind, delivery.parent) == ("switchboard-webhooks", CLIENT, server.span_id)
    assert delivery.attributes["switchboard.webhook.event_type"] == "job.completed"
    assert delivery.attributes["http.response.status_code"] == 200
    for span in spans:
        assert all(PROMPT not in str(value) for value in span.attributes.values()), span


def test_the_services_push_their_metrics_over_otlp(traced: tuple[Cluster, Receiver]) -> None:
    cluster, receiver = traced
    cluster.client().chat.completions.create(model="sim/gpt-sim", messages=[{"role": "user", "content": "count"}])

    def pushed() -> dict[str, set[str]] | None:
        with receiver.lock:
            seen = {service: set(names) for service, names in receiver.metrics.items()}
        wanted = {"switchboard-router": "gen_ai_client_token_usage",
                  "switchboard-edge": "switchboard_edge_requests",  # OTLP names carry no _total
                  "switchboard-ledger": "switchboard_jetstream_consumer_lag"}
        return seen if all(name in seen.get(service, set()) for service, name in wanted.items()) else None

    assert eventually(pushed, timeout_s=15, interval_s=0.2), receiver.metrics
