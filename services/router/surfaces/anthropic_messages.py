"""The Anthropic Messages surface (`POST /v1/messages`) <-> the canonical OpenAI chat format.

The opposite direction of providers/anthropic_translate.py: here an Anthropic
*client* talks to any provider. Pure translation, no I/O.

Request, Anthropic -> chat (`to_chat_request`), built from an allow-list:

| Anthropic                                 | chat                                                        |
| ----------------------------------------- | ----------------------------------------------------------- |
| `system` string or text blocks            | one leading `system` message (blocks joined with newlines)  |
| `text` block                              | text part (a lone text block becomes a plain string)        |
| `image` block, source base64 / url        | `image_url` part: a `data:` URL / the URL                   |
| `document` block, source text / base64    | text part / `file` part with a `data:` URL                  |
| assistant `tool_use` blocks               | `tool_calls` (arguments = the input as a JSON string)       |
| user `tool_result` blocks                 | `tool` messages, placed first (chat wants them right after  |
|                                           | the tool calls); text joined, `is_error` as an "Error: "    |
|                                           | prefix; images go into the user message that follows        |
| `tools` (custom: name, input_schema)      | function tools (`input_schema` -> `parameters`)             |
| `tool_choice` auto / any / tool / none    | "auto" / "required" / {function: name} / "none"             |
| `disable_parallel_tool_use: true`         | `parallel_tool_calls: false`                                |
| `max_tokens`                              | `max_tokens` (not max_completion_tokens: widest support)    |
| `stop_sequences`                          | `stop`                                                      |
| `temperature`, `top_p`                    | same                                                        |
| `stream: true`                            | `stream` + `stream_options.include_usage` (usage for the    |
|                                           | final message_delta)                                        |
| `metadata.user_id`                        | `user`                                                      |

Refused with SurfaceError (400): server tools (web_search, bash, computer, ...),
content blocks other than those above (search_result, server tool results,
container uploads), image/document sources by file id or document URLs.
Dropped: `top_k` (no chat equivalent), `thinking` and the `thinking` /
`redacted_thinking` blocks clients replay (no provider but Anthropic can use
them), `cache_control`, citations, `service_tier`, `container`, `mcp_servers`.
An assistant prefill (final assistant turn) is sent as history: only Anthropic
continues it, other providers answer anew.

Answer, chat -> Anthropic (`from_chat_response`, `MessagesStream`): content ->
one text block (none when empty: Anthropic refuses empty text blocks if the
client echoes the message back), a refusal -> a text block, tool_calls ->
tool_use blocks (arguments that are not a JSON object arrive as
{"_raw_arguments": "<text>"} rather than being lost). finish_reason -> stop_reason
via the inverse of anthropic_translate.FINISH_REASONS (stop -> end_turn, length ->
max_tokens, tool_calls -> tool_use, content_filter -> refusal); OpenAI does not
say which stop sequence matched, so `stop_sequence` is always null and a stop
sequence reports end_turn. Usage: input_tokens = prompt - cached (Anthropic
counts cache reads apart), cache_read_input_tokens = cached when known.
Reasoning deltas some providers stream (`reasoning_content`) are not shown.
"""

from typing import Any, Final

import msgspec

from libs.contracts.bus.inference import Usage
from libs.contracts.errors import ErrorBody
from libs.contracts.http.messages import (
    MessagesRequest,
    ToolChoiceAny,
    ToolChoiceNone,
    ToolChoiceTool,
    anthropic_error_json,
)
from services.router.providers.anthropic_translate import FINISH_REASONS
from services.router.surfaces._chat import (
    ChatUsage,
    Chunk,
    StreamConverter,
    SurfaceError,
    ToolCall,
    decode_completion,
    encode,
    new_id,
    sse,
    surface_id,
    text_of,
)

# OpenAI finish_reason -> Anthropic stop_reason: the first Anthropic reason listed for
# each OpenAI one (reversed so the first wins), plus the legacy function_call.
STOP_REASONS: Final[dict[str, str]] = {
    **{openai: anthropic for anthropic, openai in reversed(FINISH_REASONS.items())},
    "function_call": "tool_use",
}
_SKIPPED_BLOCKS: Final = frozenset({"thinking", "redacted_thinking"})

_decode_request = msgspec.json.Decoder(MessagesRequest).decode


# --- request: Anthropic -> chat -----------------------------------------------------------------


