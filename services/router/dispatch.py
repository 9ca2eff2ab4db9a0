"""One inference request, start to finish: plan the deployments, call them
(retrying, failing over, respecting breakers), answer the edge (one Reply, or a
stream of chunks), then meter it."""

import asyncio
import random
import time
from collections.abc import Iterator

import msgspec
import structlog
from nats.aio.msg import Msg

from libs.contracts import errors
from libs.contracts.bus.cache import CACHE_STATUS_HIT, CACHE_STATUS_MISS
from libs.contracts.bus.inference import (
    FORM_OPERATIONS,
    OP_CHAT,
    DispatchMeta,
    Failure,
    InferenceRequest,
    Reply,
    StreamChunk,
    StreamEnd,
    StreamStart,
    Usage,
    decode_request,
    encode,
)
from libs.contracts.bus.jobs import EVAL_ALIAS_PREFIX
from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import UsageEvent
from libs.contracts.http.chat import AUTO_MODEL
from libs.runtime.logs import trace_id_of
from services.router.audio_fetch import AudioFetcher, FetchError
from services.router.cache import (
    CachedAnswer,
    ResponseCache,
    StreamAssembler,
    cache_key,
    cacheable,
    stream_from_cache,
    usage_chunk_from_cache,
)
from services.router.capabilities import admit
from services.router.catalog import Catalog, Route, RouteError
from services.router.eval_aliases import EvalAliases
from services.router.failures import failure, from_upstream
from services.router.health import HealthBook
from services.router.metrics import RouterMetrics
from services.router.pricing import Pricing
from services.router.providers.base import ProviderAdapter, UpstreamError, UpstreamResult, UpstreamStream
from services.router.replies import LocalMessage, Replies
from services.router.response_meta import build_meta, stream_tail, with_meta
from services.router.routing import RetryPolicy, candidates, retryable
from services.router.snapshots import StreamCapture, snapshot_of, wanted
from services.router.spans import RouterSpans
from services.router.surfaces import StreamConverter, Surface, SurfaceError, surface_for
from services.router.usage_publisher import UsagePublisher
from services.router.utilities import AUTO_MODALITY, Utility, UtilityError, utility_for

log = structlog.get_logger()


class _Exhausted(Exception):
    """Every candidate failed (or none could serve the operation)."""

    def __init__(self, exc: UpstreamError | None, route: Route | None, latency_ms: float) -> None:
        super().__init__("no deployment succeeded")
        self.exc = exc
        self.route = route
        self.latency_ms = latency_ms


