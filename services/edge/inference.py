"""POST /v1/chat/completions and /v1/embeddings: authenticate, validate once,
hand the client's original bytes to the router."""

from typing import NamedTuple

import msgspec
from aiohttp import web

from libs.contracts import errors, subjects
from libs.contracts.accounts import SubAccountRecord
from libs.contracts.bus.cache import CACHE_HEADER, CACHE_MODES, DEFAULT_CACHE_MODE
from libs.contracts.bus.inference import OP_CHAT, OP_EMBEDDINGS, DispatchMeta, InferenceRequest, Principal, encode
from libs.contracts.bus.snapshots import SNAPSHOT_HEADER
from libs.contracts.http.chat import AUTO_MODEL, ChatCompletionRequest
from libs.contracts.http.embeddings import EmbeddingsRequest
from services.edge import job_calls
from services.edge.errors import RECEIVED_NS, REQUEST_ID, GatewayError
from services.edge.relay import ErrorEvent, ask_router, relay_stream, reply_response
from services.edge.spans import traceparent_for
from services.edge.spend_leases import Hold
from services.edge.state import EDGE, EdgeState
from services.edge.validation import validate

_decode_chat = msgspec.json.Decoder(ChatCompletionRequest).decode
_decode_embeddings = msgspec.json.Decoder(EmbeddingsRequest).decode
_MAX_TAG = 128


def tag_of(request: web.Request, sub: SubAccountRecord | None) -> str | None:
    """x-aig-tag, else the sub-account's default tag."""
    tag = request.headers.get("x-aig-tag")
    if tag is not None and len(tag) > _MAX_TAG:
        raise GatewayError(400, errors.INVALID_REQUEST, f"x-aig-tag is longer than {_MAX_TAG} characters.")
    return tag or (sub.default_tag if sub is not None else None)


def snapshot_wanted(request: web.Request, state: EdgeState, sub: SubAccountRecord | None) -> bool:
    """Whether the router keeps this request for replays: the gateway, the sub-account and
    the request (x-aig-snapshot: off) can each opt out."""
    if not state.settings.snapshots or (sub is not None and not sub.snapshots):
        return False
    return request.headers.get(SNAPSHOT_HEADER, "on").lower() not in ("off", "0", "false", "no")


class _Admitted(NamedTuple):
    state: EdgeState
    principal: Principal
    sub: SubAccountRecord | None
    body: bytes


async def admit(request: web.Request) -> _Admitted:
    """Key, spend cap, rate limit, then the body: refuse as early and as cheaply as possible."""
    state: EdgeState = request.app[EDGE]
    principal = state.keys.check(request.headers).principal
    sub = state.tenancy.admit(principal)
    state.tenancy.limit(state.limiter, sub)
    return _Admitted(state, principal, sub, await request.read())


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state, principal, sub, body = await admit(request)
    parsed: ChatCompletionRequest = validate(_decode_chat, body)
    models = [m for m in parsed.models or [] if m != parsed.model]
    if parsed.webhook_url is not None:  # async: a job whose result is the completion (202)
        # Admitted against the cap like the request it will run: its worst case stays reserved
        # (charged as "unsure" spend) until the job's usage reaches the ledger.
        worst = state.spend.estimate([parsed.model, *models], body, parsed.max_completion_tokens or parsed.max_tokens,
                                     choices=parsed.n or 1)
        (await state.spend.hold(principal, sub, worst)).settle(None)
        return await job_calls.chat_job(request, principal, tag_of(request, sub), body, parsed)
    stream = bool(parsed.stream)
    message = InferenceRequest(
        request_id=request[REQUEST_ID], operation=OP_CHAT, model=parsed.model, body=body,
        principal=principal, stream=stream,
        include_usage=bool(parsed.stream_options and parsed.stream_options.include_usage),
        tag=tag_of(request, sub), traceparent=traceparent_for(request),
        models=models, routing=_routing(request), needs=_needs(parsed) if parsed.model == AUTO_MODEL else [],
        cache=cache_mode(request), snapshot=snapshot_wanted(request, state, sub),
    )
    worst = state.spend.estimate([parsed.model, *models], body, parsed.max_completion_tokens or parsed.max_tokens,
                                 choices=parsed.n or 1)
    hold = await state.spend.hold(principal, sub, worst)
    return await send(request, state, sub, hold, subjects.INFER_CHAT, message)


