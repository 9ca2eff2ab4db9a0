"""Shared shapes of the management operations the ledger answers (see accounts,
budgets, wallets): the op table type and OpenAI-shaped failures."""

from collections.abc import Awaitable, Callable

import msgspec

from libs.contracts import errors
from libs.contracts.bus.inference import Failure, Reply
from libs.contracts.bus.ledger import AdminRequest
from libs.contracts.errors import ErrorBody

Answer = Reply | Failure
Ops = dict[str, Callable[[AdminRequest], Awaitable[Answer]]]
_encode = msgspec.json.Encoder().encode


def fail(status: int, type_: str, message: str, param: str | None = None) -> Failure:
    return Failure(ErrorBody(message, type_, status, param))


def not_found(kind: str, id_: str | None) -> Failure:
    return fail(404, errors.INVALID_REQUEST, f"No {kind} with id '{id_}' in this account.", "id")


def ok(body: msgspec.Struct) -> Reply:
    return Reply(200, _encode(body))


async def dispatch(ops: Ops, request: AdminRequest) -> Answer:
    op = ops.get(request.op)
    if op is None:
        return fail(400, errors.INVALID_REQUEST, f"unknown management operation {request.op!r}")
    try:
        return await op(request)
    except msgspec.ValidationError as exc:
        return fail(400, errors.INVALID_REQUEST, f"Invalid request body: {exc}")
