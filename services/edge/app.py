"""The edge's aiohttp application: routes, startup (NATS, key mirror) and shutdown."""

import asyncio
import secrets
import time

import structlog
from aiohttp import web

from libs.contracts import subjects
from libs.contracts.in_process import InProcessRouter
from libs.runtime.blobs import BlobStore
from libs.runtime.health import readiness_response
from libs.runtime.nats_conn import connect_nats, shutdown_nats
from libs.runtime.tracing import Tracing
from services.edge import (
    admin,
    async_jobs,
    batches_api,
    dashboard,
    discovery,
    files,
    inference,
    jobs_api,
    mcp,
    metrics,
    modalities,
    router_queries,
    surfaces,
    tail,
    usage,
    webhooks_api,
)
from services.edge.auth import KeyStore
from services.edge.errors import MAX_BODY, REQUEST_IDS, RequestIds, error_middleware
from services.edge.idempotency import IDEMPOTENCY, Idempotency
from services.edge.openapi import handlers as api_description
from services.edge.prices import Prices
from services.edge.ratelimit import RateLimiter
from services.edge.settings import EdgeSettings
from services.edge.spans import tracing_middleware
from services.edge.spend_caps import SpendCaps
from services.edge.spend_leases import SpendLeases, new_edge_id
from services.edge.state import EDGE, EdgeState
from services.edge.stream_inbox import StreamInboxes
from services.edge.tenancy import Tenancy

log = structlog.get_logger()
_BODY_HEADROOM = 64 * 1024  # bus message envelope around the client's body
_PRICES_WAIT_S = 5.0


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    state = request.app[EDGE]
    return readiness_response(state.nc.is_connected and state.keys.synced
                              and (state.router is None or state.router.ready))


@web.middleware
async def access_log_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    response = await handler(request)
    log.info("request", method=request.method, path=request.path, status=response.status,
             model=response.headers.get("X-Model"), ms=round((time.perf_counter() - started) * 1000, 2))
    return response


async def build_app(settings: EdgeSettings, router: InProcessRouter | None = None) -> web.Application:
    """`router`: a router in this process for the inference requests (services/node/), else NATS."""
    keys = KeyStore()
    tenancy = Tenancy()

    async def resync() -> None:
        await keys.mirror.resync()
        await tenancy.resync()

    nc = await connect_nats(settings.nats_url, "switchboard-edge", on_reconnect=resync)
    await keys.start(nc.jetstream())
    await tenancy.start(nc.jetstream())
    limiter = RateLimiter(nc, replica_id=secrets.token_hex(8))
    await limiter.start()
    if settings.admin_key:
        await keys.ensure_admin(settings.admin_key)
    blobs = BlobStore(nc.jetstream(), subjects.OBJ_FILES)
    await blobs.start()
    idempotency = Idempotency()
    await idempotency.start(nc.jetstream())
    prices = Prices(nc)
    await prices.start()
    try:  # the router answers in milliseconds when it is up; an edge started first estimates unknown models at 0
        await asyncio.wait_for(prices.loaded.wait(), _PRICES_WAIT_S)
    except TimeoutError:
        log.warning("edge_prices_not_loaded")
    leases = SpendLeases(nc, new_edge_id()) if settings.spend_leases else None
    if leases is not None:
        await leases.start()
    spend = SpendCaps(leases, prices, tenancy, settings.reserve_output_tokens)
    # A body must fit in one bus message along with its envelope.
    max_body = min(settings.max_body_bytes, nc.max_payload - _BODY_HEADROOM)
    middlewares = [access_log_middleware, error_middleware] if settings.access_log else [error_middleware]
    tracing = Tracing("edge")
    if tracing.enabled:  # inside error_middleware: the span sees the status of a GatewayError
        middlewares.append(tracing_middleware(tracing))
    app = web.Application(client_max_size=max_body, middlewares=middlewares)
    streams = StreamInboxes(nc)
    await streams.start()
    app[EDGE] = EdgeState(settings, nc, keys, tenancy, limiter, blobs, idempotency, spend, streams, tracing, router)
    app[IDEMPOTENCY] = idempotency
    app[MAX_BODY] = max_body
    app[REQUEST_IDS] = RequestIds()
    app.router.add_post("/v1/chat/completions", inference.chat_completions)
    app.router.add_post("/v1/embeddings", inference.embeddings)
    app.router.add_post("/v1/messages", surfaces.messages)
    app.router.add_post("/v1/responses", surfaces.responses)
    modalities.add_routes(app)
    app.router.add_get("/v1/models", router_queries.list_models)
    app.router.add_get("/v1/models/{model_id:.+}", router_queries.get_model)
    app.router.add_get("/v1/health/providers", router_queries.provider_health)
    app.router.add_delete("/v1/cache", router_queries.purge_cache)
    app.router.add_get("/v1/generations", usage.generation)
    app.router.add_get("/v1/usage/by-tag", usage.usage_by_tag)
    app.router.add_get("/v1/usage/by-sub-account", usage.usage_by_sub_account)
    app.router.add_get("/v1/usage", usage.usage_report)
    app.router.add_get("/v1/usage/recent", usage.recent_requests)
    app.router.add_get("/v1/sub-accounts/{id}/usage", usage.sub_account_usage)
    admin.add_routes(app)
    jobs_api.add_routes(app)
    async_jobs.add_routes(app)
    files.add_routes(app)
    batches_api.add_routes(app)
    webhooks_api.add_routes(app)
    dashboard.add_routes(app)
    discovery.add_routes(app)
    tail.add_routes(app)
    metrics.add_routes(app)
    mcp.add_routes(app)
    api_description.add_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    async def shutdown(app: web.Application) -> None:
        if leases is not None:
            await leases.stop()  # before NATS goes: the other edges get the unspent slices at once
        await prices.stop()
        await limiter.stop()
        await keys.mirror.stop()
        await tenancy.stop()
        await streams.stop()
        await shutdown_nats(nc)
        tracing.shutdown()

    app.on_cleanup.append(shutdown)
    log.info("edge_ready", url=f"http://{settings.host}:{settings.port}/v1", max_body_bytes=max_body)
    return app
