"""OpenAI chat completions <-> Anthropic Messages: pure translation, no I/O.

Request, OpenAI -> Anthropic (`to_anthropic_request`); the Anthropic body is built
from an allow-list, so a field not named here is never sent:

| OpenAI                                   | Anthropic                                                   |
| ---------------------------------------- | ----------------------------------------------------------- |
| `model` (gateway slug)                   | `model` = the catalog's upstream name                       |
| system / developer messages (anywhere)   | top-level `system`: a string, or text blocks when several   |
| user / assistant `content` string        | the message's content (a string when it is one text block)  |
| part `text`                              | `{"type":"text"}` block (empty text is dropped)             |
| part `image_url` `data:<type>;base64,..` | `{"type":"image","source":{"type":"base64",...}}`           |
| part `image_url` `http(s)://...`         | `{"type":"image","source":{"type":"url","url":...}}`        |
| assistant `tool_calls`                   | `tool_use` blocks (id, name, input = parsed arguments)      |
| `tool` messages                          | `tool_result` blocks in a user turn                         |
| consecutive same-role turns              | merged into one turn (Anthropic requires alternation)       |
| `tools[].function`                       | `{"name","description","input_schema"}`                     |
| `tool_choice` auto/required/none/{fn}    | `{"type":"auto"}` / `any` / `none` / `{"type":"tool",name}` |
|                                          | (sent only with tools, as Anthropic accepts it only then)   |
| `parallel_tool_calls: false`             | `tool_choice.disable_parallel_tool_use: true`               |
| `max_completion_tokens` or `max_tokens`  | `max_tokens` (required there: default 4096)                 |
| `temperature` (OpenAI 0..2)              | `temperature` clamped to Anthropic's 0..1                   |
| `top_p`, `stream`                        | same                                                        |
| `stop` (string or list)                  | `stop_sequences` (list)                                     |
| `user`                                   | `metadata.user_id`                                          |
| `response_format` json_object/json_schema| no native equivalent: a system instruction asking for JSON  |
|                                          | only (and quoting the schema); the output is not enforced   |

Refused with a 400 (UpstreamError kind "malformed"): `n` > 1, `logprobs`, the
legacy `functions`/`function_call`, non-function tools, audio output, content
parts other than text and image (audio, files), images that are neither a base64
data URL nor http(s), and tool-call arguments that are not a JSON object.
Dropped, having no Anthropic equivalent and not changing what a valid answer looks
like: `seed`, `frequency_penalty`, `presence_penalty`, `logit_bias`, `store`,
`service_tier`, OpenAI `metadata`, `stream_options` (Anthropic always reports usage),
`prediction`, `reasoning_effort`, message `name`, image `detail`, tool `strict`.

Answer, Anthropic -> OpenAI (`to_openai_completion`, `StreamTranslator`): text
blocks concatenated into `content` (null when there are none), `tool_use` blocks
into `tool_calls` (arguments = the input as a JSON string); other blocks
(thinking, server tools) are not shown. stop_reason end_turn/stop_sequence ->
"stop", max_tokens -> "length", tool_use -> "tool_calls", refusal ->
"content_filter". Usage: prompt_tokens = input + cache_read + cache_creation
tokens (OpenAI's prompt count includes cached tokens), cached_tokens = cache
reads; cache writes are billed at the plain input price.
"""

import time
from typing import Any, Final

import msgspec

from libs.contracts.bus.inference import Usage
from services.router.providers.base import UpstreamError

DEFAULT_MAX_TOKENS: Final = 4096
FINISH_REASONS: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
JSON_INSTRUCTION: Final = (
    "Respond with one valid JSON object and nothing else: no prose before or after it, no Markdown code fences."
)

_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.decode


def _refuse(message: str) -> UpstreamError:
    return UpstreamError("malformed", message, status=400)


# --- request: OpenAI -> Anthropic -----------------------------------------------------------


