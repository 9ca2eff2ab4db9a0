"""POST /v1/messages (Anthropic Messages API) and POST /v1/responses (OpenAI Responses API):
validated here, translated to chat and back by the router, so any provider serves them."""

from collections.abc import Callable

import msgspec
from aiohttp import web

from libs.contracts import subjects
from libs.contracts.bus.inference import OP_MESSAGES, OP_RESPONSES, InferenceRequest
from libs.contracts.errors import ErrorBody
from libs.contracts.http.messages import MessagesRequest, anthropic_error_json
from libs.contracts.http.responses import ResponsesRequest
from services.edge.errors import REQUEST_ID
from services.edge.inference import admit, cache_mode, send, snapshot_wanted, tag_of
from services.edge.relay import ErrorEvent
from services.edge.spans import traceparent_for
from services.edge.validation import validate

_decode_messages = msgspec.json.Decoder(MessagesRequest).decode
_decode_responses = msgspec.json.Decoder(ResponsesRequest).decode
_encode = msgspec.json.Encoder().encode


def _anthropic_error(body: ErrorBody, _sent: bytes) -> bytes:
    return b"event: error\ndata: " + anthropic_error_json(body.code, body.message) + b"\n\n"


class _Numbered(msgspec.Struct):
    sequence_number: int = -1


_decode_numbered = msgspec.json.Decoder(_Numbered).decode


def next_sequence_number(sent: bytes) -> int:
    """The number after the last Responses event in `sent` (0 when there is none): events are
    `event: ...\ndata: {json}\n\n`, and JSON holds no raw newline, so the last `\ndata: ` starts
    the last event's data."""
    start = sent.rfind(b"\ndata: ")
    if start < 0:
        return 0
    line = sent[start + 7:].split(b"\n", 1)[0]
    try:
        return _decode_numbered(line).sequence_number + 1
    except msgspec.DecodeError:
        return 0


def _responses_error(body: ErrorBody, sent: bytes) -> bytes:
    # ResponseErrorEvent requires sequence_number, continuing the router's count.
    error = {"type": "error", "code": body.type, "message": body.message, "param": body.param,
             "sequence_number": next_sequence_number(sent)}
    return b"event: error\ndata: " + _encode(error) + b"\n\n"


async def _surface(request: web.Request, operation: str, decode: Callable[[bytes], MessagesRequest | ResponsesRequest],
                   error_event: ErrorEvent) -> web.StreamResponse:
    state, principal, sub, body = await admit(request)
    parsed = validate(decode, body)
    message = InferenceRequest(
        request_id=request[REQUEST_ID], operation=operation, model=parsed.model, body=body, principal=principal,
        stream=bool(parsed.stream), tag=tag_of(request, sub), traceparent=traceparent_for(request),
        cache=cache_mode(request), snapshot=snapshot_wanted(request, state, sub))
    limit = parsed.max_tokens if isinstance(parsed, MessagesRequest) else parsed.max_output_tokens
    hold = await state.spend.hold(principal, sub, state.spend.estimate([parsed.model], body, limit))
    return await send(request, state, sub, hold, subjects.INFER_CHAT, message, error_event)


async def messages(request: web.Request) -> web.StreamResponse:
    return await _surface(request, OP_MESSAGES, _decode_messages, _anthropic_error)


async def responses(request: web.Request) -> web.StreamResponse:
    return await _surface(request, OP_RESPONSES, _decode_responses, _responses_error)
