"""The router's spans: one CONSUMER span per inference message, and per provider attempt one
CLIENT span named and attributed by the OpenTelemetry GenAI semantic conventions
(`{gen_ai.operation.name} {gen_ai.request.model}`, `gen_ai.provider.name`, usage, response
model, id and finish reasons), plus Switchboard's own (`switchboard.*`: cost, tag,
sub-account, cache status, the fallback chain).

Prompt and completion bodies never go into spans. Only built when tracing is on
(libs/runtime/tracing.py); the dispatcher asks `enabled` first.
"""

import contextlib
from collections.abc import Iterator

import msgspec
import structlog
from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from libs.contracts.bus.inference import DispatchMeta, InferenceRequest
from libs.runtime.tracing import Tracing
from services.router.catalog import Route
from services.router.replies import LocalMessage

# gen_ai.provider.name's well-known values, for the providers we know by another slug.
_PROVIDER_NAMES = {"google": "gcp.gemini", "mistral": "mistral_ai", "xai": "x_ai", "fireworks": "fireworks_ai"}
# gen_ai.operation.name for our operations; the others keep their own name.
_OPERATION_NAMES = {"chat": "chat", "embeddings": "embeddings", "images": "image_generation"}


class _Choice(msgspec.Struct):
    finish_reason: str | None = None


class _Answer(msgspec.Struct):
    """The parts of an OpenAI-shaped answer a span records (never its content)."""

    id: str | None = None
    model: str | None = None
    choices: list[_Choice] = []


_decode_answer = msgspec.json.Decoder(_Answer).decode


class RouterSpans:
    def __init__(self, tracing: Tracing) -> None:
        self.enabled = tracing.enabled
        self._tracing = tracing
        self._calls: dict[str, Span] = {}  # request id -> its provider call, open until metered
        self._chains: dict[str, list[str]] = {}  # request id -> deployments tried, in order

    @contextlib.contextmanager
    def consuming(self, msg: Msg | LocalMessage, request: InferenceRequest) -> Iterator[Span]:
        """The message's CONSUMER span, current while the request is dispatched."""
        span = self._tracing.consumer_span(msg.subject, msg.headers, request.traceparent)
        context = span.get_span_context()
        structlog.contextvars.bind_contextvars(trace_id=format(context.trace_id, "032x"),
                                              span_id=format(context.span_id, "016x"))
        try:
            with trace.use_span(span, end_on_exit=False):
                yield span
        finally:
            chain = self._chains.pop(request.request_id, None)
            if chain and len(chain) > 1:
                span.set_attribute("switchboard.fallback_chain", chain)
            leftover = self._calls.pop(request.request_id, None)
            if leftover is not None:
                leftover.end()
            span.end()

    def start_call(self, request: InferenceRequest, route: Route, stream: bool) -> Span:
        operation = _OPERATION_NAMES.get(request.operation, request.operation)
        attributes: dict[str, str | bool] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": _PROVIDER_NAMES.get(route.provider, route.provider),
            "gen_ai.request.model": route.upstream_model,
            "gen_ai.request.stream": stream,
            "switchboard.requested_model": request.model,
            "switchboard.deployment": route.key,
        }
        if request.tag:
            attributes["switchboard.tag"] = request.tag
        if request.principal.subaccount_id:
            attributes["switchboard.sub_account"] = request.principal.subaccount_id
        self._chains.setdefault(request.request_id, []).append(route.key)
        return self._tracing.tracer.start_span(f"{operation} {route.upstream_model}", kind=SpanKind.CLIENT,
                                               attributes=attributes)

    def failed_attempt(self, span: Span, kind: str, status: int | None) -> None:
        span.set_attribute("error.type", str(status) if status else kind)
        span.set_status(Status(StatusCode.ERROR, kind))
        span.end()

    def answered(self, request: InferenceRequest, span: Span, body: bytes | None, content_type: str) -> None:
        """The attempt that answered: open until the request is metered (a stream: until its end)."""
        if body is not None and content_type.startswith("application/json"):
            try:
                answer = _decode_answer(body)
            except msgspec.DecodeError:
                answer = None
            if answer is not None:
                if answer.id:
                    span.set_attribute("gen_ai.response.id", answer.id)
                if answer.model:
                    span.set_attribute("gen_ai.response.model", answer.model)
                reasons = [c.finish_reason for c in answer.choices if c.finish_reason]
                if reasons:
                    span.set_attribute("gen_ai.response.finish_reasons", reasons)
        self._calls[request.request_id] = span

    def metered(self, request: InferenceRequest, meta: DispatchMeta, status: int, error_type: str | None,
                cache_hit: bool) -> None:
        """Usage, cost and outcome onto the request's provider call (a cache hit gets a span of its own)."""
        span = self._calls.pop(request.request_id, None)
        if span is None:
            if not cache_hit:
                return
            span = self._tracing.tracer.start_span(f"cache {request.model}", kind=SpanKind.INTERNAL)
        if meta.usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", meta.usage.input_units)
            span.set_attribute("gen_ai.usage.output_tokens", meta.usage.output_units)
        if meta.cost is not None:
            span.set_attribute("switchboard.cost_micros", meta.cost.total_micros)
        if meta.cache_status:
            span.set_attribute("switchboard.cache_status", meta.cache_status)
        if status >= 400:
            span.set_attribute("error.type", error_type or str(status))
            span.set_status(Status(StatusCode.ERROR, error_type or str(status)))
        span.end()
