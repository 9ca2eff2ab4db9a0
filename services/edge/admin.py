"""Management routes (/v1/sub-accounts, /v1/management/keys): authenticate the
admin scope and validate the body here, carry the call to the ledger."""

from typing import Any

import msgspec
from aiohttp import web

from libs.contracts import errors, subjects
from libs.contracts.bus import ledger as ledger_bus
from libs.contracts.bus.inference import Principal
from libs.contracts.http import accounts as http
from libs.contracts.keys import SCOPE_ADMIN, SCOPE_READ_USAGE
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.idempotency import idempotent
from services.edge.relay import reply_response, request_reply
from services.edge.state import EDGE, EdgeState
from services.edge.validation import validate

_ADMIN_TIMEOUT_S = 10.0
_BODIES: dict[str, Any] = {
    "subaccount.create": msgspec.json.Decoder(http.SubAccountCreate).decode,
    "subaccount.update": msgspec.json.Decoder(http.SubAccountUpdate).decode,
    "key.create": msgspec.json.Decoder(http.KeyCreate).decode,
    "key.update": msgspec.json.Decoder(http.KeyUpdate).decode,
    "budget.create": msgspec.json.Decoder(http.BudgetCreate).decode,
    "balance.topup": msgspec.json.Decoder(http.TopUp).decode,
}


def _handler(op: str, with_id: bool = False, scope: str = SCOPE_ADMIN) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        state: EdgeState = request.app[EDGE]
        principal = state.keys.check(request.headers, scope).principal
        if principal.subaccount_id is not None and scope == SCOPE_READ_USAGE:
            # Balances, budgets: account-level facts a customer's sub-account key does not see.
            raise GatewayError(403, errors.PERMISSION, "Sub-account keys cannot read account-level data.")
        body = b""
        if op in _BODIES:
            body = await request.read()
            validate(_BODIES[op], body)
        call = ledger_bus.AdminRequest(op=op, principal=principal,
                                       target_id=request.match_info["id"] if with_id else None, body=body)
        reply = await request_reply(state.nc, subjects.LEDGER_ADMIN, ledger_bus.encode(call), _ADMIN_TIMEOUT_S,
                                    unavailable="The ledger (account management) is not running")
        return reply_response(reply, request[REQUEST_ID])

    return handle


def _admin(request: web.Request) -> Principal:
    return request.app[EDGE].keys.check(request.headers, SCOPE_ADMIN).principal


def add_routes(app: web.Application) -> None:
    add = app.router
    add.add_post("/v1/sub-accounts", idempotent(_handler("subaccount.create"), _admin))
    add.add_get("/v1/sub-accounts", _handler("subaccount.list"))
    add.add_get("/v1/sub-accounts/{id}", _handler("subaccount.get", with_id=True))
    add.add_patch("/v1/sub-accounts/{id}", _handler("subaccount.update", with_id=True))
    add.add_delete("/v1/sub-accounts/{id}", _handler("subaccount.delete", with_id=True))
    add.add_post("/v1/sub-accounts/{id}/rotate-key", _handler("subaccount.rotate", with_id=True))
    add.add_post("/v1/management/keys", _handler("key.create"))
    add.add_get("/v1/management/keys", _handler("key.list"))
    add.add_get("/v1/management/keys/{id}", _handler("key.get", with_id=True))
    add.add_patch("/v1/management/keys/{id}", _handler("key.update", with_id=True))
    add.add_delete("/v1/management/keys/{id}", _handler("key.delete", with_id=True))
    add.add_post("/v1/budgets", idempotent(_handler("budget.create"), _admin))
    add.add_get("/v1/budgets", _handler("budget.list", scope=SCOPE_READ_USAGE))
    add.add_delete("/v1/budgets/{id}", _handler("budget.delete", with_id=True))
    add.add_get("/v1/balance", _handler("balance.get", scope=SCOPE_READ_USAGE))
    add.add_post("/v1/balance/top-up", _handler("balance.topup"))
