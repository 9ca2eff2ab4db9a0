"""GET /openapi.json, /v1/openapi.json and /llms.txt (no key, like AIgateway's).

The document is built once per process, on the first request, and its bytes kept per
origin it is served from (a handful: the public URL, or the hosts clients use); llms.txt
reads the model catalog from the router at most every `_MODELS_TTL_S`. The other routes
pay nothing for any of this.
"""

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Final

import msgspec
from aiohttp import web

from libs.contracts import subjects
from libs.contracts.bus import catalog as catalog_bus
from libs.contracts.http.models import ModelList
from services.edge.errors import GatewayError
from services.edge.job_files import public_base
from services.edge.openapi import llms_txt
from services.edge.openapi.document import build_document, with_server
from services.edge.openapi.registry import ROUTES
from services.edge.openapi.served import log_differences
from services.edge.openapi.table import Route
from services.edge.relay import request_reply
from services.edge.state import EDGE

_MODELS_TTL_S: Final = 30.0
_MODELS_RETRY_S: Final = 5.0  # after a failed read: unauthenticated callers must not hammer the router
_CATALOG_TIMEOUT_S: Final = 2.0
_MAX_ORIGINS: Final = 16  # origins come from the Host header: bound what a caller can make us keep
_decode_models = msgspec.json.Decoder(ModelList).decode


class Description:
    """What the three routes serve, built lazily and kept for the process's life."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = routes
        self._document: dict[str, Any] | None = None
        self._served: dict[str, bytes] = {}
        self._models: ModelList | None = None
        self._models_until = 0.0
        self._models_lock = asyncio.Lock()

    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = build_document(self._routes)
        return self._document

    def openapi_bytes(self, origin: str) -> bytes:
        body = self._served.get(origin)
        if body is None:
            if len(self._served) >= _MAX_ORIGINS:
                self._served.clear()
            body = self._served[origin] = msgspec.json.encode(with_server(self.document(), origin))
        return body

    async def models(self, request: web.Request) -> ModelList | None:
        if time.monotonic() < self._models_until:
            return self._models
        async with self._models_lock:  # one catalog read however many callers arrive together
            if time.monotonic() < self._models_until:
                return self._models
            self._models, ttl = await _read_catalog(request), _MODELS_TTL_S
            if self._models is None:
                ttl = _MODELS_RETRY_S
            self._models_until = time.monotonic() + ttl
            return self._models

    async def llms_txt(self, request: web.Request) -> str:
        return llms_txt.render(self._routes, await self.models(request), public_base(request))


async def _read_catalog(request: web.Request) -> ModelList | None:
    """The router's catalog, or None when it cannot be read (llms.txt then says so)."""
    state = request.app[EDGE]
    try:
        reply = await request_reply(state.nc, subjects.CATALOG_LIST, catalog_bus.encode(catalog_bus.ModelsQuery()),
                                    _CATALOG_TIMEOUT_S, local=state.router)
        return _decode_models(reply.body)
    except (GatewayError, msgspec.DecodeError):
        return None


DESCRIPTION: Final = web.AppKey("api_description", Description)


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DESCRIPTION].openapi_bytes(public_base(request)),
                        content_type="application/json")


async def llms(request: web.Request) -> web.Response:
    return web.Response(text=await request.app[DESCRIPTION].llms_txt(request), content_type="text/plain")


async def _check_table(app: web.Application) -> None:
    # At startup every route is registered: say once if the table has fallen behind.
    log_differences(app, ROUTES)


def add_routes(app: web.Application) -> None:
    app[DESCRIPTION] = Description(ROUTES)
    app.on_startup.append(_check_table)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/v1/openapi.json", openapi_json)
    app.router.add_get("/llms.txt", llms)
