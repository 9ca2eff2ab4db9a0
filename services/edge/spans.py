"""The edge's spans: one SERVER span per HTTP request (continuing an incoming W3C
`traceparent`), current while it is served, so what the edge sends on NATS carries it
(inference.send: a PRODUCER span and the message headers; job records: its traceparent).

The middleware is installed only when tracing is on (libs/runtime/tracing.py): off, no
request pays for it.
"""

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from libs.runtime.tracing import Tracing
from services.edge.errors import GatewayError
from services.edge.state import EDGE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"  # never the raw path: unbounded


def tracing_middleware(tracing: Tracing) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = _route_of(request)
        span = tracing.tracer.start_span(
            f"{request.method} {route}", context=Tracing.extract(request.headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route, "url.path": request.path})
        context = span.get_span_context()
        structlog.contextvars.bind_contextvars(trace_id=format(context.trace_id, "032x"),
                                              span_id=format(context.span_id, "016x"))
        status = 500
        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
            try:
                response = await handler(request)
                status = response.status
                return response
            except (GatewayError, web.HTTPException) as exc:
                status = exc.status
                raise
            finally:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))

    return middleware


def traceparent_for(request: web.Request) -> str | None:
    """The traceparent a record made by this request carries (a job continues the trace): this
    request's span when tracing is on, else what the client sent."""
    if request.app[EDGE].tracing.enabled:
        return Tracing.traceparent_of(trace.get_current_span())
    return request.headers.get("traceparent")