def to_chat_request(body: bytes) -> bytes:
    """The chat-completions body for an Anthropic Messages body; raises SurfaceError."""
    try:
        req = _decode_request(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise SurfaceError(f"Invalid request body: {exc}") from exc
    messages: list[dict[str, Any]] = []
    system = _system(req.system)
    if system:
        messages.append({"role": "system", "content": system})
    for i, msg in enumerate(req.messages):
        if msg.role == "user":
            messages.extend(_user_turn(msg.content, i))
        else:
            turn = _assistant_turn(msg.content, i)
            if turn is not None:
                messages.append(turn)
    out: dict[str, Any] = {"model": req.model, "messages": messages, "max_tokens": req.max_tokens}
    if req.temperature is not None:
        out["temperature"] = req.temperature
    if req.top_p is not None:
        out["top_p"] = req.top_p
    if req.stop_sequences:
        out["stop"] = req.stop_sequences
    if req.tools:
        out["tools"] = [_tool(tool, i) for i, tool in enumerate(req.tools)]
        # OpenAI refuses tool_choice and parallel_tool_calls without tools, so both go only with them.
        choice = req.tool_choice
        if isinstance(choice, ToolChoiceTool):
            out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif isinstance(choice, ToolChoiceAny):
            out["tool_choice"] = "required"
        elif isinstance(choice, ToolChoiceNone):
            out["tool_choice"] = "none"
        elif choice is not None:
            out["tool_choice"] = "auto"
        if choice is not None and choice.disable_parallel_tool_use and not isinstance(choice, ToolChoiceNone):
            out["parallel_tool_calls"] = False
    if req.metadata is not None and req.metadata.user_id:
        out["user"] = req.metadata.user_id
    if req.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return encode(out)


def _system(system: str | list[dict[str, Any]] | None) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    texts = []
    for i, block in enumerate(system):
        if block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise SurfaceError("system blocks must be text blocks", param=f"system[{i}]")
        texts.append(block["text"])
    return "\n".join(t for t in texts if t)


def _user_turn(content: str | list[dict[str, Any]], i: int) -> list[dict[str, Any]]:
    """Tool messages first (chat needs them right after the assistant's tool calls), then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        if block.get("type") == "tool_result":
            message, images = _tool_result(block, where)
            tools.append(message)
            parts.extend(images)  # chat tool messages carry text only
        else:
            parts.extend(_part(block, where))
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        tools.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return tools


def _part(block: dict[str, Any], where: str) -> list[dict[str, Any]]:
    kind = block.get("type")
    if kind == "text":
        return [{"type": "text", "text": block.get("text") or ""}]
    if kind == "image":
        return [{"type": "image_url", "image_url": {"url": _source_url(block.get("source"), where)}}]
    if kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "text":
            return [{"type": "text", "text": source.get("data") or ""}]
        if source.get("type") == "base64":
            return [{"type": "file", "file": {"filename": block.get("title") or "document.pdf",
                                              "file_data": _source_url(source, where)}}]
        raise SurfaceError("document blocks must have a text or base64 source", param=where)
    if kind in _SKIPPED_BLOCKS:
        return []
    raise SurfaceError(f"content block type {kind!r} is not supported by this gateway", param=where)


def _source_url(source: Any, where: str) -> str:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and source.get("media_type") and isinstance(source.get("data"), str):
        return f"data:{source['media_type']};base64,{source['data']}"
    if kind == "url" and isinstance(source.get("url"), str):
        return source["url"]
    raise SurfaceError("image sources must be base64 (media_type, data) or url", param=f"{where}.source")


def _tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not isinstance(block.get("tool_use_id"), str):
        raise SurfaceError("tool_result blocks need a tool_use_id", param=where)
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    for j, part in enumerate(content if isinstance(content, list) else []):
        for converted in _part(part, f"{where}.content[{j}]"):
            if converted["type"] == "text":
                texts.append(converted["text"])
            else:
                images.append(converted)
    text = "\n".join(t for t in texts if t)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"  # chat has no error flag: say it in the text
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}, images


def _assistant_turn(content: str | list[dict[str, Any]], i: int) -> dict[str, Any] | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content} if content else None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise SurfaceError("tool_use blocks need an id and a name", param=f"messages[{i}].content[{j}]")
            arguments = encode(block.get("input") or {}).decode()
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": arguments}})
        elif kind not in _SKIPPED_BLOCKS:
            raise SurfaceError(f"assistant content block type {kind!r} is not supported by this gateway",
                               param=f"messages[{i}].content[{j}]")
    text = "".join(texts)
    if not text and not calls:
        return None  # e.g. only thinking blocks: chat refuses an assistant message with neither
    turn: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        turn["tool_calls"] = calls
    return turn


def _tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    if tool.get("type") not in (None, "custom") or not isinstance(tool.get("name"), str):
        raise SurfaceError(f"tool type {tool.get('type')!r} is not supported by this gateway: "
                           "only custom tools (name, input_schema) can be routed to any provider",
                           param=f"tools[{i}]")
    fn: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        fn["description"] = tool["description"]
    fn["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    return {"type": "function", "function": fn}


# --- answer: chat -> Anthropic ------------------------------------------------------------------


def from_chat_response(body: bytes) -> bytes:
    """The Anthropic `message` for a `chat.completion` body; raises msgspec.DecodeError if it is not one."""
    completion = decode_completion(body)
    choice = completion.choices[0] if completion.choices else None
    content: list[dict[str, Any]] = []
    if choice is not None:
        text = text_of(choice.message.content) or choice.message.refusal or ""
        if text:
            content.append({"type": "text", "text": text})
        content.extend(_tool_use(call) for call in choice.message.tool_calls or [])
    out: dict[str, Any] = {
        "id": surface_id("msg_", completion.id),
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason if choice else None),
        "stop_sequence": None,
        "usage": _chat_usage(completion.usage),
    }
    if len(completion.meta):
        out["meta"] = completion.meta
    return encode(out)


def stop_reason(finish_reason: str | None) -> str:
    return STOP_REASONS.get(finish_reason or "", "end_turn")


def _tool_use(call: ToolCall) -> dict[str, Any]:
    raw = call.function.arguments or "{}"
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        value = None
    # Anthropic's input is always an object; keep a model's malformed arguments visible instead of losing them.
    tool_input = value if isinstance(value, dict) else {"_raw_arguments": raw}
    return {"type": "tool_use", "id": call.id or new_id("toolu_"), "name": call.function.name or "",
            "input": tool_input}


def _chat_usage(usage: ChatUsage | None) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return _usage(usage.prompt_tokens, usage.completion_tokens, usage.cached)


def _usage(prompt: int, completion: int, cached: int | None) -> dict[str, int]:
    # OpenAI's prompt count includes cache reads; Anthropic's input_tokens does not.
    out = {"input_tokens": max(prompt - (cached or 0), 0), "output_tokens": completion}
    if cached is not None:
        out["cache_read_input_tokens"] = cached
    return out


class MessagesStream(StreamConverter):
    """Turns the router's `chat.completion.chunk` SSE bytes into Anthropic stream events.

    The first chunk with a choice -> message_start (usage zeros: the counts arrive
    only at the end); text (and refusal) -> a text block (content_block_start,
    text_delta..., content_block_stop); each tool call -> a tool_use block (id, name,
    input {}) with one input_json_delta per arguments fragment. A new block closes
    the open one. `finish()` closes the open block and writes message_delta
    (stop_reason, usage) and message_stop; `fail()` writes Anthropic's `error` event instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self._index = -1  # Anthropic index of the newest block
        self._open: str | None = None  # "text" or "tool": the kind of the open block, if one is open
        self._tools: dict[int, tuple[int, str]] = {}  # OpenAI tool_calls index -> (block index, call id)

    def _start(self, chunk: Chunk) -> bytes:
        message = {"id": surface_id("msg_", chunk.id), "type": "message", "role": "assistant", "model": chunk.model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0}}
        return sse("message_start", {"type": "message_start", "message": message})

    def _end(self, usage: Usage | None, finish_reason: str | None) -> bytes:
        out = self._close()
        if usage is not None:
            counts = _usage(usage.input_units, usage.output_units, usage.cached_units)
        else:
            counts = _chat_usage(self.chunk_usage)
        delta = {"stop_reason": stop_reason(finish_reason), "stop_sequence": None}
        out += sse("message_delta", {"type": "message_delta", "delta": delta, "usage": counts})
        return out + sse("message_stop", {"type": "message_stop"})

    def _failed(self, error: ErrorBody, usage: Usage | None) -> bytes:
        # Anthropic's mid-stream error event (e.g. overloaded_error): the SDK raises on it.
        return b"event: error\ndata: " + anthropic_error_json(error.code, error.message) + b"\n\n"

    def _text(self, text: str) -> bytes:
        out = b""
        if self._open != "text":
            out += self._start_block("text", {"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": text}
        return out + sse("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def _refusal(self, text: str) -> bytes:
        return self._text(text)  # Anthropic has no refusal block: the model's words are text

    def _tool_call(self, call: ToolCall) -> bytes:
        out = b""
        index, call_id = self._tools.get(call.index, (None, None))
        # A new id at a known index is a new call: some providers omit `index` (so 0) on every call.
        if index is None or (call.id and call.id != call_id):
            call_id = call.id or new_id("toolu_")
            block = {"type": "tool_use", "id": call_id, "name": call.function.name or "", "input": {}}
            out += self._start_block("tool", block)
            index = self._index
            self._tools[call.index] = (index, call_id)
        # No provider we know interleaves parallel calls; if one did, a fragment for an
        # earlier call still goes to that call's block (the SDK accumulates by index).
        if call.function.arguments:
            delta = {"type": "input_json_delta", "partial_json": call.function.arguments}
            out += sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        return out

    def _start_block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._index += 1
        self._open = kind
        return out + sse("content_block_start",
                         {"type": "content_block_start", "index": self._index, "content_block": block})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return sse("content_block_stop", {"type": "content_block_stop", "index": self._index})