def to_anthropic_request(body: bytes, upstream_model: str, stream: bool) -> dict[str, Any]:
    """The Anthropic Messages body for the client's OpenAI chat-completions body."""
    try:
        req = _decode_any(body)
    except msgspec.DecodeError as exc:
        raise _refuse("request body is not a JSON object") from exc
    if not isinstance(req, dict):
        raise _refuse("request body is not a JSON object")
    _check_unsupported(req)
    messages = req.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _refuse("'messages' must be an array of message objects")

    system, turns = _messages(messages)
    instruction = _response_format_instruction(req.get("response_format"))
    if instruction:
        system.append(instruction)
    out: dict[str, Any] = {"model": upstream_model, "messages": turns}
    if system:
        out["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": s} for s in system]
    limit = req.get("max_completion_tokens")
    if limit is None:
        limit = req.get("max_tokens")
    out["max_tokens"] = DEFAULT_MAX_TOKENS if limit is None else limit
    temperature = req.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        out["temperature"] = min(1.0, max(0.0, float(temperature)))
    if req.get("top_p") is not None:
        out["top_p"] = req["top_p"]
    stop = req.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = stop
    if req.get("tools"):
        out["tools"] = _tools(req["tools"])
        choice = _tool_choice(req.get("tool_choice"), req.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if isinstance(req.get("user"), str) and req["user"]:
        out["metadata"] = {"user_id": req["user"]}
    if stream:
        out["stream"] = True
    return out


def _check_unsupported(req: dict[str, Any]) -> None:
    n = req.get("n")
    if n is not None and n != 1:
        raise _refuse(f"'n' = {n} is not supported for Anthropic models: they return one choice per request. "
                      "Send n separate requests instead.")
    if req.get("logprobs") or req.get("top_logprobs"):
        raise _refuse("'logprobs' is not supported for Anthropic models")
    if req.get("functions") or req.get("function_call"):
        raise _refuse("the legacy 'functions'/'function_call' fields are not supported for Anthropic models; "
                      "use 'tools' and 'tool_choice'")
    modalities = req.get("modalities")
    if req.get("audio") or (isinstance(modalities, list) and "audio" in modalities):
        raise _refuse("audio output is not supported for Anthropic models")


def _messages(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for i, msg in enumerate(messages):
        role = msg.get("role")
        content = msg.get("content")
        if role in ("system", "developer"):
            text = _plain_text(content, i)
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _content_blocks(content, i)
        elif role == "assistant":
            blocks = _content_blocks(content, i) + _tool_uses(msg.get("tool_calls"), i)
        elif role == "tool":
            role = "user"
            blocks = [_tool_result(msg, i)]
        else:
            raise _refuse(f"messages[{i}]: role {role!r} is not supported for Anthropic models")
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return system, [{"role": role, "content": _collapse(blocks)} for role, blocks in turns]


def _collapse(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A turn that is a single text block is sent as a plain string, as a client would write it."""
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return blocks[0]["text"]
    return blocks


def _plain_text(content: Any, i: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(b["text"] for b in _content_blocks(content, i) if b["type"] == "text")


def _content_blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _refuse(f"messages[{i}].content must be a string or an array of content parts")
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if isinstance(text, str) and text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), i))
        else:
            raise _refuse(f"messages[{i}]: content part type {kind!r} is not supported for Anthropic models")
    return blocks


def _image(image: Any, i: int) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise _refuse(f"messages[{i}]: image_url needs a 'url'")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not comma or encoding != "base64" or not media_type:
            raise _refuse(f"messages[{i}]: an image data URL must look like data:<media type>;base64,<data>")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _refuse(f"messages[{i}]: an image must be a base64 data URL or an http(s) URL")


def _tool_uses(tool_calls: Any, i: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for call in tool_calls or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _refuse(f"messages[{i}].tool_calls: each call needs a function name")
        arguments = fn.get("arguments") or "{}"
        try:
            value = _decode_any(arguments) if isinstance(arguments, str) else arguments
        except msgspec.DecodeError:
            value = None
        if not isinstance(value, dict):
            raise _refuse(f"messages[{i}].tool_calls: arguments of {fn['name']!r} must be a JSON object")
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn["name"], "input": value})
    return blocks


def _tool_result(msg: dict[str, Any], i: int) -> dict[str, Any]:
    content = msg.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id")}
    if isinstance(content, list):
        block["content"] = _content_blocks(content, i)
    elif content:
        block["content"] = str(content)
    return block


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _refuse("'tools' must be an array")
    out: list[dict[str, Any]] = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _refuse("only function tools with a name are supported for Anthropic models")
        entry: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            entry["description"] = fn["description"]
        entry["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        out: dict[str, Any] | None = None
    elif choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise _refuse(f"'tool_choice' {choice!r} is not supported for Anthropic models")
    if parallel is False and (out is None or out["type"] != "none"):
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def _response_format_instruction(response_format: Any) -> str | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return JSON_INSTRUCTION
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        name = f" named {spec['name']!r}" if isinstance(spec, dict) and spec.get("name") else ""
        if schema is None:
            return JSON_INSTRUCTION
        return f"{JSON_INSTRUCTION} It must conform to this JSON Schema{name}: {_encode(schema).decode()}"
    return None


# --- answer: Anthropic -> OpenAI ------------------------------------------------------------


class AnthropicUsage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None

    def merged(self, later: "AnthropicUsage | None") -> "AnthropicUsage":
        """These counts, overridden by those `later` reports (message_delta carries the final ones)."""
        if later is None:
            return self
        fields = {f: getattr(later, f) for f in self.__struct_fields__ if getattr(later, f) is not None}
        return msgspec.structs.replace(self, **fields)


class Block(msgspec.Struct):
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None


class Message(msgspec.Struct):
    id: str
    model: str
    content: list[Block] = []
    stop_reason: str | None = None
    usage: AnthropicUsage = msgspec.field(default_factory=AnthropicUsage)


_decode_message = msgspec.json.Decoder(Message).decode


def openai_usage(usage: AnthropicUsage) -> tuple[dict[str, Any], Usage]:
    """OpenAI's `usage` object and the gateway's Usage for Anthropic's counts."""
    cached = usage.cache_read_input_tokens or 0
    prompt = (usage.input_tokens or 0) + cached + (usage.cache_creation_input_tokens or 0)
    completion = usage.output_tokens or 0
    body = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    return body, Usage(input_units=prompt, output_units=completion, cached_units=cached)


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "", "stop")


def _tool_call(block: Block) -> dict[str, Any]:
    arguments = _encode(block.input if block.input is not None else {}).decode()
    return {"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}}


def to_openai_completion(data: bytes) -> tuple[bytes, Usage]:
    """The `chat.completion` body for an Anthropic message; raises msgspec.DecodeError if it is not one."""
    msg = _decode_message(data)
    texts = [b.text or "" for b in msg.content if b.type == "text"]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    calls = [_tool_call(b) for b in msg.content if b.type == "tool_use"]
    if calls:
        message["tool_calls"] = calls
    usage_body, usage = openai_usage(msg.usage)
    body = {
        "id": "chatcmpl-" + msg.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": msg.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(msg.stop_reason)}
        ],
        "usage": usage_body,
    }
    return _encode(body), usage


# --- stream: Anthropic SSE events -> OpenAI chunks ------------------------------------------


class _Delta(msgspec.Struct):
    type: str
    text: str | None = None
    partial_json: str | None = None


class _StopDelta(msgspec.Struct):
    stop_reason: str | None = None


class _ErrorBody(msgspec.Struct):
    type: str = "error"
    message: str = ""


class _Event(msgspec.Struct, tag_field="type"):
    pass


class _MessageStart(_Event, tag="message_start"):
    message: Message


class _BlockStart(_Event, tag="content_block_start"):
    index: int
    content_block: Block


class _BlockDelta(_Event, tag="content_block_delta"):
    index: int
    delta: _Delta


class _BlockStop(_Event, tag="content_block_stop"):
    index: int = 0


class _MessageDelta(_Event, tag="message_delta"):
    delta: _StopDelta = msgspec.field(default_factory=_StopDelta)
    usage: AnthropicUsage | None = None


class _MessageStop(_Event, tag="message_stop"):
    pass


class _Ping(_Event, tag="ping"):
    pass


class _Error(_Event, tag="error"):
    error: _ErrorBody = msgspec.field(default_factory=_ErrorBody)


_decode_event = msgspec.json.Decoder(
    _MessageStart | _BlockStart | _BlockDelta | _BlockStop | _MessageDelta | _MessageStop | _Ping | _Error
).decode
STREAM_EVENTS: Final = frozenset(
    {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
     "message_stop", "ping", "error"}
)
# Anthropic's error types as HTTP statuses, for an `error` event that arrives mid-stream.
ERROR_STATUS: Final = {
    "invalid_request_error": 400, "authentication_error": 401, "permission_error": 403, "not_found_error": 404,
    "request_too_large": 413, "rate_limit_error": 429, "api_error": 500, "timeout_error": 504,
    "overloaded_error": 529,
}


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI `chat.completion.chunk` events, one at a time.

    message_start -> a role chunk; a text block's deltas -> content deltas; a tool_use
    block -> a tool_calls delta (index, id, type, name, arguments "") and its
    input_json_delta fragments -> arguments deltas; message_delta -> a chunk with the
    finish_reason. ping, content_block_stop, message_stop and unknown events yield
    nothing; `error` raises UpstreamError. The usage chunk is built by `usage_chunk()`.
    """

    def __init__(self) -> None:
        self.head: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "created": int(time.time()),
                                     "model": ""}
        self.usage = AnthropicUsage()
        self.stopped = False  # message_stop seen: the stream's end marker
        self.pieces = 0  # text and tool-argument deltas translated
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index

    def feed(self, name: str | None, data: bytes) -> bytes:
        """The OpenAI SSE event(s) for one Anthropic event; raises msgspec.DecodeError if it is malformed."""
        if name is not None and name not in STREAM_EVENTS:
            return b""  # Anthropic may add event types; unknown ones are skipped, as its docs ask
        event = _decode_event(data)
        if isinstance(event, _MessageStart):
            self.head["id"] = "chatcmpl-" + event.message.id
            self.head["model"] = event.message.model
            self.usage = event.message.usage
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, _BlockStart):
            block = event.content_block
            if block.type == "text":
                return self._chunk({"content": block.text}) if block.text else b""
            if block.type == "tool_use":
                index = self._tool_index[event.index] = len(self._tool_index)
                call = {"index": index, "id": block.id, "type": "function",
                        "function": {"name": block.name, "arguments": ""}}
                return self._chunk({"tool_calls": [call]})
            return b""
        if isinstance(event, _BlockDelta):
            delta = event.delta
            if delta.type == "text_delta" and delta.text:
                self.pieces += 1
                return self._chunk({"content": delta.text})
            if delta.type == "input_json_delta" and delta.partial_json and event.index in self._tool_index:
                self.pieces += 1
                call = {"index": self._tool_index[event.index], "function": {"arguments": delta.partial_json}}
                return self._chunk({"tool_calls": [call]})
            return b""
        if isinstance(event, _MessageDelta):
            self.usage = self.usage.merged(event.usage)
            return self._chunk({}, finish_reason(event.delta.stop_reason))
        if isinstance(event, _MessageStop):
            self.stopped = True
        elif isinstance(event, _Error):
            status = ERROR_STATUS.get(event.error.type)
            message = f"{event.error.type}: {event.error.message}" if event.error.message else event.error.type
            raise UpstreamError("connection" if status is None else "status", message, status=status)
        return b""

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + _encode({**self.head, "choices": [choice]}) + b"\n\n"

    def delivered(self) -> Usage:
        """The usage of a stream that broke off: the counts reported so far (message_start's), with
        at least one output token per delta translated (Anthropic sends the final count at the end)."""
        usage = openai_usage(self.usage)[1]
        return msgspec.structs.replace(usage, output_units=max(usage.output_units, self.pieces))

    def usage_chunk(self) -> tuple[bytes, Usage]:
        """The withheld tail's usage-only chunk (JSON, no `data:` framing) and the gateway's Usage."""
        body, usage = openai_usage(self.usage)
        return _encode({**self.head, "choices": [], "usage": body}), usage
