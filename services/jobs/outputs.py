"""What a model answered, as text: the string an eval scores and a replay compares.

The router hands its answer over in OpenAI shape (see libs/contracts/bus/snapshots.py):
a `chat.completion` JSON body, or, when streamed, the raw SSE bytes of
`chat.completion.chunk` events. Only the first choice counts. An answer made only of
tool calls is rendered as compact JSON, `[{"name": ..., "arguments": ...}]`, so the
scorers can match or validate it like any other text.

Bodies come from upstreams we do not control, so nothing here raises: a body that is
not an answer yields empty text.
"""

from typing import Any

import msgspec


class Answer(msgspec.Struct, frozen=True):
    text: str = ""
    finish_reason: str | None = None


# The decoding Structs name only the fields read here; anything else, such as the
# gateway's top-level `meta` object or `usage`, is ignored by msgspec.


class _Function(msgspec.Struct):
    name: str | None = None
    # A JSON string on the OpenAI wire; a few OpenAI-compatible servers send the object itself.
    arguments: str | dict[str, Any] | None = None


class _ToolCall(msgspec.Struct):
    index: int = 0  # chunks only: which call a fragment belongs to
    function: _Function | None = None


class _Message(msgspec.Struct):
    # A string from OpenAI; a list of parts from a few providers (Mistral).
    content: str | list[Any] | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    message: _Message | None = None  # a chat.completion
    delta: _Message | None = None  # a chat.completion.chunk
    finish_reason: str | None = None


class _Body(msgspec.Struct):
    choices: list[_Choice] | None = None


class _RenderedCall(msgspec.Struct):
    name: str
    arguments: Any


# What decoding untrusted JSON can raise: a DecodeError, a ValidationError (a wrong type, a number
# out of range), or RecursionError for nesting deeper than msgspec's limit.
_BAD_JSON = (msgspec.MsgspecError, RecursionError)
_decode_body = msgspec.json.Decoder(_Body).decode
_encode = msgspec.json.Encoder().encode


def _text_of(content: str | list[Any] | None) -> str:
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return content or ""


def _arguments(raw: str | dict[str, Any] | None) -> Any:
    """Arguments as a JSON value, so the rendering nests them rather than quoting a string;
    arguments that are not JSON (a stream cut short) are kept as the string they are."""
    if not isinstance(raw, str):
        return raw if raw is not None else {}
    try:
        return msgspec.json.decode(raw)
    except _BAD_JSON:
        return raw


def _render(calls: list[tuple[str, str | dict[str, Any] | None]]) -> str:
    return _encode([_RenderedCall(name, _arguments(arguments)) for name, arguments in calls]).decode()


def _compose(content: str, refusal: str, calls: list[tuple[str, str | dict[str, Any] | None]],
             finish_reason: str | None) -> Answer:
    # Text wins: a model that says something and calls a tool answered with what it said.
    if content.strip():
        return Answer(content, finish_reason)
    if calls:
        return Answer(_render(calls), finish_reason)
    return Answer(refusal or content, finish_reason)


def _completion_answer(body: bytes) -> Answer:
    try:
        choices = _decode_body(body).choices
    except _BAD_JSON:
        return Answer()
    first = choices[0] if choices else None
    if first is None or first.message is None:
        return Answer()
    message = first.message
    calls = [(c.function.name or "", c.function.arguments) for c in message.tool_calls or [] if c.function]
    return _compose(_text_of(message.content), message.refusal or "", calls, first.finish_reason)


def _data_lines(body: bytes) -> list[bytes]:
    """The payloads of the stream's data lines, skipping those of a named event other than
    "message" (the gateway's `event: error`, say): they are not chunks of the answer."""
    out: list[bytes] = []
    event = b""
    for line in body.splitlines():
        if not line:
            event = b""  # a blank line ends the event, and with it its name
        elif line.startswith(b"event:"):
            event = line[6:].strip()
        elif line.startswith(b"data:") and event in (b"", b"message"):
            out.append(line[5:].strip())
    return out


class _CallParts:
    """One streamed tool call being assembled from its fragments."""

    __slots__ = ("arguments", "name")

    def __init__(self) -> None:
        self.name = ""
        self.arguments: str | dict[str, Any] | None = None

    def add(self, function: _Function) -> None:
        # OpenAI sends the name once, in the call's first fragment; some compatible servers
        # repeat it on every fragment, so the first one is kept rather than concatenated.
        if function.name and not self.name:
            self.name = function.name
        fragment = function.arguments
        if isinstance(fragment, dict):
            self.arguments = fragment
        elif fragment:
            self.arguments = (self.arguments if isinstance(self.arguments, str) else "") + fragment


def _stream_answer(body: bytes) -> Answer:
    content: list[str] = []
    refusal: list[str] = []
    calls: dict[int, _CallParts] = {}
    finish_reason: str | None = None
    for data in _data_lines(body):
        if data == b"[DONE]":
            continue
        try:
            choices = _decode_body(data).choices
        except _BAD_JSON:
            continue  # one odd line must not lose the rest of the answer
        for choice in choices or []:
            if choice.index != 0:
                continue  # with n > 1 the choices' chunks interleave; only the first is the answer
            if choice.finish_reason is not None:
                finish_reason = choice.finish_reason
            delta = choice.delta
            if delta is None:
                continue
            content.append(_text_of(delta.content))
            if delta.refusal:
                refusal.append(delta.refusal)
            for call in delta.tool_calls or []:
                if call.function is not None:
                    calls.setdefault(call.index, _CallParts()).add(call.function)
    ordered = [(calls[i].name, calls[i].arguments) for i in sorted(calls)]
    return _compose("".join(content), "".join(refusal), ordered, finish_reason)


def answer_of(body: bytes, streamed: bool) -> Answer:
    """The first choice's answer in `body`: a chat.completion, or chat.completion.chunk SSE
    bytes when `streamed`. Never raises; a body that holds no answer gives empty text."""
    return _stream_answer(body) if streamed else _completion_answer(body)
