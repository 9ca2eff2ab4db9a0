"""OpenTelemetry tracing for one service, configured by the SDK's standard variables.

On when an exporter is configured (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_TRACES_EXPORTER=otlp|console`) and not
disabled (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`). Off, the hot path pays one
attribute read (`Tracing.enabled`) and nothing else: no spans, no headers.

The service name is `OTEL_SERVICE_NAME`, else `switchboard-<service>`; the sampler is the
SDK's (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`); spans leave in batches over
OTLP/HTTP (the exporter reads the endpoint, headers and timeout variables itself).

nats-py has no OpenTelemetry instrumentation: the context travels in NATS message headers
(W3C `traceparent`/`tracestate`, through `opentelemetry.propagate`), one PRODUCER span where a
message is sent and one CONSUMER span where it is processed.
"""

import os
from collections.abc import Mapping

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Tracer

log = structlog.get_logger()
_NOOP_TRACER = trace.NoOpTracer()


def configured(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter == "none":
        return False
    return exporter in ("otlp", "console") or bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


class Tracing:
    """This process's tracer, or the no-op one when tracing is off."""

    def __init__(self, service: str, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.enabled = configured(env)
        self.tracer: Tracer = _NOOP_TRACER
        self._provider = None
        if self.enabled:
            self._start(service, env)

    def _start(self, service: str, env: Mapping[str, str]) -> None:
        # Imported only when on: the SDK and the exporter cost start-up time nobody asked for.
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

        resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or f"switchboard-{service}"})
        provider = TracerProvider(resource=resource)
        exporter: SpanExporter
        if env.get("OTEL_TRACES_EXPORTER", "").lower() == "console":
            exporter = ConsoleSpanExporter()
        else:
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            if protocol and protocol != "http/protobuf":
                log.warning("otel_protocol_unsupported", protocol=protocol, using="http/protobuf")
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        self._provider = provider
        self.tracer = provider.get_tracer("switchboard")
        log.info("tracing_on", service_name=resource.attributes.get("service.name"))

    def shutdown(self) -> None:
        """Export what is still queued (the batch processor's flush), then stop."""
        if self._provider is not None:
            self._provider.shutdown()

    @staticmethod
    def extract(headers: Mapping[str, str] | None, traceparent: str | None = None) -> otel_context.Context:
        """The parent context a message or request carries: its headers, else a bare traceparent."""
        carrier = {key.lower(): value for key, value in (headers or {}).items()}  # HTTP names are any case
        if "traceparent" not in carrier and traceparent:
            carrier["traceparent"] = traceparent
        return propagate.extract(carrier)

    def producer_headers(self, destination: str, parent: otel_context.Context | None = None) -> dict[str, str]:
        """A PRODUCER span for sending one message to `destination`, ended at once (the send is
        asynchronous), and the headers that carry its context to the consumer."""
        span = self.tracer.start_span(f"send {destination}", context=parent, kind=SpanKind.PRODUCER,
                                      attributes={"messaging.system": "nats", "messaging.destination.name": destination,
                                                  "messaging.operation.type": "send"})
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(span, parent))
        span.end()
        return headers

    def consumer_span(self, destination: str, headers: Mapping[str, str] | None,
                      traceparent: str | None = None) -> Span:
        """A CONSUMER span for processing one message, child of the context it carries; the caller ends it."""
        return self.tracer.start_span(f"process {destination}", context=self.extract(headers, traceparent),
                                      kind=SpanKind.CONSUMER,
                                      attributes={"messaging.system": "nats",
                                                  "messaging.destination.name": destination,
                                                  "messaging.operation.type": "process"})

    @staticmethod
    def traceparent_of(span: Span) -> str | None:
        """The W3C traceparent naming `span`, for records that outlive the message (jobs)."""
        if isinstance(span, NonRecordingSpan) and not span.get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier.get("traceparent")
