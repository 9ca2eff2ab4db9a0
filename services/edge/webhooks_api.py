"""/v1/webhooks/* and /v1/webhook-secret*: authenticate, validate the body here, carry
the call to the webhooks service.

Endpoints, the secret and redelivery are account management (admin scope, account-level
keys); the delivery log is readable with read-usage, by sub-account keys too (the
webhooks service shows them only their own events' deliveries).
"""

from typing import Any

import msgspec
from aiohttp import web

from libs.contracts import errors, subjects
from libs.contracts.bus import webhooks as bus
from libs.contracts.bus.inference import Principal
from libs.contracts.http import webhooks as http
from libs.contracts.keys import SCOPE_ADMIN, SCOPE_READ_USAGE
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.idempotency import idempotent
from services.edge.relay import reply_response, request_reply
from services.edge.state import EDGE, EdgeState
from services.edge.validation import validate

_TIMEOUT_S = 10.0
_BODIES: dict[str, Any] = {
    bus.OP_ENDPOINT_CREATE: msgspec.json.Decoder(http.EndpointCreate).decode,
    bus.OP_ENDPOINT_UPDATE: msgspec.json.Decoder(http.EndpointUpdate).decode,
}
_READS = frozenset({bus.OP_DELIVERY_LIST, bus.OP_DELIVERY_GET})


def _principal(request: web.Request, op: str) -> Principal:
    state: EdgeState = request.app[EDGE]
    principal = state.keys.check(request.headers, SCOPE_READ_USAGE if op in _READS else SCOPE_ADMIN).principal
    if principal.subaccount_id is not None and op not in _READS:
        raise GatewayError(403, errors.PERMISSION, "Sub-account keys cannot manage webhooks; use an account key.")
    return principal


def _manager(request: web.Request) -> Principal:
    return _principal(request, bus.OP_ENDPOINT_CREATE)


def _handler(op: str, with_id: bool = False) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        state: EdgeState = request.app[EDGE]
        principal = _principal(request, op)
        body = b""
        if op in _BODIES:
            body = await request.read()
            validate(_BODIES[op], body)
        call = bus.WebhooksCall(op=op, principal=principal, target_id=request.match_info["id"] if with_id else None,
                                body=body, query={k: request.query[k] for k in request.query})
        reply = await request_reply(state.nc, subjects.WEBHOOKS_API, bus.encode(call), _TIMEOUT_S,
                                    unavailable="The webhooks service is not running")
        return reply_response(reply, request[REQUEST_ID])

    return handle


def add_routes(app: web.Application) -> None:
    add = app.router
    add.add_post("/v1/webhooks/endpoints", idempotent(_handler(bus.OP_ENDPOINT_CREATE), _manager))
    add.add_get("/v1/webhooks/endpoints", _handler(bus.OP_ENDPOINT_LIST))
    add.add_get("/v1/webhooks/endpoints/{id}", _handler(bus.OP_ENDPOINT_GET, with_id=True))
    add.add_patch("/v1/webhooks/endpoints/{id}", _handler(bus.OP_ENDPOINT_UPDATE, with_id=True))
    add.add_delete("/v1/webhooks/endpoints/{id}", _handler(bus.OP_ENDPOINT_DELETE, with_id=True))
    add.add_get("/v1/webhooks/deliveries", _handler(bus.OP_DELIVERY_LIST))
    add.add_get("/v1/webhooks/deliveries/{id}", _handler(bus.OP_DELIVERY_GET, with_id=True))
    add.add_post("/v1/webhooks/deliveries/{id}/redeliver", _handler(bus.OP_DELIVERY_REDELIVER, with_id=True))
    add.add_get("/v1/webhook-secret", _handler(bus.OP_SECRET_GET))
    add.add_post("/v1/webhook-secret/rotate", _handler(bus.OP_SECRET_ROTATE))
