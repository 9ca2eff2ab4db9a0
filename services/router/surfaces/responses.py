"""The OpenAI Responses surface (`POST /v1/responses`) <-> the canonical OpenAI chat format.

Pure translation, no I/O; stateless, so nothing that needs a stored response works.

Request, Responses -> chat (`to_chat_request`), built from an allow-list:

| Responses                                     | chat                                                |
| --------------------------------------------- | --------------------------------------------------- |
| `instructions`                                | a leading `system` message                          |
| `input` string                                | one user message                                    |
| message items (role user/assistant/system/    | messages (developer -> system: widest support);     |
| developer; string or parts)                   | input_text/output_text -> text, input_image ->      |
|                                               | image_url, input_file (data or id) -> file part     |
| `function_call` items                         | assistant `tool_calls` (merged into the assistant   |
|                                               | message just before, as chat keeps one turn)        |
| `function_call_output` items                  | `tool` messages (text parts joined; images go into  |
|                                               | a user message right after the tool messages)       |
| `tools` (flat function tools)                 | `{"type":"function","function":{...}}`              |
| `tool_choice` none/auto/required/{function}   | same values / `{"type":"function","function":...}`  |
| `max_output_tokens`                           | `max_tokens` (widest provider support)              |
| `text.format` json_schema / json_object       | `response_format`                                   |
| `reasoning.effort`                            | `reasoning_effort`                                  |
| `stream: true`                                | `stream` + `stream_options.include_usage`           |
| `parallel_tool_calls`, `temperature`, `top_p`,| same                                                |
| `user`                                        |                                                     |

Refused with SurfaceError (400): `previous_response_id`, `conversation`,
`background`, `item_reference` items (all need stored responses), hosted tools
(web_search, file_search, computer, mcp, code_interpreter, custom, ...) and
tool_choice values naming them, images by file id, other item and part types.
Dropped: `reasoning` items (replayed output only OpenAI could use), `store`
(nothing is stored: answers say `store: false`), `metadata` (echoed in the
answer, not sent upstream), `include`, `truncation`, `top_logprobs`,
`prompt_cache_key`, `safety_identifier`, `service_tier`, `text.verbosity`,
tool `strict` when unset (the Responses API's default strictness is not applied).

Answer, chat -> Responses (`from_chat_response`, `ResponsesStream`): a `response`
object whose output holds a message item (output_text; a refusal -> a refusal
part) when there is text, then one function_call item per tool call. finish_reason
length -> status "incomplete" (reason max_output_tokens), content_filter ->
"incomplete" (reason content_filter); a stream then ends with
`response.incomplete`, as OpenAI's does, instead of `response.completed`.
Request parameters the object echoes (tools, tool_choice, instructions, text, ...)
come from the client's request when it is passed in. `output_text` is not a wire
field: the SDK computes it.
"""

import time
from typing import Any, Final

import msgspec

from libs.contracts.bus.inference import Usage
from libs.contracts.errors import ErrorBody
from libs.contracts.http.responses import FormatJsonObject, FormatJsonSchema, ResponsesRequest
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

_INCOMPLETE: Final = {"length": "max_output_tokens", "content_filter": "content_filter"}
_ROLES: Final = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_decode_request = msgspec.json.Decoder(ResponsesRequest).decode


# --- request: Responses -> chat -----------------------------------------------------------------


