"""The discovery endpoints (AI Stats Gateway's platform API): GET /v1/gateway/models (one model
catalogue per surface), GET /v1/providers (providers, their models and health) and GET /v1/health
(the whole gateway's readiness), all built from what the router and the bus already answer."""

import asyncio
import time

import msgspec
import nats.errors
from aiohttp import web
from nats.aio.client import Client

from libs.contracts import errors, subjects
from libs.contracts.bus import catalog as catalog_bus
from libs.contracts.bus.health import DeploymentHealth, ProvidersHealth
from libs.contracts.http.discovery import (
    SURFACE_NAMES,
    SURFACES,
    Component,
    ComponentHealth,
    GatewayHealth,
    GatewayModels,
    ProviderHealth,
    ProviderList,
    ProviderStatus,
    ProviderView,
    Surface,
    SurfaceCatalog,
)
from libs.contracts.http.models import ModelCard, ModelList
from services.edge.errors import GatewayError
from services.edge.relay import request_reply
from services.edge.state import EDGE, EdgeState
from services.edge.stream_inbox import no_responders

_BUS_TIMEOUT_S = 5.0
_CHECK_TIMEOUT_S = 1.0
# However often /v1/health is called, an edge asks the services at most once per this long.
_PROBE_TTL_S = 1.0
# Each service answers an empty request on its subject at once (an "undecodable" 400 from
# its decoder, or the router's health), so any answer shows a replica is subscribed and serving.
_PINGS: tuple[tuple[Component, str], ...] = (
    ("router", subjects.HEALTH_PROVIDERS),
    ("ledger", subjects.LEDGER_GENERATION),
    ("jobs", subjects.JOBS_API),
    ("webhooks", subjects.WEBHOOKS_API),
)
_encode = msgspec.json.Encoder().encode
_decode_models = msgspec.json.Decoder(ModelList).decode
_decode_health = msgspec.json.Decoder(ProvidersHealth).decode


def _json(body: msgspec.Struct) -> web.Response:
    return web.Response(body=_encode(body), content_type="application/json")


def requested_surfaces(values: list[str]) -> list[Surface]:
    """`?endpoints=chat,images` (or repeated): the surfaces in the order asked, each once; all by default."""
    if not values:
        return list(SURFACES)
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in SURFACE_NAMES]
    if unknown or not names:
        shown = ", ".join(repr(name[:40]) for name in unknown[:3]) or "nothing"
        raise GatewayError(400, errors.INVALID_REQUEST,
                           f"'endpoints' names {shown}; use a comma-separated list of {', '.join(SURFACE_NAMES)}.",
                           param="endpoints")
    by_name = {surface.name: surface for surface in SURFACES}
    return [by_name[name] for name in dict.fromkeys(names)]


async def _catalog(state: EdgeState) -> ModelList:
    reply = await request_reply(state.nc, subjects.CATALOG_LIST, catalog_bus.encode(catalog_bus.ModelsQuery()),
                                _BUS_TIMEOUT_S, local=state.router)
    return _decode_models(reply.body)


async def gateway_models(request: web.Request) -> web.StreamResponse:
    state: EdgeState = request.app[EDGE]
    state.keys.check(request.headers)
    surfaces = requested_surfaces(request.query.getall("endpoints", []))
    cards = (await _catalog(state)).data
    return _json(GatewayModels(data=[
        SurfaceCatalog(endpoint=surface.name, paths=list(surface.paths),
                       models=[card for card in cards if card.modality in surface.modalities])
        for surface in surfaces]))


def _status(deployments: list[DeploymentHealth]) -> ProviderStatus:
    reporting = [d for d in deployments if d.requests or d.state != "closed"]
    if not reporting:
        return "unknown"
    if all(d.state == "open" for d in reporting):
        return "down"
    return "degraded" if any(d.state != "closed" for d in reporting) else "healthy"


