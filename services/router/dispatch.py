"""One inference request, start to finish: resolve the model, call the
provider, answer the edge (one Reply, or a stream of chunks)."""

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
from libs.runtime.logs import trace_id_of
from services.router.catalog import Catalog, RouteError
from services.router.failures import failure, from_upstream
from services.router.providers.base import ProviderAdapter, UpstreamError

log = structlog.get_logger()


class Dispatcher:
    def __init__(self, nc: Client, catalog: Catalog, providers: dict[str, ProviderAdapter]) -> None:
        self._nc = nc
        self._catalog = catalog
        self._providers = providers

    async def handle(self, msg: Msg) -> None:
        if not msg.reply:
            return  # nobody to answer; the edge always sets a reply subject
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
                400, errors.INVALID_REQUEST,
                f"Model '{request.model}' does not support {request.operation}."))
            return
        meta = DispatchMeta(model=route.slug, provider=route.provider)
        log.debug("dispatch", model=route.slug, provider=route.provider, stream=request.stream)
        if request.stream:
            await self._stream(msg.reply, request, adapter, route.upstream_model, meta)
        else:
            await self._complete(msg.reply, request, adapter, route.upstream_model, meta)

    async def _complete(self, reply_to: str, request: InferenceRequest, adapter: ProviderAdapter,
                        upstream_model: str, meta: DispatchMeta) -> None:
        started = time.perf_counter()
        try:
            result = await adapter.complete(request.operation, upstream_model, request.body)
        except UpstreamError as exc:
            meta.upstream_latency_ms = (time.perf_counter() - started) * 1000
            log.warning("upstream_failed", provider=adapter.slug, kind=exc.kind, status=exc.status,
                        error=exc.message)
            await self._send(reply_to, from_upstream(exc, adapter.slug, meta))
            return
        meta.upstream_latency_ms = result.latency_ms
        meta.usage = result.usage
        await self._send(reply_to, Reply(result.status, result.body, meta, result.content_type))

    async def _stream(self, reply_to: str, request: InferenceRequest, adapter: ProviderAdapter,
                      upstream_model: str, meta: DispatchMeta) -> None:
        started = time.perf_counter()
        try:
            stream = await adapter.open_stream(request.operation, upstream_model, request.body)
        except UpstreamError as exc:
            meta.upstream_latency_ms = (time.perf_counter() - started) * 1000
            log.warning("upstream_failed", provider=adapter.slug, kind=exc.kind, status=exc.status,
                        error=exc.message)
            await self._send(reply_to, from_upstream(exc, adapter.slug, meta))
            return
        meta.upstream_latency_ms = stream.ttfb_ms
        await self._send(reply_to, StreamStart(meta))
        try:
            async for events in stream:
                await self._nc.publish(reply_to, encode(StreamChunk(events)))
        except UpstreamError as exc:
            log.warning("upstream_stream_failed", provider=adapter.slug, kind=exc.kind, error=exc.message)
            await self._send(reply_to, from_upstream(exc, adapter.slug, meta))
            return
        finally:
            await stream.aclose()
        meta.upstream_latency_ms = (time.perf_counter() - started) * 1000
        meta.usage = stream.usage
        await self._send(reply_to, StreamEnd(meta))

    async def _send(self, reply_to: str, message: Reply | StreamStart | StreamEnd | Failure) -> None:
        payload = encode(message)
        if len(payload) > self._nc.max_payload:
            message = failure(502, errors.PROVIDER_ERROR,
                              f"The provider's answer ({len(payload)} bytes) exceeds the bus's "
                              f"max_payload ({self._nc.max_payload}); raise it on the NATS server.")
            payload = encode(message)
        await self._nc.publish(reply_to, payload)
