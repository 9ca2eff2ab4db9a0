"""/v1/batches (OpenAI's Batch API) and /v1/messages/batches (Anthropic's Message
Batches): authenticate, admit like a request (a capped or rate-limited caller cannot
start a batch), validate the body, and carry the call to the jobs service, which owns
batches. An ended Message Batch's results stream from the Object Store here.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from libs.contracts import errors, subjects
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus.inference import Principal, Reply
from libs.contracts.http import batches as http
from libs.contracts.http import message_batches as anthropic
from services.edge.downloads import stream_blob
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.idempotency import idempotent
from services.edge.inference import admit, tag_of
from services.edge.relay import reply_response, request_reply
from services.edge.spans import traceparent_for
from services.edge.state import EDGE, EdgeState
from services.edge.validation import bounded_int, validate

_TIMEOUT_S = 15.0  # a create writes the requests of a Message Batch to the Object Store
_UNAVAILABLE = "The jobs service (batches) is not running"
_decode_batch = msgspec.json.Decoder(http.BatchCreate).decode
_decode_message_batch = msgspec.json.Decoder(anthropic.MessageBatchCreate).decode
_decode_view = msgspec.json.Decoder(anthropic.MessageBatch).decode
_decode_views = msgspec.json.Decoder(anthropic.MessageBatchList).decode
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _principal(request: web.Request) -> Principal:
    return request.app[EDGE].keys.check(request.headers).principal


async def _call(request: web.Request, op: str, principal: Principal, body: bytes = b"",
                tag: str | None = None) -> Reply:
    state: EdgeState = request.app[EDGE]
    call = jobs_bus.JobsRequest(op=op, principal=principal, body=body, tag=tag,
                                target_id=request.match_info.get("id"),
                                traceparent=traceparent_for(request))
    return await request_reply(state.nc, subjects.JOBS_API, jobs_bus.encode(call), _TIMEOUT_S,
                               unavailable=_UNAVAILABLE)


def _creator(op: str, decode: Any, view: Callable[[web.Request, Reply], Reply] | None = None) -> Handler:
    async def create(request: web.Request) -> web.StreamResponse:
        _, principal, sub, body = await admit(request)
        validate(decode, body)
        reply = await _call(request, op, principal, body, tag_of(request, sub))
        return reply_response(view(request, reply) if view else reply, request[REQUEST_ID])

    return idempotent(create, _principal)


def _reader(op: str, view: Callable[[web.Request, Reply], Reply] | None = None,
            query: Callable[[web.Request], http.ListQuery] | None = None) -> Handler:
    async def read(request: web.Request) -> web.StreamResponse:
        principal = _principal(request)
        body = http.encode(query(request)) if query is not None else b""
        reply = await _call(request, op, principal, body)
        return reply_response(view(request, reply) if view else reply, request[REQUEST_ID])

    return read


def _limit(request: web.Request, most: int) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return http.DEFAULT_LIST
    limit = bounded_int(raw, 1, most)
    if limit is None:
        raise GatewayError(400, errors.INVALID_REQUEST, f"limit must be an integer from 1 to {most}.", param="limit")
    return limit


def _cursor(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is not None and not value:
        raise GatewayError(400, errors.INVALID_REQUEST, f"{name} must be a batch id.", param=name)
    return value


def _openai_query(request: web.Request) -> http.ListQuery:
    return http.ListQuery(after=_cursor(request, "after"), limit=_limit(request, http.MAX_LIST))


def _anthropic_query(request: web.Request) -> http.ListQuery:
    after, before = _cursor(request, "after_id"), _cursor(request, "before_id")
    if after is not None and before is not None:
        raise GatewayError(400, errors.INVALID_REQUEST, "Send after_id or before_id, not both.", param="before_id")
    return http.ListQuery(after=after, before=before, limit=_limit(request, 1000))


def _absolute(request: web.Request, view: anthropic.MessageBatch) -> anthropic.MessageBatch:
    if view.results_url is not None and view.results_url.startswith("/"):
        view.results_url = f"{request.scheme}://{request.host}{view.results_url}"
    return view


def _one_view(request: web.Request, reply: Reply) -> Reply:
    """`results_url` made absolute with the origin this client called (as Anthropic's is)."""
    return Reply(reply.status, anthropic.encode(_absolute(request, _decode_view(reply.body))), reply.meta)


def _list_view(request: web.Request, reply: Reply) -> Reply:
    page = _decode_views(reply.body)
    page.data = [_absolute(request, view) for view in page.data]
    return Reply(reply.status, anthropic.encode(page), reply.meta)


async def message_batch_results(request: web.Request) -> web.StreamResponse:
    state: EdgeState = request.app[EDGE]
    principal = _principal(request)
    reply = await _call(request, http.OP_MESSAGE_BATCH_RESULTS, principal)
    location = anthropic.decode_results_location(reply.body)
    info = await state.blobs.info(location.object_name)
    if info is None:
        raise GatewayError(404, errors.INVALID_REQUEST, "This batch's results are gone.", param="id")
    return await stream_blob(request, state.blobs, info, f"{request.match_info['id']}_results.jsonl",
                             content_type="application/binary")


def add_routes(app: web.Application) -> None:
    add = app.router
    add.add_post("/v1/batches", _creator(http.OP_BATCH_CREATE, _decode_batch))
    add.add_get("/v1/batches", _reader(http.OP_BATCH_LIST, query=_openai_query))
    add.add_get("/v1/batches/{id}", _reader(http.OP_BATCH_GET))
    add.add_post("/v1/batches/{id}/cancel", _reader(http.OP_BATCH_CANCEL))
    add.add_post("/v1/messages/batches", _creator(http.OP_MESSAGE_BATCH_CREATE, _decode_message_batch, _one_view))
    add.add_get("/v1/messages/batches", _reader(http.OP_MESSAGE_BATCH_LIST, _list_view, _anthropic_query))
    add.add_get("/v1/messages/batches/{id}", _reader(http.OP_MESSAGE_BATCH_GET, _one_view))
    add.add_post("/v1/messages/batches/{id}/cancel", _reader(http.OP_MESSAGE_BATCH_CANCEL, _one_view))
    add.add_get("/v1/messages/batches/{id}/results", message_batch_results)
    add.add_delete("/v1/messages/batches/{id}", _reader(http.OP_MESSAGE_BATCH_DELETE))
