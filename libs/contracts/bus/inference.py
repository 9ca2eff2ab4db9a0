"""Inference messages between edge and router (msgpack on the bus).

The edge sends one InferenceRequest. The router answers a non-stream request
with one Reply or Failure on the reply subject; a stream with StreamStart, any
number of StreamChunk, then StreamEnd (or a Failure at any point). Structs are
array_like and tagged so each message is a compact msgpack array.
"""

from typing import Final

import msgspec

from libs.contracts.errors import ErrorBody

OP_CHAT: Final = "chat"
OP_EMBEDDINGS: Final = "embeddings"
# Client surfaces translated to chat by the router (published on the chat subject).
OP_MESSAGES: Final = "messages"
OP_RESPONSES: Final = "responses"
# OpenAI media and moderation APIs, passed through to providers that speak them
# (published on the modality subject). The form operations carry a multipart body.
OP_IMAGES: Final = "images.generations"
OP_IMAGE_EDITS: Final = "images.edits"
OP_MODERATIONS: Final = "moderations"
OP_SPEECH: Final = "audio.speech"
OP_TRANSCRIPTIONS: Final = "audio.transcriptions"
OP_AUDIO_TRANSLATIONS: Final = "audio.translations"
FORM_OPERATIONS: Final = frozenset({OP_IMAGE_EDITS, OP_TRANSCRIPTIONS, OP_AUDIO_TRANSLATIONS})
# Utility endpoints implemented on a chat model by the router (services/router/utilities.py).
OP_TRANSLATIONS: Final = "translations"
OP_CLASSIFICATIONS: Final = "classifications"
OP_RERANK: Final = "rerank"
OP_DETECTIONS: Final = "detections"
OP_OCR: Final = "ocr"


class Principal(msgspec.Struct, array_like=True, frozen=True):
    """Who is calling: resolved from the API key at the edge."""

    account_id: str
    key_id: str
    subaccount_id: str | None = None


class InferenceRequest(msgspec.Struct, array_like=True):
    request_id: str
    operation: str
    model: str
    # The client's JSON body exactly as received; the router rewrites only what
    # the provider needs (the upstream model name).
    body: bytes
    principal: Principal
    stream: bool = False
    include_usage: bool = False
    tag: str | None = None
    traceparent: str | None = None
    # OpenRouter-style `models: [...]` from the body: fallbacks tried after `model`'s deployments.
    models: list[str] = []
    # x-routing when `model` is "auto" (or omitted), and the capabilities the body needs.
    routing: str | None = None
    needs: list[str] = []
    cache: str = "auto"  # x-cache: auto | force | skip
    # The client's Content-Type when the body is not JSON (multipart forms keep their boundary).
    content_type: str | None = None
    # Keep a snapshot of a chat-shaped request and its answer for replays (bus/snapshots.py);
    # the edge clears it for accounts that opted out.
    snapshot: bool = False
    # A line of a batch (jobs service): the router prices it at the batch discount.
    batch: bool = False
    # When the edge began serving the HTTP request (unix ns; 0: not from an edge): the router
    # measures from it to its own pick-up, which is admission, the bus and its own backlog.
    edge_received_ns: int = 0


class Usage(msgspec.Struct, array_like=True):
    input_units: int = 0
    output_units: int = 0
    cached_units: int = 0


class Cost(msgspec.Struct, array_like=True):
    """What a request was charged, in integer micro-dollars, line by line."""

    input_micros: int = 0
    output_micros: int = 0
    cached_micros: int = 0
    markup_micros: int = 0
    total_micros: int = 0
    priced: bool = True


class DispatchMeta(msgspec.Struct, array_like=True):
    """What served the request and what it cost; becomes the X-* response headers."""

    model: str
    provider: str
    upstream_latency_ms: float = 0.0
    usage: Usage | None = None
    cost: Cost | None = None
    cache_status: str | None = None  # X-Cache-Status, when the cache was consulted


class Reply(msgspec.Struct, tag="reply", array_like=True):
    status: int
    body: bytes
    meta: DispatchMeta | None = None
    content_type: str = "application/json"


class StreamStart(msgspec.Struct, tag="start", array_like=True):
    meta: DispatchMeta


class StreamChunk(msgspec.Struct, tag="chunk", array_like=True):
    """One or more complete SSE events, ready to write to the client."""

    data: bytes


class StreamEnd(msgspec.Struct, tag="end", array_like=True):
    meta: DispatchMeta


class Failure(msgspec.Struct, tag="error", array_like=True):
    error: ErrorBody
    retry_after: int | None = None
    meta: DispatchMeta | None = None


BusReply = Reply | StreamStart | StreamChunk | StreamEnd | Failure

encode = msgspec.msgpack.Encoder().encode
decode_request = msgspec.msgpack.Decoder(InferenceRequest).decode
decode_reply = msgspec.msgpack.Decoder(BusReply).decode
