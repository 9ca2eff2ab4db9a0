"""The edge's metrics and GET /metrics on its (public) HTTP port.

Per request: a counter by route, method and status and a duration histogram by route and
method, from a middleware inside error_middleware (so a GatewayError's status is seen before
it becomes a response); the route is the pattern the request matched (`/v1/models/{model_id}`),
never the raw path, and an unmatched request counts under `unmatched`. The gateway's own
refusals (402 spend caps, 429 rate limits) are counted by the reason their GatewayError
carries. Open streams are the server-sent event responses begun (prepared) and not yet ended.

/metrics takes an admin-scope key, or `Authorization: Bearer $SWITCHBOARD_METRICS_TOKEN` when
that variable is set (a scraper then needs no API key).
"""

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import Gauge

from libs.contracts.keys import SCOPE_ADMIN
from libs.runtime.env import env_str
from libs.runtime.metrics import CONTENT_TYPE, LATENCY_BUCKETS, OTHER, Metrics
from libs.runtime.metrics_buffer import CounterTally, HistogramTally
from services.edge.errors import GatewayError
from services.edge.state import EDGE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PATH = "/metrics"
UNMATCHED = "unmatched"
TOKEN_ENV = "SWITCHBOARD_METRICS_TOKEN"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SSE = "text/event-stream"
# Where a request is, for the open-streams gauge: the response is prepared inside the handler
# only when it streams (a whole answer is prepared after the middleware returned).
_IN_HANDLER, _STREAMING = 1, 2
_PHASE = web.RequestKey("metrics_phase", int)


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


class EdgeMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__("edge")
        self._requests = self.counter("switchboard_edge_requests", "HTTP requests answered by the edge.",
                                      ("route", "method", "status"))
        self._duration = self.histogram("switchboard_edge_request_duration_seconds",
                                        "From the request reaching the edge's handlers to its answer's end "
                                        "(a stream: its last chunk).", ("route", "method"), LATENCY_BUCKETS)
        self._refusals = self.counter("switchboard_edge_refusals",
                                      "Requests the gateway itself refused: spend_cap (402: a sub-account's cap "
                                      "or the account's prepaid balance), reserved_in_flight (402: the rest of "
                                      "the budget is held by requests in flight), rate_limit (429: a "
                                      "sub-account's RPM/TPM).", ("reason", "status"))
        self._open_streams = self.gauge("switchboard_edge_open_streams",
                                        "Server-sent event streams open now (inference, tail, MCP).", ("route",),
                                        "livesum")
        self._children: dict[tuple[str, str, int], tuple[CounterTally, HistogramTally]] = {}
        self._open_by_route: dict[str, Gauge] = {}  # labels() costs more than the inc() itself

    def _open(self, route: str) -> Gauge:
        child = self._open_by_route.get(route)
        if child is None:
            child = self._open_by_route[route] = self._open_streams.labels(route)
        return child

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self._requests.labels(route, method, status),
                                              self._duration.labels(route, method))
        children[0].inc()
        children[1].observe(seconds)

    def refused(self, reason: str, status: int) -> None:
        self._refusals.labels(reason, status).inc()

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            request[_PHASE] = _IN_HANDLER
            status = 500  # what error_middleware answers for anything not caught below
            try:
                response = await handler(request)
                status = response.status
                return response
            except GatewayError as exc:
                status = exc.status
                if exc.refusal is not None:
                    self.refused(exc.refusal, exc.status)
                raise
            except web.HTTPException as exc:
                status = exc.status
                raise
            except (HttpProcessingError, RequestPayloadError):
                status = 400  # error_middleware's answer to a body that cannot be read
                raise
            except asyncio.CancelledError:
                status = 499  # the client went away
                raise
            finally:
                route = route_of(request)
                if request[_PHASE] == _STREAMING:
                    self._open(route).dec()
                request[_PHASE] = 0
                self.observe(route, request.method if request.method in _METHODS else OTHER, status,
                             time.perf_counter() - started)

        return metrics_middleware

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """A response starts: an event stream begun inside a handler is open until the handler returns."""
        if request.get(_PHASE) == _IN_HANDLER and response.content_type == _SSE:
            request[_PHASE] = _STREAMING
            self._open(route_of(request)).inc()


def _has_token(request: web.Request, token: str) -> bool:
    sent = request.headers.get("Authorization", "")
    # Bytes: compare_digest refuses non-ASCII str, and a header is the client's to fill.
    return hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), f"Bearer {token}".encode())


def add_routes(app: web.Application) -> None:
    """GET /metrics, and the middleware and signal that feed it; call before the app starts."""
    metrics = EdgeMetrics()
    token = env_str(TOKEN_ENV, "")

    async def scrape(request: web.Request) -> web.Response:
        if not (token and _has_token(request, token)):
            request.app[EDGE].keys.check(request.headers, SCOPE_ADMIN)
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def export(_: web.Application) -> AsyncIterator[None]:
        metrics.start_export()  # over OTLP when configured
        yield
        await metrics.stop()

    app.cleanup_ctx.append(export)
    app.middlewares.append(metrics.middleware())  # the innermost: inside error_middleware
    app.on_response_prepare.append(metrics.on_prepare)
    app.router.add_get(PATH, scrape)