def to_chat_request(body: bytes) -> bytes:
    """The chat-completions body for a Responses body; raises SurfaceError."""
    try:
        req = _decode_request(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise SurfaceError(f"Invalid request body: {exc}") from exc
    for field in ("previous_response_id", "conversation", "background"):
        if getattr(req, field):
            raise SurfaceError(f"'{field}' is not supported: this gateway stores no responses; "
                               "send the whole conversation in 'input'", param=field)
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        messages.append({"role": "user", "content": req.input})
    else:
        messages.extend(_items(req.input))
    out: dict[str, Any] = {"model": req.model, "messages": messages}
    for field, chat_field in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"),
                              ("top_p", "top_p"), ("user", "user")):
        if getattr(req, field) is not None:
            out[chat_field] = getattr(req, field)
    if req.tools:
        out["tools"] = [_tool(tool, i) for i, tool in enumerate(req.tools)]
        # OpenAI refuses both without tools, so they go only with them.
        if req.tool_choice is not None:
            out["tool_choice"] = _tool_choice(req.tool_choice)
        if req.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = req.parallel_tool_calls
    fmt = req.text.format if req.text is not None else None
    if isinstance(fmt, FormatJsonSchema):  # flat in Responses, nested under json_schema in chat
        spec = {k: v for k, v in msgspec.structs.asdict(fmt).items() if v is not None}
        out["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif isinstance(fmt, FormatJsonObject):
        out["response_format"] = {"type": "json_object"}
    if req.reasoning and isinstance(req.reasoning.get("effort"), str):
        out["reasoning_effort"] = req.reasoning["effort"]
    if req.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return encode(out)


def _items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deferred: list[dict[str, Any]] = []  # images from tool outputs: a user message after the tool messages
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind != "function_call_output" and deferred:
            messages.append({"role": "user", "content": deferred})
            deferred = []
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            if not isinstance(item.get("call_id"), str) or not isinstance(item.get("name"), str):
                raise SurfaceError("function_call items need a call_id and a name", param=where)
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"}}
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise SurfaceError("function_call_output items need a call_id", param=where)
            text, images = _output(item.get("output"), where)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
            deferred.extend(images)
        elif kind != "reasoning":
            raise SurfaceError(f"input item type {kind!r} is not supported by this gateway", param=where)
    if deferred:
        messages.append({"role": "user", "content": deferred})
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise SurfaceError(f"message role {item.get('role')!r} is not supported", param=f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise SurfaceError("message content must be a string or a list of parts", param=f"{where}.content")
    parts = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    if role != "user" or (len(parts) == 1 and parts[0]["type"] == "text"):
        # System and assistant turns as plain text: not every provider takes parts there.
        if any(p["type"] != "text" for p in parts):
            raise SurfaceError(f"{item.get('role')} messages can hold text only", param=f"{where}.content")
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text") or ""}
    if kind == "refusal":
        return {"type": "text", "text": part.get("refusal") or ""}
    if kind == "input_image":
        if not isinstance(part.get("image_url"), str):
            raise SurfaceError("input_image needs an image_url (data or http(s) URL); file_id is not supported",
                               param=where)
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and (part.get("file_data") or part.get("file_id")):
        file = {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k)}
        return {"type": "file", "file": file}
    raise SurfaceError(f"content part type {kind!r} is not supported by this gateway", param=where)


def _output(output: Any, where: str) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(output, str):
        return output, []
    if not isinstance(output, list):
        raise SurfaceError("function_call_output.output must be a string or a list of parts", param=where)
    parts = [_part(part, f"{where}.output[{j}]") for j, part in enumerate(output)]
    return "\n".join(p["text"] for p in parts if p["type"] == "text"), [p for p in parts if p["type"] != "text"]


def _tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    if tool.get("type") != "function" or not isinstance(tool.get("name"), str):
        raise SurfaceError(f"tool type {tool.get('type')!r} is not supported by this gateway: only function "
                           "tools can be routed to any provider", param=f"tools[{i}]")
    fn: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        fn["description"] = tool["description"]
    fn["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
    if tool.get("strict") is not None:
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise SurfaceError(f"tool_choice {choice!r} is not supported: use none, auto, required or a function",
                       param="tool_choice")


# --- answer: chat -> Responses ------------------------------------------------------------------


def _request(request: bytes | None) -> dict[str, Any]:
    req = msgspec.json.decode(request) if request else {}
    return req if isinstance(req, dict) else {}


def _echo_tool(tool: Any) -> Any:
    """A function tool as the `response` object lists it: `strict` and `parameters` are required
    there. `strict` unset is sent upstream as unset, i.e. not strict, so that is what is echoed."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool
    return {**tool, "parameters": tool.get("parameters"), "strict": bool(tool.get("strict"))}


def _echo(req: dict[str, Any]) -> dict[str, Any]:
    """The request parameters a `response` object repeats, with OpenAI's defaults. Fields the
    schema does not let be null (`user`) are left out when the client did not send them."""
    reasoning = req.get("reasoning") if isinstance(req.get("reasoning"), dict) else {}
    tools = req.get("tools") if isinstance(req.get("tools"), list) else []
    echo = {
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "metadata": req.get("metadata") or {},
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": False,  # never stored, whatever the client asked: nothing can refer to it later
        "temperature": req.get("temperature"),
        "text": req.get("text") or {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice") or "auto",
        "tools": [_echo_tool(tool) for tool in tools],
        "top_p": req.get("top_p"),
        "truncation": "disabled",
    }
    if isinstance(req.get("user"), str):
        echo["user"] = req["user"]
    return echo


def _response(echo: dict[str, Any], rid: str, created: int, model: str, status: str, finish: str | None,
              output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
    reason = _INCOMPLETE.get(finish or "") if status != "in_progress" else None
    out = {"id": rid, "object": "response", "created_at": created, "status": status, "background": False,
           "error": None, "incomplete_details": {"reason": reason} if reason else None, "model": model,
           "output": output, **echo}
    if usage is not None:  # not nullable in OpenAI's schema: absent until it is known
        out["usage"] = usage
    return out


def _output_text(text: str) -> dict[str, Any]:
    # `logprobs` is required in OpenAI's schema; none are asked for upstream (top_logprobs is dropped).
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _status(finish: str | None) -> str:
    return "incomplete" if finish in _INCOMPLETE else "completed"


def _usage(prompt: int, completion: int, cached: int, reasoning: int, cache_writes: int = 0) -> dict[str, Any]:
    # cache_write_tokens is required by the SDK's model; chat usage rarely reports writes.
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_writes},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion}


def _chat_usage(usage: ChatUsage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    writes = (usage.prompt_tokens_details or {}).get("cache_write_tokens") or 0
    return _usage(usage.prompt_tokens, usage.completion_tokens, usage.cached or 0, usage.reasoning, writes)


def _function_call(call: ToolCall, status: str) -> dict[str, Any]:
    return {"id": new_id("fc_"), "type": "function_call", "status": status, "call_id": call.id or new_id("call_"),
            "name": call.function.name or "", "arguments": call.function.arguments or ""}


def from_chat_response(body: bytes, request: bytes | None = None) -> bytes:
    """The `response` object for a `chat.completion` body. `request`, the client's
    Responses body, fills in the parameters the object echoes; raises msgspec.DecodeError."""
    completion = decode_completion(body)
    choice = completion.choices[0] if completion.choices else None
    finish = choice.finish_reason if choice else None
    status = _status(finish)
    output: list[dict[str, Any]] = []
    if choice is not None:
        text, refusal = text_of(choice.message.content), choice.message.refusal
        parts = ([_output_text(text)] if text else []) + (
            [{"type": "refusal", "refusal": refusal}] if refusal else [])
        if parts:
            output.append({"id": new_id("msg_"), "type": "message", "status": status, "role": "assistant",
                           "content": parts})
        output.extend(_function_call(call, "completed") for call in choice.message.tool_calls or [])
    rid, created = surface_id("resp_", completion.id), completion.created or int(time.time())
    out = _response(_echo(_request(request)), rid, created, completion.model, status, finish, output,
                    _chat_usage(completion.usage))
    if completion.service_tier:
        out["service_tier"] = completion.service_tier
    if len(completion.meta):
        out["meta"] = completion.meta
    return encode(out)


class ResponsesStream(StreamConverter):
    """Turns the router's `chat.completion.chunk` SSE bytes into Responses stream events.

    First chunk -> response.created, response.in_progress. Text -> a message item
    (output_item.added, content_part.added, output_text.delta..., then output_text.done,
    content_part.done, output_item.done); refusals -> a refusal part likewise; each
    tool call -> a function_call item (output_item.added, function_call_arguments.delta
    ..., .done, output_item.done). A new item closes the open one; `finish()` closes
    the last and writes response.completed (or .incomplete) with the whole response; `fail()`
    writes response.failed instead.
    `request`, the client's Responses body, fills in the echoed parameters.
    """

    def __init__(self, request: bytes | None = None) -> None:
        super().__init__()
        req = _request(request)
        self._echo = _echo(req)
        self._request_model = req.get("model") if isinstance(req.get("model"), str) else ""
        self._seq = 0
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._output: list[dict[str, Any]] = []
        self._item: dict[str, Any] | None = None  # the open output item
        self._part: dict[str, Any] | None = None  # the open content part of the open message item
        self._calls: dict[int, dict[str, Any]] = {}  # OpenAI tool_calls index -> function_call item

    def _end(self, usage: Usage | None, finish_reason: str | None) -> bytes:
        status = _status(finish_reason)
        out = self._close_item(status)
        if usage is not None:
            reasoning = self.chunk_usage.reasoning if self.chunk_usage else 0
            counts = _usage(usage.input_units, usage.output_units, usage.cached_units, reasoning)
        else:
            counts = _chat_usage(self.chunk_usage)
        response = self._response(status, finish_reason, counts)
        return out + self._emit("response.completed" if status == "completed" else "response.incomplete",
                                response=response)

    def _failed(self, error: ErrorBody, usage: Usage | None) -> bytes:
        # As OpenAI ends a failed stream: response.failed with the response so far; the open
        # item stays incomplete (no .done events: it never completed).
        if self._item is not None:
            self._item["status"] = "incomplete"
        self._item = self._part = None
        counts = _usage(usage.input_units, usage.output_units, usage.cached_units, 0) if usage else None
        response = self._response("failed", None, counts)
        response["error"] = {"code": "rate_limit_exceeded" if error.code == 429 else "server_error",
                             "message": error.message}
        return self._emit("response.failed", response=response)

    def error(self, code: str, message: str) -> bytes:
        """An `error` event, for a stream that fails after its first byte."""
        return self._emit("error", code=code, message=message, param=None)

    def _response(self, status: str, finish: str | None, usage: dict[str, Any] | None) -> dict[str, Any]:
        return _response(self._echo, self._id, self._created, self._model, status, finish, self._output, usage)

    def _emit(self, kind: str, **fields: Any) -> bytes:
        # Encoded at once: the item and part dicts keep changing after the event is written.
        data = sse(kind, {"type": kind, "sequence_number": self._seq, **fields})
        self._seq += 1
        return data

    def _start(self, chunk: Chunk) -> bytes:
        self._id = surface_id("resp_", chunk.id)
        self._model = chunk.model or self._request_model
        self._created = chunk.created or self._created
        response = self._response("in_progress", None, None)
        return self._emit("response.created", response=response) + self._emit("response.in_progress",
                                                                              response=response)

    def _where(self) -> dict[str, Any]:
        assert self._item is not None
        return {"item_id": self._item["id"], "output_index": len(self._output) - 1}

    def _add_item(self, item: dict[str, Any]) -> bytes:
        out = self._close_item("completed")
        self._item = item
        self._output.append(item)
        return out + self._emit("response.output_item.added", output_index=len(self._output) - 1, item=item)

    def _text(self, text: str) -> bytes:
        return self._delta("output_text", text)

    def _refusal(self, text: str) -> bytes:
        return self._delta("refusal", text)

    def _delta(self, kind: str, text: str) -> bytes:
        out = b""
        if self._item is None or self._item["type"] != "message":
            out += self._add_item({"id": new_id("msg_"), "type": "message", "status": "in_progress",
                                   "role": "assistant", "content": []})
        assert self._item is not None
        if self._part is None or self._part["type"] != kind:
            out += self._close_part()
            self._part = _output_text("") if kind == "output_text" else {"type": "refusal", "refusal": ""}
            out += self._emit("response.content_part.added", **self._where(),
                              content_index=len(self._item["content"]), part=self._part)
            self._item["content"].append(self._part)
        index = len(self._item["content"]) - 1
        if kind == "output_text":
            self._part["text"] += text
            return out + self._emit("response.output_text.delta", **self._where(), content_index=index,
                                    delta=text, logprobs=[])
        self._part["refusal"] += text
        return out + self._emit("response.refusal.delta", **self._where(), content_index=index, delta=text)

    def _tool_call(self, call: ToolCall) -> bytes:
        out = b""
        item = self._calls.get(call.index)
        # A new id at a known index is a new call: some providers omit `index` (so 0) on every call.
        if item is None or (call.id and call.id != item["call_id"]):
            item = self._calls[call.index] = _function_call(call, "in_progress")
            fragment, item["arguments"] = item["arguments"], ""  # the added event shows none yet
            out += self._add_item(item)
        else:
            fragment = call.function.arguments or ""
        if fragment:
            # No provider we know interleaves parallel calls; if one did, a late fragment still
            # lands in its call's arguments (and the final response), without a delta event.
            item["arguments"] += fragment
            if item is self._item:
                out += self._emit("response.function_call_arguments.delta", **self._where(), delta=fragment)
        return out

    def _close_part(self) -> bytes:
        part, self._part = self._part, None
        if part is None or self._item is None:
            return b""
        where = {**self._where(), "content_index": len(self._item["content"]) - 1}
        if part["type"] == "output_text":
            out = self._emit("response.output_text.done", **where, text=part["text"], logprobs=[])
        else:
            out = self._emit("response.refusal.done", **where, refusal=part["refusal"])
        return out + self._emit("response.content_part.done", **where, part=part)

    def _close_item(self, status: str) -> bytes:
        item = self._item
        if item is None:
            return b""
        out = self._close_part()
        if item["type"] == "function_call":
            out += self._emit("response.function_call_arguments.done", **self._where(), name=item["name"],
                              arguments=item["arguments"])
            status = "completed"  # a call's arguments are whole once the model moved on or stopped
        item["status"] = status
        out += self._emit("response.output_item.done", output_index=len(self._output) - 1, item=item)
        self._item = None
        return out