def provider_view(provider: str, cards: list[ModelCard], deployments: list[DeploymentHealth]) -> ProviderView:
    requests = sum(d.requests for d in deployments)
    failures = sum(d.failures for d in deployments)
    return ProviderView(
        id=provider, models=[card.id for card in cards], modalities=sorted({card.modality for card in cards}),
        health=ProviderHealth(status=_status(deployments), requests=requests, failures=failures,
                              success_rate=round((requests - failures) / requests, 4) if requests else None,
                              deployments=deployments))


async def providers(request: web.Request) -> web.StreamResponse:
    state: EdgeState = request.app[EDGE]
    state.keys.check(request.headers)
    cards = (await _catalog(state)).data
    health = _decode_health((await request_reply(state.nc, subjects.HEALTH_PROVIDERS, b"", _BUS_TIMEOUT_S,
                                                 local=state.router)).body)
    # A provider configured with no catalog model of its own (a deployment of another's model)
    # shows up once it has served traffic.
    names = sorted({card.provider for card in cards} | {d.provider for d in health.data})
    return _json(ProviderList(data=[
        provider_view(name, [c for c in cards if c.provider == name], [d for d in health.data if d.provider == name])
        for name in names]))


async def _ping(nc: Client, name: Component, subject: str) -> ComponentHealth:
    if not nc.is_connected:
        return ComponentHealth(name=name, ok=False, detail="the edge is not connected to NATS")
    started = time.perf_counter()
    try:
        msg = await nc.request(subject, b"", timeout=_CHECK_TIMEOUT_S)
    except nats.errors.NoRespondersError:
        return ComponentHealth(name=name, ok=False, detail="no replica is running")
    except nats.errors.TimeoutError:
        return ComponentHealth(name=name, ok=False, detail=f"no answer within {_CHECK_TIMEOUT_S:g}s")
    except (nats.errors.Error, RuntimeError) as exc:  # RuntimeError: nats-py on uvloop as its server dies
        return ComponentHealth(name=name, ok=False, detail=f"the message bus failed: {type(exc).__name__}")
    if no_responders(msg):
        return ComponentHealth(name=name, ok=False, detail="no replica is running")
    return ComponentHealth(name=name, ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))


async def probe(state: EdgeState) -> GatewayHealth:
    local = [
        ComponentHealth(name="nats", ok=state.nc.is_connected,
                        detail=None if state.nc.is_connected else "the edge is not connected to NATS"),
        ComponentHealth(name="key_mirror", ok=state.keys.synced,
                        detail=None if state.keys.synced else "API keys are not loaded yet"),
    ]
    remote = await asyncio.gather(*(_ping(state.nc, name, subject) for name, subject in _PINGS))
    components = [*local, *remote]
    return GatewayHealth(status="ok" if all(c.ok for c in components) else "degraded", components=components,
                         checked_at=round(time.time(), 3))


class HealthProbe:
    """The last probe of this edge, shared by the callers of the next _PROBE_TTL_S: /v1/health takes
    no key, so its cost to the bus must not grow with how often it is called."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._last: GatewayHealth | None = None
        self._at = 0.0

    async def current(self, state: EdgeState) -> GatewayHealth:
        async with self._lock:
            if self._last is None or time.monotonic() - self._at >= _PROBE_TTL_S:
                self._last = await probe(state)
                self._at = time.monotonic()
            return self._last


HEALTH_PROBE = web.AppKey("health_probe", HealthProbe)


async def gateway_health(request: web.Request) -> web.StreamResponse:
    """No key needed: monitors call it without one, and it must still answer when keys cannot be
    checked (NATS down, the key mirror not loaded). It tells components' up or down, no tenant data."""
    return _json(await request.app[HEALTH_PROBE].current(request.app[EDGE]))


def add_routes(app: web.Application) -> None:
    app[HEALTH_PROBE] = HealthProbe()
    app.router.add_get("/v1/gateway/models", gateway_models)
    app.router.add_get("/v1/providers", providers)
    app.router.add_get("/v1/health", gateway_health)
