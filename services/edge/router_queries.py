"""Edge routes answered by the router: the model catalog, provider health (by the router in this
process when the edge hosts one, else over NATS), and the response cache purge (over NATS)."""

import msgspec
import nats.errors
from aiohttp import web

from libs.contracts import errors, subjects
from libs.contracts.bus import cache as cache_bus
from libs.contracts.bus import catalog as catalog_bus
from libs.contracts.bus.inference import Failure
from libs.contracts.http.lists import CachePurged
from libs.contracts.keys import SCOPE_ADMIN
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.relay import reply_response, request_reply
from services.edge.state import EDGE, EdgeState

_CATALOG_TIMEOUT_S = 5.0
_MODALITIES = frozenset({"text", "image", "audio-stt", "audio-tts", "video", "music", "3d", "embedding", "rerank",
                         "moderation"})


async def list_models(request: web.Request) -> web.StreamResponse:
    state: EdgeState = request.app[EDGE]
    state.keys.check(request.headers)
    modality = request.query.get("modality")
    if modality is not None and modality not in _MODALITIES:
        raise GatewayError(400, errors.INVALID_REQUEST,
                           f"Unknown modality '{modality}'; use one of {', '.join(sorted(_MODALITIES))}.",
                           param="modality")
    query = catalog_bus.ModelsQuery(provider=request.query.get("provider"), modality=modality)
    reply = await request_reply(state.nc, subjects.CATALOG_LIST, catalog_bus.encode(query), _CATALOG_TIMEOUT_S,
                                local=state.router)
    return reply_response(reply, request[REQUEST_ID])


async def get_model(request: web.Request) -> web.StreamResponse:
    state: EdgeState = request.app[EDGE]
    state.keys.check(request.headers)
    query = catalog_bus.ModelsQuery(model_id=request.match_info["model_id"])
    reply = await request_reply(state.nc, subjects.CATALOG_GET, catalog_bus.encode(query), _CATALOG_TIMEOUT_S,
                                local=state.router)
    return reply_response(reply, request[REQUEST_ID])


async def provider_health(request: web.Request) -> web.StreamResponse:
    """Breaker state, success rate and latency per deployment, merged over router replicas."""
    state: EdgeState = request.app[EDGE]
    state.keys.check(request.headers)
    reply = await request_reply(state.nc, subjects.HEALTH_PROVIDERS, b"", _CATALOG_TIMEOUT_S, local=state.router)
    return reply_response(reply, request[REQUEST_ID])


async def purge_cache(request: web.Request) -> web.StreamResponse:
    """DELETE /v1/cache: drop every cached answer of the caller's account."""
    state: EdgeState = request.app[EDGE]
    principal = state.keys.check(request.headers, SCOPE_ADMIN).principal
    try:
        msg = await state.nc.request(subjects.CACHE_PURGE, cache_bus.encode(cache_bus.PurgeRequest(
            principal.account_id)), timeout=_CATALOG_TIMEOUT_S)
        answer = cache_bus.decode_purge_reply(msg.data)
    except (nats.errors.Error, msgspec.DecodeError) as exc:
        raise GatewayError(503, errors.UNAVAILABLE, "The cache could not be purged; retry shortly.") from exc
    if isinstance(answer, Failure):
        raise GatewayError(answer.error.code, answer.error.type, answer.error.message)
    return web.json_response(body=msgspec.json.encode(CachePurged(deleted=answer.deleted)))