class Dispatcher:
    def __init__(self, replies: Replies, catalog: Catalog, providers: dict[str, ProviderAdapter], pricing: Pricing,
                 usage: UsagePublisher | None, health: HealthBook, policy: RetryPolicy,
                 cache: ResponseCache, aliases: EvalAliases, audio: AudioFetcher, spans: RouterSpans,
                 metrics: RouterMetrics) -> None:
        self._replies = replies
        self._spans = spans
        self._metrics = metrics
        self._catalog = catalog
        self._providers = providers
        self._pricing = pricing
        self._usage = usage
        self._health = health
        self._policy = policy
        self._cache = cache
        self._aliases = aliases
        self._audio = audio
        self._rng = random.Random()
        # reply inbox -> the task answering it, while cancel() may stop it: a stream from its first
        # attempt to its end, a whole answer until the provider has answered
        self._cancellable: dict[str, asyncio.Task[None]] = {}

    def cancel(self, reply_to: str) -> None:
        """The stream's client left, or its edge gave up on the request: stop calling or reading
        the provider (closing the upstream request)."""
        task = self._cancellable.get(reply_to)
        if task is not None:
            task.cancel()

    async def handle(self, msg: Msg | LocalMessage) -> None:
        if not msg.reply:
            return  # nobody to answer; the edge always sets a reply subject
        received = time.perf_counter()
        try:
            request = decode_request(msg.data)
        except msgspec.DecodeError:
            await self._send(msg.reply, failure(400, errors.INVALID_REQUEST, "undecodable bus message"))
            return
        if request.edge_received_ns:
            self._metrics.picked_up(request.edge_received_ns)
        structlog.contextvars.bind_contextvars(request_id=request.request_id,
                                              trace_id=trace_id_of(request.traceparent),
                                              account_id=request.principal.account_id,
                                              subaccount_id=request.principal.subaccount_id)
        if self._spans.enabled:
            with self._spans.consuming(msg, request):
                await self._dispatch(msg.reply, request, received)
        else:
            await self._dispatch(msg.reply, request, received)

    async def _dispatch(self, reply_to: str, request: InferenceRequest, received: float) -> None:
        try:
            surface = surface_for(request.operation, request.body) or utility_for(request.operation, request.body)
        except (SurfaceError, msgspec.DecodeError) as exc:
            await self._send(reply_to, failure(400, errors.INVALID_REQUEST, str(exc),
                                                param=getattr(exc, "param", None)))
            return
        asked = request.operation  # what the model must be able to serve (surfaces become chat below)
        if surface is not None:
            # A utility is a function of its input: cached under x-cache auto, like embeddings.
            cache = "force" if isinstance(surface, Utility) and request.cache == "auto" else request.cache
            request = msgspec.structs.replace(request, body=surface.chat_request, operation=OP_CHAT, cache=cache)
        try:
            model = request.model
            if model.startswith(EVAL_ALIAS_PREFIX):  # usage keeps the alias as the requested model
                model = self._aliases.resolve(model, request.principal)
            if model == AUTO_MODEL:
                evaluated = self._aliases.latest_quality(request.principal) if request.routing == "quality" else None
                plan = self._catalog.auto_plan(AUTO_MODALITY.get(request.operation, "text"), set(request.needs),
                                               request.routing or "auto", self._health.latency_ms,
                                               evaluated=evaluated)
            else:
                plan = self._catalog.plan(model)
            plan, fallbacks = admit(self._catalog, asked, plan, request.models)
        except RouteError as exc:
            await self._send(reply_to, failure(exc.status, exc.type, exc.message, param=exc.param))
            return
        if request.operation in FORM_OPERATIONS and request.content_type == "application/json":
            try:
                request = await self._audio.as_form(request)
            except FetchError as exc:
                await self._send(reply_to, failure(400, errors.INVALID_REQUEST, str(exc), param="audio_url"))
                return
        routes = candidates(self._catalog, plan, fallbacks, self._health, self._rng)
        try:
            key = self._cache_key(request) if surface is None or isinstance(surface, Utility) else None
            hit = await self._cache.get(key) if key is not None else None
            if hit is not None:
                await self._serve_hit(reply_to, request, hit, received, surface)
            elif request.stream:
                await self._stream(reply_to, request, routes, received, key, surface)
            else:
                await self._complete(reply_to, request, routes, received, key, surface)
        except _Exhausted as exhausted:
            await self._fail(reply_to, request, exhausted, received)
        except UtilityError as exc:  # a cached chat answer a utility cannot use
            await self._send(reply_to, failure(exc.status, exc.type, exc.message))
        except Exception:
            # A bug must cost one request a clean 500, not a client waiting out its timeout.
            log.exception("dispatch_failed")
            await self._send(reply_to, failure(500, errors.INTERNAL,
                                                f"Internal router error (request id {request.request_id})."))

    async def _attempts(self, request: InferenceRequest, routes: Iterator[Route], stream: bool
                        ) -> tuple[Route, UpstreamResult | UpstreamStream, float]:
        """The first deployment that answers; retries and failover in between."""
        last: UpstreamError | None = None
        last_route: Route | None = None
        latency_ms = 0.0
        for route in routes:
            adapter = self._providers.get(route.provider)
            if adapter is None or request.operation not in adapter.operations:
                continue
            attempt = 0
            log.debug("dispatch", deployment=route.key, stream=stream)
            while True:
                started = time.perf_counter()
                call = self._spans.start_call(request, route, stream) if self._spans.enabled else None
                try:
                    if stream:
                        answer: UpstreamResult | UpstreamStream = await adapter.open_stream(
                            request.operation, route.upstream_model, request.body)
                    else:
                        answer = await adapter.complete(request.operation, route.upstream_model, request.body,
                                                        request.content_type)
                except asyncio.CancelledError:
                    self._health.release(route.key)  # no verdict on the provider: its probe slot is free
                    raise
                except UpstreamError as exc:
                    latency_ms = (time.perf_counter() - started) * 1000
                    last, last_route = exc, route
                    self._metrics.upstream_error(route, exc)
                    if call is not None:
                        self._spans.failed_attempt(call, exc.kind, exc.status)
                    if not retryable(exc):
                        raise _Exhausted(exc, route, latency_ms) from exc
                    if exc.kind == "saturated":  # our own pool is full: the provider is not to blame
                        self._health.release(route.key)
                        log.warning("upstream_pool_saturated", deployment=route.key)
                        break  # next deployment, which may have room
                    self._health.record(route.key, False, latency_ms)
                    log.warning("upstream_failed", deployment=route.key, kind=exc.kind, status=exc.status,
                                attempt=attempt, error=exc.message)
                    delay = self._policy.delay(attempt, exc, self._rng)
                    if delay is None or not self._health.allow(route.key):
                        break  # next deployment
                    await asyncio.sleep(delay)
                    attempt += 1
                    continue
                latency_ms = (time.perf_counter() - started) * 1000
                if call is not None:
                    result = answer if isinstance(answer, UpstreamResult) else None
                    self._spans.answered(request, call, result.body if result else None,
                                         result.content_type if result else "")
                if not stream:  # a stream's outcome is known only at its end (see _stream)
                    self._health.record(route.key, True, latency_ms)
                return route, answer, latency_ms
        raise _Exhausted(last, last_route, latency_ms)

    async def _cancellable_attempts(self, reply_to: str, request: InferenceRequest, routes: Iterator[Route],
                                    stream: bool) -> tuple[Route, UpstreamResult | UpstreamStream, float] | None:
        """_attempts, which cancel(reply_to) stops: None then. The edge gave up before the answer
        (its deadline), so nothing reached the client and nothing is sent, generated or billed.
        A stream stays cancellable until it ends (the caller unregisters it)."""
        current = asyncio.current_task()
        if current is not None:
            self._cancellable[reply_to] = current
        try:
            attempted = await self._attempts(request, routes, stream)
        except asyncio.CancelledError:
            self._cancellable.pop(reply_to, None)
            log.info("cancelled_before_answer", stream=stream)
            return None
        except BaseException:
            self._cancellable.pop(reply_to, None)
            raise
        if not stream:
            self._cancellable.pop(reply_to, None)
        return attempted

    async def _complete(self, reply_to: str, request: InferenceRequest, routes: Iterator[Route],
                        received: float, key: str | None, surface: Surface | None) -> None:
        attempted = await self._cancellable_attempts(reply_to, request, routes, stream=False)
        if attempted is None:
            return
        route, answer, _ = attempted
        assert isinstance(answer, UpstreamResult)
        meta = DispatchMeta(model=route.slug, provider=route.provider, upstream_latency_ms=answer.latency_ms,
                            usage=answer.usage, cost=self._pricing.cost(route.price, answer.usage, succeeded=True,
                                                                    batch=request.batch),
                            cache_status=CACHE_STATUS_MISS if key is not None else None)
        total_ms = (time.perf_counter() - received) * 1000
        body = answer.body
        if answer.content_type.startswith("application/json"):  # never splice into audio or text
            body = with_meta(body, build_meta(request.request_id, meta, total_ms, answer.latency_ms))
        if surface is not None:
            try:
                body = surface.answer(body)
            except UtilityError as exc:  # the model did not answer as asked: not billed, not cached
                meta.cost = self._pricing.cost(route.price, None, succeeded=False)
                await self._send(reply_to, failure(exc.status, exc.type, exc.message, meta=meta))
                self._meter(request, route, meta, exc.status, exc.type, total_ms)
                return
        if key is not None and answer.status == 200:
            await self._cache.put(key, CachedAnswer(body=answer.body, content_type=answer.content_type,
                                                    model=route.slug, provider=route.provider, usage=answer.usage,
                                                    stored_at_ms=time.time_ns() // 1_000_000))
        await self._send(reply_to, Reply(answer.status, body, meta, answer.content_type))
        snapshot = snapshot_of(request, route.slug, answer.body) if wanted(request) and answer.status == 200 else None
        self._meter(request, route, meta, answer.status, None, total_ms, snapshot=snapshot)

    async def _stream(self, reply_to: str, request: InferenceRequest, routes: Iterator[Route],
                      received: float, key: str | None, surface: Surface | None) -> None:
        started = time.perf_counter()
        attempted = await self._cancellable_attempts(reply_to, request, routes, stream=True)
        if attempted is None:
            return
        route, stream, _ = attempted
        assert isinstance(stream, UpstreamStream)
        meta = DispatchMeta(model=route.slug, provider=route.provider, upstream_latency_ms=stream.ttfb_ms,
                            cache_status=CACHE_STATUS_MISS if key is not None else None)
        assembler = StreamAssembler() if key is not None else None
        capture = StreamCapture(len(request.body)) if wanted(request) else None
        converter = surface.stream() if surface is not None else None
        first_chunk = True
        try:
            await self._send(reply_to, StreamStart(meta))
            async for events in stream:
                if assembler is not None:
                    assembler.feed(events)
                if capture is not None:
                    capture.feed(events)
                if converter is not None:
                    events = converter.feed(events)
                await self._replies.publish(reply_to, encode(StreamChunk(events)))
                if first_chunk:
                    first_chunk = False
                    self._metrics.first_chunk(request, route, received)
        except UpstreamError as exc:
            # Bytes already went out: no failover now, the client gets an error event.
            self._metrics.upstream_error(route, exc)
            self._health.record(route.key, False, (time.perf_counter() - started) * 1000)
            await self._fail(reply_to, request, _Exhausted(exc, route, meta.upstream_latency_ms), received,
                             stream.usage, converter)
            return
        except asyncio.CancelledError:
            # Cancelled because the client left or the edge gave up (see cancel()): the provider's
            # partial usage is unknown, so the request is recorded as closed by the client (499),
            # at no charge.
            log.info("stream_cancelled", deployment=route.key)
            self._health.record(route.key, True, stream.ttfb_ms)  # the provider was fine so far
            meta.cost = self._pricing.cost(route.price, None, succeeded=False)
            self._meter(request, route, meta, 499, "client_closed", (time.perf_counter() - received) * 1000)
            return
        finally:
            self._cancellable.pop(reply_to, None)
            await stream.aclose()
        finished = time.perf_counter()
        self._health.record(route.key, True, stream.ttfb_ms)
        meta.upstream_latency_ms = (finished - started) * 1000
        meta.usage = stream.usage
        meta.cost = self._pricing.cost(route.price, stream.usage, succeeded=True, batch=request.batch)
        total_ms = (finished - received) * 1000
        generation_ms = meta.upstream_latency_ms - stream.ttfb_ms
        if converter is not None:
            tail = converter.finish(stream.usage)
        else:
            tail = stream_tail(stream.usage_chunk, build_meta(request.request_id, meta, total_ms, generation_ms),
                               request.include_usage)
        await self._replies.publish(reply_to, encode(StreamChunk(tail)))
        await self._send(reply_to, StreamEnd(meta))
        snapshot = (snapshot_of(request, route.slug, capture.body(), streamed=True, truncated=capture.truncated)
                    if capture is not None else None)
        self._meter(request, route, meta, 200, None, total_ms, snapshot=snapshot)
        whole = assembler.result(stream.usage) if assembler is not None else None
        if key is not None and whole is not None:
            await self._cache.put(key, CachedAnswer(body=whole, model=route.slug, provider=route.provider,
                                                    usage=stream.usage, stored_at_ms=time.time_ns() // 1_000_000))

    def _cache_key(self, request: InferenceRequest) -> str | None:
        """The cache entry this request may be answered from (and stored in), or None."""
        if not cacheable(request.cache, request.body, request.operation):  # type: ignore[arg-type]
            return None
        # A sub-account never sees another's answers; automatic routing depends on the policy.
        scope = f"{request.model}|{request.routing or ''}|{request.principal.subaccount_id or ''}"
        return cache_key(request.principal.account_id, request.operation, scope, request.body)

    async def _serve_hit(self, reply_to: str, request: InferenceRequest, hit: CachedAnswer, received: float,
                         surface: Surface | None = None) -> None:
        try:
            price = self._catalog.plan(hit.model).deployments[0].price
        except RouteError:
            price = None
        meta = DispatchMeta(model=hit.model, provider=hit.provider, usage=hit.usage,
                            cost=self._pricing.cost(price, hit.usage, succeeded=True, cache_hit=True,
                                                    batch=request.batch),
                            cache_status=CACHE_STATUS_HIT)
        total_ms = (time.perf_counter() - received) * 1000
        shown = build_meta(request.request_id, meta, total_ms, 0.0)
        if request.stream:
            await self._send(reply_to, StreamStart(meta))
            usage_chunk = usage_chunk_from_cache(hit.body, hit.usage) if hit.usage is not None else None
            events = stream_from_cache(hit.body) + stream_tail(usage_chunk, shown, request.include_usage)
            await self._replies.publish(reply_to, encode(StreamChunk(events)))
            await self._send(reply_to, StreamEnd(meta))
        else:
            body = with_meta(hit.body, shown) if hit.content_type.startswith("application/json") else hit.body
            await self._send(reply_to, Reply(200, surface.answer(body) if surface is not None else body, meta,
                                             hit.content_type))
        route = Route(hit.model, hit.provider, "", price)
        snapshot = snapshot_of(request, hit.model, hit.body) if wanted(request) else None
        self._meter(request, route, meta, 200, None, total_ms, cache_hit=True, snapshot=snapshot)

    async def _fail(self, reply_to: str, request: InferenceRequest, exhausted: _Exhausted, received: float,
                    usage: Usage | None = None, converter: StreamConverter | None = None) -> None:
        """The client's error; for a stream that broke off, `usage` is what it delivered and a
        surface's `converter` writes the surface's own error event (then the stream ends)."""
        route, exc = exhausted.route, exhausted.exc
        if route is None or exc is None:
            await self._send(reply_to, failure(
                400, errors.INVALID_REQUEST, f"Model '{request.model}' does not support {request.operation}."))
            return
        meta = DispatchMeta(model=route.slug, provider=route.provider, upstream_latency_ms=exhausted.latency_ms,
                            usage=usage, cost=self._pricing.cost(route.price, None, succeeded=False))
        answer = from_upstream(exc, route.provider, meta)
        if converter is None:
            await self._send(reply_to, answer)
        else:
            await self._replies.publish(reply_to, encode(StreamChunk(converter.fail(answer.error, usage))))
            await self._send(reply_to, StreamEnd(meta))
        self._meter(request, route, meta, answer.error.code, answer.error.type,
                    (time.perf_counter() - received) * 1000)

    def _meter(self, request: InferenceRequest, route: Route, meta: DispatchMeta, status: int,
               error_type: str | None, total_ms: float, cache_hit: bool = False,
               snapshot: Snapshot | None = None) -> None:
        self._metrics.request(request, route, meta, status, error_type, total_ms, cache_hit)
        if self._spans.enabled:
            self._spans.metered(request, meta, status, error_type, cache_hit)
        if self._usage is None:
            return
        usage, cost = meta.usage, meta.cost
        principal = request.principal
        self._usage.submit(UsageEvent(
            request_id=request.request_id, ts_ms=time.time_ns() // 1_000_000,
            account_id=principal.account_id, key_id=principal.key_id, subaccount_id=principal.subaccount_id,
            tag=request.tag, operation=request.operation, requested_model=request.model, model=route.slug,
            provider=route.provider, status=status, error_type=error_type, stream=request.stream,
            priced=route.price is not None, cache_hit=cache_hit,
            input_units=usage.input_units if usage else 0, output_units=usage.output_units if usage else 0,
            cached_units=usage.cached_units if usage else 0,
            input_cost_micros=cost.input_micros if cost else 0, output_cost_micros=cost.output_micros if cost else 0,
            cached_cost_micros=cost.cached_micros if cost else 0, markup_micros=cost.markup_micros if cost else 0,
            cost_micros=cost.total_micros if cost else 0,
            upstream_latency_ms=round(meta.upstream_latency_ms, 3), total_latency_ms=round(total_ms, 3),
        ), snapshot)

    async def _send(self, reply_to: str, message: Reply | StreamStart | StreamEnd | Failure) -> None:
        payload = encode(message)
        if len(payload) > self._replies.max_payload:
            message = failure(502, errors.PROVIDER_ERROR,
                              f"The provider's answer ({len(payload)} bytes) exceeds the bus's "
                              f"max_payload ({self._replies.max_payload}); raise it on the NATS server.")
            payload = encode(message)
        await self._replies.publish(reply_to, payload)
