"""/v1/evals and /v1/replays: authenticate (inference scope: both spend money on
inference), validate the body here, carry the call to the jobs service."""

from typing import Any

import msgspec
from aiohttp import web

from libs.contracts import subjects
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.http import evals as evals_http
from libs.contracts.http import replays as replays_http
from services.edge.errors import REQUEST_ID
from services.edge.inference import tag_of
from services.edge.relay import reply_response, request_reply
from services.edge.spans import traceparent_for
from services.edge.state import EDGE, EdgeState
from services.edge.validation import validate

_QUERY_TIMEOUT_S = 10.0
_BODIES: dict[str, Any] = {
    jobs_bus.OP_EVAL_CREATE: msgspec.json.Decoder(evals_http.EvalCreate).decode,
    jobs_bus.OP_REPLAY_CREATE: msgspec.json.Decoder(replays_http.ReplayCreate).decode,
}


def _handler(op: str, with_id: bool = False) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        state: EdgeState = request.app[EDGE]
        principal = state.keys.check(request.headers).principal
        # A capped or exhausted account cannot start paid work; it can still read its records.
        sub = state.tenancy.admit(principal) if op in _BODIES else None
        body = b""
        if op in _BODIES:
            body = await request.read()
            validate(_BODIES[op], body)
        call = jobs_bus.JobsRequest(op=op, principal=principal, body=body, tag=tag_of(request, sub),
                                    target_id=request.match_info["id"] if with_id else None,
                                    traceparent=traceparent_for(request))
        # A replay that is not a shadow answers when its inference has: allow an inference's time.
        timeout = state.settings.request_timeout_s + 5 if op == jobs_bus.OP_REPLAY_CREATE else _QUERY_TIMEOUT_S
        reply = await request_reply(state.nc, subjects.JOBS_API, jobs_bus.encode(call), timeout,
                                    unavailable="The jobs service (evals and replays) is not running")
        return reply_response(reply, request[REQUEST_ID])

    return handle


def add_routes(app: web.Application) -> None:
    add = app.router
    add.add_post("/v1/evals", _handler(jobs_bus.OP_EVAL_CREATE))
    add.add_get("/v1/evals", _handler(jobs_bus.OP_EVAL_LIST))
    add.add_get("/v1/evals/{id}", _handler(jobs_bus.OP_EVAL_GET, with_id=True))
    add.add_post("/v1/replays", _handler(jobs_bus.OP_REPLAY_CREATE))
    add.add_get("/v1/replays", _handler(jobs_bus.OP_REPLAY_LIST))
    add.add_get("/v1/replays/{id}", _handler(jobs_bus.OP_REPLAY_GET, with_id=True))