async def send(request: web.Request, state: EdgeState, sub: SubAccountRecord | None, hold: Hold, subject: str,
               message: InferenceRequest, error_event: ErrorEvent | None = None
               ) -> web.StreamResponse:
    """Relay one admitted request to the router, settling its reservation with what it cost."""

    def ended(meta: DispatchMeta | None) -> None:
        hold.settle_meta(meta)
        count_tokens(state, sub, meta)

    headers = state.tracing.producer_headers(subject) if state.tracing.enabled else None
    message.edge_received_ns = request.get(RECEIVED_NS, 0)
    try:
        if message.stream:
            # A stream that ends without its end marker leaves the hold unsettled: charged in full below.
            return await relay_stream(request, state.streams, subject, encode(message), request[REQUEST_ID],
                                      state.settings.request_timeout_s, state.settings.stream_idle_timeout_s,
                                      on_end=ended, error_event=error_event, headers=headers, local=state.router)
        reply = await ask_router(state.streams, subject, encode(message), state.settings.request_timeout_s,
                                 headers=headers, local=state.router)
        ended(reply.meta)
        return reply_response(reply, request[REQUEST_ID])
    except BaseException as exc:
        hold.settle_error(exc)
        raise
    finally:
        hold.settle(None)  # no-op once settled


async def embeddings(request: web.Request) -> web.StreamResponse:
    state, principal, sub, body = await admit(request)
    parsed: EmbeddingsRequest = validate(_decode_embeddings, body)
    message = InferenceRequest(
        request_id=request[REQUEST_ID], operation=OP_EMBEDDINGS, model=parsed.model, body=body,
        principal=principal, tag=tag_of(request, sub), traceparent=traceparent_for(request),
        cache=cache_mode(request),
    )
    hold = await state.spend.hold(principal, sub, state.spend.estimate([parsed.model], body, 0))
    return await send(request, state, sub, hold, subjects.INFER_EMBEDDINGS, message)


_ROUTING = frozenset({"cost", "speed", "quality", "auto"})


def cache_mode(request: web.Request) -> str:
    mode = request.headers.get(CACHE_HEADER, DEFAULT_CACHE_MODE)
    if mode not in CACHE_MODES:
        raise GatewayError(400, errors.INVALID_REQUEST,
                           f"x-cache must be one of {', '.join(CACHE_MODES)}, got '{mode}'.", param="x-cache")
    return mode


def _routing(request: web.Request) -> str | None:
    routing = request.headers.get("x-routing")
    if routing is not None and routing not in _ROUTING:
        raise GatewayError(400, errors.INVALID_REQUEST,
                           f"x-routing must be one of {', '.join(sorted(_ROUTING))}, got '{routing}'.",
                           param="x-routing")
    return routing


def _needs(parsed: ChatCompletionRequest) -> list[str]:
    """What a model must offer to serve this body, for automatic routing."""
    needs = ["chat"]
    if parsed.stream:
        needs.append("streaming")
    if parsed.tools:
        needs.append("tools")
    if parsed.response_format is not None and parsed.response_format.type == "json_schema":
        needs.append("json_schema")
    if any(isinstance(m.content, list) and any(p.get("type") == "image_url" for p in m.content)
           for m in parsed.messages):
        needs.append("vision")
    return needs


def count_tokens(state: EdgeState, sub: SubAccountRecord | None, meta: DispatchMeta | None) -> None:
    """Feed the tokens of an answered request to the sub-account's TPM limit."""
    if sub is not None and sub.rate_limit_tpm is not None and meta is not None and meta.usage is not None:
        state.limiter.record_tokens(sub.id, meta.usage.input_units + meta.usage.output_units)
