"""One inference request, start to finish: resolve the model, call the
provider, answer the edge (one Reply, or a stream of chunks), then meter it."""

import time

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from libs.contracts import errors
from libs.contracts.bus.inference import (
    DispatchMeta,
    Failure,
    InferenceRequest,
    Reply,
    StreamChunk,
    StreamEnd,
    StreamStart,
    decode_request,
    encode,
)
from libs.contracts.bus.usage import UsageEvent
from libs.runtime.logs import trace_id_of
from services.router.catalog import Catalog, Route, RouteError
from services.router.failures import failure, from_upstream
from services.router.pricing import Pricing
from services.router.providers.base import ProviderAdapter, UpstreamError
from services.router.response_meta import build_meta, stream_tail, with_meta
from services.router.usage_publisher import UsagePublisher

log = structlog.get_logger()


class Dispatcher:
    def __init__(self, nc: Client, catalog: Catalog, providers: dict[str, ProviderAdapter], pricing: Pricing,
                 usage: UsagePublisher | None) -> None:
        self._nc = nc
        self._catalog = catalog
        self._providers = providers
        self._pricing = pricing
        self._usage = usage

    async def handle(self, msg: Msg) -> None:
        if not msg.reply:
            return  # nobody to answer; the edge always sets a reply subject
        received = time.perf_counter()
        try:
            request = decode_request(msg.data)
        except msgspec.DecodeError:
            await self._send(msg.reply, failure(400, errors.INVALID_REQUEST, "undecodable bus message"))
            return
        structlog.contextvars.bind_contextvars(request_id=request.request_id,
                                              trace_id=trace_id_of(request.traceparent))
        try:
            route = self._catalog.resolve(request.model)
        except RouteError as exc:
            await self._send(msg.reply, failure(exc.status, exc.type, exc.message))
            return
        adapter = self._providers[route.provider]
        if request.operation not in adapter.operations:
            await self._send(msg.reply, failure(
                400, errors.INVALID_REQUEST, f"Model '{request.model}' does not support {request.operation}."))
            return
        log.debug("dispatch", model=route.slug, provider=route.provider, stream=request.stream)
        if request.stream:
            await self._stream(msg.reply, request, adapter, route, received)
        else:
            await self._complete(msg.reply, request, adapter, route, received)

    async def _complete(self, reply_to: str, request: InferenceRequest, adapter: ProviderAdapter, route: Route,
                        received: float) -> None:
        meta = DispatchMeta(model=route.slug, provider=route.provider)
        started = time.perf_counter()
        try:
            result = await adapter.complete(request.operation, route.upstream_model, request.body)
        except UpstreamError as exc:
            meta.upstream_latency_ms = (time.perf_counter() - started) * 1000
            await self._fail(reply_to, request, route, meta, exc, received)
            return
        meta.upstream_latency_ms = result.latency_ms
        meta.usage = result.usage
        meta.cost = self._pricing.cost(route.price, result.usage, succeeded=True)
        total_ms = (time.perf_counter() - received) * 1000
        body = with_meta(result.body, build_meta(request.request_id, meta, total_ms, result.latency_ms))
        await self._send(reply_to, Reply(result.status, body, meta, result.content_type))
        self._meter(request, route, meta, result.status, None, total_ms)

    async def _stream(self, reply_to: str, request: InferenceRequest, adapter: ProviderAdapter, route: Route,
                      received: float) -> None:
        meta = DispatchMeta(model=route.slug, provider=route.provider)
        started = time.perf_counter()
        try:
            stream = await adapter.open_stream(request.operation, route.upstream_model, request.body)
        except UpstreamError as exc:
            meta.upstream_latency_ms = (time.perf_counter() - started) * 1000
            await self._fail(reply_to, request, route, meta, exc, received)
            return
        meta.upstream_latency_ms = stream.ttfb_ms
        await self._send(reply_to, StreamStart(meta))
        try:
            async for events in stream:
                await self._nc.publish(reply_to, encode(StreamChunk(events)))
        except UpstreamError as exc:
            await self._fail(reply_to, request, route, meta, exc, received)
            return
        finally:
            await stream.aclose()
        finished = time.perf_counter()
        meta.upstream_latency_ms = (finished - started) * 1000
        meta.usage = stream.usage
        meta.cost = self._pricing.cost(route.price, stream.usage, succeeded=True)
        total_ms = (finished - received) * 1000
        generation_ms = meta.upstream_latency_ms - stream.ttfb_ms
        tail = stream_tail(stream.usage_chunk, build_meta(request.request_id, meta, total_ms, generation_ms),
                           request.include_usage)
        await self._nc.publish(reply_to, encode(StreamChunk(tail)))
        await self._send(reply_to, StreamEnd(meta))
        self._meter(request, route, meta, 200, None, total_ms)

    async def _fail(self, reply_to: str, request: InferenceRequest, route: Route, meta: DispatchMeta,
                    exc: UpstreamError, received: float) -> None:
        log.warning("upstream_failed", provider=route.provider, kind=exc.kind, status=exc.status, error=exc.message)
        answer = from_upstream(exc, route.provider, meta)
        meta.cost = self._pricing.cost(route.price, None, succeeded=False)
        await self._send(reply_to, answer)
        self._meter(request, route, meta, answer.error.code, answer.error.type,
                    (time.perf_counter() - received) * 1000)

    def _meter(self, request: InferenceRequest, route: Route, meta: DispatchMeta, status: int,
               error_type: str | None, total_ms: float) -> None:
        if self._usage is None:
            return
        usage, cost = meta.usage, meta.cost
        principal = request.principal
        self._usage.submit(UsageEvent(
            request_id=request.request_id, ts_ms=time.time_ns() // 1_000_000,
            account_id=principal.account_id, key_id=principal.key_id, subaccount_id=principal.subaccount_id,
            tag=request.tag, operation=request.operation, requested_model=request.model, model=route.slug,
            provider=route.provider, status=status, error_type=error_type, stream=request.stream,
            priced=route.price is not None,
            input_units=usage.input_units if usage else 0, output_units=usage.output_units if usage else 0,
            cached_units=usage.cached_units if usage else 0,
            input_cost_micros=cost.input_micros if cost else 0, output_cost_micros=cost.output_micros if cost else 0,
            cached_cost_micros=cost.cached_micros if cost else 0, markup_micros=cost.markup_micros if cost else 0,
            cost_micros=cost.total_micros if cost else 0,
            upstream_latency_ms=round(meta.upstream_latency_ms, 3), total_latency_ms=round(total_ms, 3),
        ))

    async def _send(self, reply_to: str, message: Reply | StreamStart | StreamEnd | Failure) -> None:
        payload = encode(message)
        if len(payload) > self._nc.max_payload:
            message = failure(502, errors.PROVIDER_ERROR,
                              f"The provider's answer ({len(payload)} bytes) exceeds the bus's "
                              f"max_payload ({self._nc.max_payload}); raise it on the NATS server.")
            payload = encode(message)
        await self._nc.publish(reply_to, payload)
