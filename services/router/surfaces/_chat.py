"""What both surfaces share: the canonical `chat.completion` body and
`chat.completion.chunk` SSE events decoded into small Structs (only the fields a
surface maps), the feed loop of their stream converters, and the error a
translator raises for a request it cannot map."""

import secrets
from abc import ABC, abstractmethod
from typing import Any

import msgspec

from libs.contracts import errors
from libs.contracts.bus.inference import Usage
from libs.contracts.errors import ErrorBody


class SurfaceError(Exception):
    """A client request that is valid for its surface but cannot be expressed in
    the canonical chat format: the caller answers 400 in the surface's error shape."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = 400
        self.type = errors.INVALID_REQUEST


class Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct):
    index: int = 0  # chunks only
    id: str | None = None
    function: Function = msgspec.field(default_factory=Function)


class ChatMessage(msgspec.Struct):
    # A string from every provider we know; a list of parts from a few (Mistral): see text_of().
    content: str | list[Any] | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: dict[str, int | None] | None = None
    completion_tokens_details: dict[str, int | None] | None = None

    @property
    def cached(self) -> int | None:
        """Cache reads when the provider reported them; None when it said nothing."""
        return (self.prompt_tokens_details or {}).get("cached_tokens")

    @property
    def reasoning(self) -> int:
        return (self.completion_tokens_details or {}).get("reasoning_tokens") or 0


class Choice(msgspec.Struct):
    message: ChatMessage = msgspec.field(default_factory=ChatMessage)
    finish_reason: str | None = None


class Completion(msgspec.Struct):
    id: str = ""
    created: int = 0
    model: str = ""
    choices: list[Choice] = []
    usage: ChatUsage | None = None
    service_tier: str | None = None
    # The gateway's cost/timing object (response_meta.with_meta): carried over untouched
    # so a surface's clients see the same numbers as chat clients; both SDKs ignore it.
    meta: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # empty when absent


class ChunkChoice(msgspec.Struct):
    delta: ChatMessage = msgspec.field(default_factory=ChatMessage)
    finish_reason: str | None = None


class Chunk(msgspec.Struct):
    id: str = ""
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = []
    usage: ChatUsage | None = None


encode = msgspec.json.Encoder().encode
_decode_completion = msgspec.json.Decoder(Completion).decode
_decode_chunk = msgspec.json.Decoder(Chunk).decode


def decode_completion(body: bytes) -> Completion:
    """The `chat.completion` in `body`; raises msgspec.DecodeError if it is not one."""
    return _decode_completion(body)


def text_of(content: str | list[Any] | None) -> str:
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content or ""


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def surface_id(prefix: str, chat_id: str) -> str:
    """A surface object id derived from the chat id, so logs can tie the two together;
    an id that already carries the prefix (Anthropic upstream: chatcmpl-msg_...) is kept."""
    rest = chat_id.removeprefix("chatcmpl-")
    if rest.startswith(prefix):
        return rest
    return prefix + rest if rest else new_id(prefix)


class ChunkReader:
    """Splits the router's SSE bytes into chunks. Events normally arrive whole (the
    provider streams yield complete events), but a partial tail is kept for the next
    feed rather than trusted. `[DONE]` and comments are skipped; a malformed data line
    raises msgspec.DecodeError."""

    def __init__(self) -> None:
        self._buffer = b""

    def chunks(self, events: bytes) -> list[Chunk]:
        self._buffer = (self._buffer + events).replace(b"\r\n", b"\n")
        *complete, self._buffer = self._buffer.split(b"\n\n")
        out: list[Chunk] = []
        for event in complete:
            data = b"\n".join(line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
            if data and data != b"[DONE]":
                out.append(_decode_chunk(data))
        return out


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One named SSE event, as both Anthropic and the Responses API frame them."""
    return b"event: " + event.encode() + b"\ndata: " + encode(data) + b"\n\n"


class StreamConverter(ABC):
    """The loop both stream converters share: chunks in, surface events out.

    The first chunk with a choice starts the surface's stream; text, refusal and
    tool-call deltas go to the subclass in order; the usage-only chunk and `[DONE]`
    yield nothing (the router passes usage to finish()); usage a chunk carries is
    kept as a fallback. finish() writes the closing events once.
    """

    def __init__(self) -> None:
        self._reader = ChunkReader()
        self._started = False
        self._finished = False
        self.finish_reason: str | None = None
        self.chunk_usage: ChatUsage | None = None

    def feed(self, events: bytes) -> bytes:
        """Surface events for one or more chunk events; raises msgspec.DecodeError on a malformed one."""
        out = bytearray()
        for chunk in self._reader.chunks(events):
            if chunk.usage is not None:
                self.chunk_usage = chunk.usage
            if not chunk.choices:
                continue  # the usage-only chunk
            if not self._started:
                self._started = True
                out += self._start(chunk)
            choice = chunk.choices[0]
            text = text_of(choice.delta.content)
            if text:
                out += self._text(text)
            if choice.delta.refusal:
                out += self._refusal(choice.delta.refusal)
            for call in choice.delta.tool_calls or []:
                out += self._tool_call(call)
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        return bytes(out)

    def finish(self, usage: Usage | None = None, finish_reason: str | None = None) -> bytes:
        """The closing events (after a start, if no chunk came); `usage` is what the router
        metered; `finish_reason` defaults to the one the chunks carried. Idempotent."""
        if self._finished:
            return b""
        self._finished = True
        out = b"" if self._started else self._start(Chunk())
        self._started = True
        return out + self._end(usage, finish_reason or self.finish_reason)

    def fail(self, error: ErrorBody, usage: Usage | None = None) -> bytes:
        """The surface's own error event ending a stream that broke off (the provider failed, or
        closed without its end marker) after the client was told 200; `usage` is what was
        delivered, when known. Written instead of finish(), once."""
        if self._finished:
            return b""
        self._finished = True
        out = b"" if self._started else self._start(Chunk())
        self._started = True
        return out + self._failed(error, usage)

    @abstractmethod
    def _start(self, chunk: Chunk) -> bytes: ...

    @abstractmethod
    def _text(self, text: str) -> bytes: ...

    @abstractmethod
    def _refusal(self, text: str) -> bytes: ...

    @abstractmethod
    def _tool_call(self, call: ToolCall) -> bytes: ...

    @abstractmethod
    def _end(self, usage: Usage | None, finish_reason: str | None) -> bytes: ...

    @abstractmethod
    def _failed(self, error: ErrorBody, usage: Usage | None) -> bytes: ...
