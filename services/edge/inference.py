"""POST /v1/chat/completions and /v1/embeddings: authenticate, validate once,
hand the client's original bytes to the router."""

from typing import Any

import msgspec
from aiohttp import web

from libs.contracts import errors, subjects
from libs.contracts.bus.inference import OP_CHAT, OP_EMBEDDINGS, InferenceRequest, encode
from libs.contracts.http.chat import ChatCompletionRequest
from libs.contracts.http.embeddings import EmbeddingsRequest
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.relay import relay_stream, reply_response, request_reply
from services.edge.state import EDGE, EdgeState

_decode_chat = msgspec.json.Decoder(ChatCompletionRequest).decode
_decode_embeddings = msgspec.json.Decoder(EmbeddingsRequest).decode
_MAX_TAG = 128


def _validate(decode: Any, body: bytes) -> Any:
    if not body:
        raise GatewayError(400, errors.INVALID_REQUEST, "Request body is empty; send a JSON object.")
    try:
        return decode(body)
    except msgspec.ValidationError as exc:
        raise GatewayError(400, errors.INVALID_REQUEST, f"Invalid request body: {exc}",
                           param=_param_of(str(exc))) from exc
    except msgspec.DecodeError as exc:
        raise GatewayError(400, errors.INVALID_REQUEST, f"Malformed JSON body: {exc}") from exc


def _param_of(message: str) -> str | None:
    """msgspec names the field as `$.path` or in backticks; pass it as OpenAI's `param`."""
    path = message.rsplit("`$.", 1)[1].rstrip("`") if " - at `$." in message else None
    if "missing required field `" in message:
        field = message.split("missing required field `", 1)[1].split("`", 1)[0]
        return f"{path}.{field}" if path else field
    return path


def _tag(request: web.Request) -> str | None:
    tag = request.headers.get("x-aig-tag")
    if tag is not None and len(tag) > _MAX_TAG:
        raise GatewayError(400, errors.INVALID_REQUEST, f"x-aig-tag is longer than {_MAX_TAG} characters.")
    return tag or None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state: EdgeState = request.app[EDGE]
    principal = state.keys.authenticate(request.headers.get("Authorization"), request.headers.get("x-api-key"))
    body = await request.read()
    parsed: ChatCompletionRequest = _validate(_decode_chat, body)
    if parsed.webhook_url is not None:
        raise GatewayError(400, errors.INVALID_REQUEST,
                           "webhook_url (async delivery) is not enabled on this gateway yet.", param="webhook_url")
    stream = bool(parsed.stream)
    message = InferenceRequest(
        request_id=request[REQUEST_ID], operation=OP_CHAT, model=parsed.model, body=body,
        principal=principal, stream=stream,
        include_usage=bool(parsed.stream_options and parsed.stream_options.include_usage),
        tag=_tag(request), traceparent=request.headers.get("traceparent"),
    )
    if stream:
        return await relay_stream(request, state.nc, subjects.INFER_CHAT, encode(message), request[REQUEST_ID],
                                  state.settings.request_timeout_s, state.settings.stream_idle_timeout_s)
    reply = await request_reply(state.nc, subjects.INFER_CHAT, encode(message), state.settings.request_timeout_s)
    return reply_response(reply, request[REQUEST_ID])


async def embeddings(request: web.Request) -> web.StreamResponse:
    state: EdgeState = request.app[EDGE]
    principal = state.keys.authenticate(request.headers.get("Authorization"), request.headers.get("x-api-key"))
    body = await request.read()
    parsed: EmbeddingsRequest = _validate(_decode_embeddings, body)
    message = InferenceRequest(
        request_id=request[REQUEST_ID], operation=OP_EMBEDDINGS, model=parsed.model, body=body,
        principal=principal, tag=_tag(request), traceparent=request.headers.get("traceparent"),
    )
    reply = await request_reply(state.nc, subjects.INFER_EMBEDDINGS, encode(message),
                                state.settings.request_timeout_s)
    return reply_response(reply, request[REQUEST_ID])
