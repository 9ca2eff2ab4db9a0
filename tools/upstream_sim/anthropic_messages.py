"""Anthropic ``POST /v1/messages``: the Messages wire format, non-streaming and SSE streaming.

Deterministic like the OpenAI chat simulator: the reply is ``Echo: <last user text>``; with
``tools`` (and ``tool_choice`` not ``none``) it is a ``tool_use`` block whose input fills the
tool's ``input_schema``, unless the last user turn carries a ``tool_result``, which is answered
``Tool said: <content>``. Usage counts words (an image is one word).

Auth is the ``x-api-key`` header, or ``Authorization: Bearer`` as recent anthropic SDKs send the
key (any key, or exactly ``SimSettings.api_key`` when set), and
``anthropic-version`` and ``max_tokens`` are required, as upstream. Errors use Anthropic's
envelope ``{"type": "error", "error": {"type", "message"}}``. The fault and latency directives
of ``directives.py`` apply (``claude-sim+status=529``); one combination is Anthropic-specific:
a streamed request with both ``die_after=N`` and ``status=S`` sends N deltas, then an ``error``
event of S's type (how Anthropic reports e.g. overload mid-stream) and ends the stream;
``cut_after=N`` sends N deltas and ends the body cleanly without ``message_stop``.
``truncate=N`` cuts the text to N pieces as ``max_tokens`` would (stop_reason ``max_tokens``).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import msgspec
from aiohttp import web

from tools.upstream_sim.common import (
    JOURNAL_KEY,
    SETTINGS_KEY,
    InvalidRequest,
    JournalEntry,
    count_words,
    delay_ms,
    hang_until_disconnect,
    json_response,
    kill_connection,
    malformed_json_response,
    new_id,
    reset_connection,
    split_pieces,
)
from tools.upstream_sim.directives import DirectiveError, Directives, parse_directives
from tools.upstream_sim.schema_fill import fill_schema, marked_schema

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_ARG_FRAGMENT = 8  # characters of tool input JSON per input_json_delta
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_encode = msgspec.json.encode


class Plan(msgspec.Struct):
    text: str | None
    tool_use: dict[str, Any] | None
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    default = "Overloaded" if status == 529 else f"Simulated error {status}."
    return {"type": "error", "error": {"type": kind, "message": message or default}}


def anthropic_error(status: int, message: str | None = None, retry_after: str | None = None) -> web.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else None
    return json_response(error_body(status, message), status=status, headers=headers)


def _record(request: web.Request, body: bytes) -> dict[str, str]:
    """Journal the request like app.py does (x-* headers incl. x-api-key, content-type, anthropic-*)."""
    headers: dict[str, str] = {}
    sim: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key.startswith(("x-", "anthropic-")) or key in ("authorization", "content-type"):
            headers[key] = value
            if key.startswith("x-sim-"):
                sim[key] = value
    request.app[JOURNAL_KEY].append(JournalEntry(request.method, request.path, headers, body))
    return sim


def _auth_error(request: web.Request) -> web.Response | None:
    # The API key rides in x-api-key; recent anthropic SDKs send it as a bearer token instead.
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    if not key:
        return anthropic_error(401, "x-api-key header is required")
    expected = request.app[SETTINGS_KEY].api_key
    if expected is not None and key != expected:
        return anthropic_error(401, "invalid x-api-key")
    return None


async def handle_messages(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    sim_headers = _record(request, body)
    denied = _auth_error(request)
    if denied is not None:
        return denied
    if not request.headers.get("anthropic-version"):
        return anthropic_error(400, "anthropic-version: header is required")
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return anthropic_error(400, "There was an issue with your request body: it is not valid JSON")
    if not isinstance(payload, dict):
        return anthropic_error(400, "The request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        return anthropic_error(400, "model: Field required")
    try:
        _, directives = parse_directives(model, sim_headers, request.app[SETTINGS_KEY])
    except DirectiveError as exc:
        return anthropic_error(400, str(exc))
    if directives.reset:
        return await reset_connection(request)
    if directives.hang:
        return await hang_until_disconnect(request)
    stream = payload.get("stream") is True
    if directives.status is not None and not (stream and directives.die_after is not None):
        await delay_ms(directives.latency_ms)
        return anthropic_error(directives.status, retry_after=directives.retry_after)
    try:
        plan = plan_message(payload, directives.truncate)
    except InvalidRequest as exc:
        return anthropic_error(400, exc.message)
    if stream:
        return await _stream(request, model, plan, directives)
    await delay_ms(directives.latency_ms)
    if directives.malformed:
        return malformed_json_response()
    message = _message(model, plan)
    if directives.die_after is not None:
        data = _encode(message)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(data)
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        return kill_connection(request, resp)
    return json_response(message)


# --- the fake model -------------------------------------------------------------------------


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: Input should be a valid string or list of content blocks")
    texts: list[str] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind in ("image", "document"):
            texts.append(f"[{kind}]")
        elif kind == "tool_result":
            texts.append(_text_of(block.get("content") or "", where))
        elif kind not in ("tool_use", "thinking", "redacted_thinking"):
            raise InvalidRequest(f"{where}: unknown content block type {kind!r}")
    return " ".join(t for t in texts if t)


def _int_field(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if value is None:
        raise InvalidRequest(f"{name}: Field required")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{name}: Input should be a positive integer")
    return value


def _pick_tool(tools: Any, choice: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
        raise InvalidRequest("tools: each tool needs a name")
    if choice.get("type") == "tool":
        for tool in tools:
            if tool["name"] == choice.get("name"):
                return tool
        raise InvalidRequest(f"tool_choice: no tool named {choice.get('name')!r} in tools")
    return tools[0]


def plan_message(payload: dict[str, Any], truncate: int | None = None) -> Plan:
    limit = _int_field(payload, "max_tokens")
    if truncate is not None:
        limit = min(limit, truncate)
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise InvalidRequest("messages: at least one message is required")
    for i, m in enumerate(messages):
        if m.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    system = payload.get("system")
    prompt_tokens = count_words(_text_of(system, "system")) if system is not None else 0
    prompt_tokens += sum(count_words(_text_of(m.get("content"), f"messages.{i}")) for i, m in enumerate(messages))
    last = messages[-1]
    user_text = next((_user_text(m["content"]) for m in reversed(messages)
                      if m["role"] == "user" and _user_text(m["content"])), "")
    results = [b for b in last.get("content") or [] if isinstance(b, dict) and b.get("type") == "tool_result"]
    tools = payload.get("tools")
    choice = payload.get("tool_choice") if isinstance(payload.get("tool_choice"), dict) else {}
    if last["role"] == "user" and results:
        text = "Tool said: " + _text_of(results[-1].get("content") or "", "tool_result")
    elif tools and choice.get("type") != "none":
        tool = _pick_tool(tools, choice)
        name: str = tool["name"]
        value = fill_schema(tool.get("input_schema") or {"type": "object"}, name=name)
        tool_id = "toolu_" + hashlib.blake2b(f"{name}\0{user_text}".encode(), digest_size=12).hexdigest()
        fragments = max(1, -(-len(_encode(value)) // _ARG_FRAGMENT))
        return Plan(None, {"type": "tool_use", "id": tool_id, "name": name, "input": value}, "tool_use", None,
                    prompt_tokens, fragments)
    elif (schema := marked_schema(_text_of(system, "system")) if system is not None else None) is not None:
        text = _encode(fill_schema(schema)).decode()  # a gateway utility's JSON answer
    else:
        text = "Echo: " + user_text
    stop_reason, stop_sequence = "end_turn", None
    stops = payload.get("stop_sequences") or []
    found = [(i, s) for s in stops if isinstance(s, str) and s and (i := text.find(s)) >= 0]
    if found:
        cut, stop_sequence = min(found)
        text, stop_reason = text[:cut], "stop_sequence"
    pieces = split_pieces(text)
    if len(pieces) > limit:
        text, stop_reason, stop_sequence = "".join(pieces[:limit]), "max_tokens", None
    return Plan(text, None, stop_reason, stop_sequence, prompt_tokens, count_words(text))


def _user_text(content: Any) -> str:
    if not isinstance(content, list):
        return content if isinstance(content, str) else ""
    parts = [b for b in content if isinstance(b, dict) and b.get("type") in ("text", "image", "document")]
    return _text_of(parts, "messages")


def _usage(plan: Plan, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": plan.input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "output_tokens": output_tokens}


def _message(model: str, plan: Plan) -> dict[str, Any]:
    content = [plan.tool_use] if plan.tool_use is not None else [{"type": "text", "text": plan.text}]
    return {"id": new_id("msg_"), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence,
            "usage": _usage(plan, plan.output_tokens)}


# --- streaming ------------------------------------------------------------------------------


def _event(data: dict[str, Any]) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + _encode(data) + b"\n\n"


async def _stream(request: web.Request, model: str, plan: Plan, directives: Directives) -> web.StreamResponse:
    await delay_ms(directives.ttft_ms)
    resp = web.StreamResponse(headers=SSE_HEADERS)
    await resp.prepare(request)
    head = {**_message(model, plan), "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": _usage(plan, 1)}
    buf = bytearray(_event({"type": "message_start", "message": head}))
    if directives.malformed:
        await resp.write(bytes(buf) + b'event: content_block_start\ndata: {"type": "content_block_start", \n\n')
        return resp
    if plan.tool_use is not None:
        block = {**plan.tool_use, "input": {}}
        args = _encode(plan.tool_use["input"]).decode()
        frags = [args[i : i + _ARG_FRAGMENT] for i in range(0, len(args), _ARG_FRAGMENT)]
        deltas = [{"type": "input_json_delta", "partial_json": f} for f in frags]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in split_pieces(plan.text or "")]
    buf += _event({"type": "content_block_start", "index": 0, "content_block": block})
    buf += _event({"type": "ping"})
    if directives.die_after is not None:
        deltas = deltas[: directives.die_after]
    if directives.cut_after is not None:
        deltas = deltas[: directives.cut_after]
    interval = 1.0 / directives.tps if directives.tps > 0 else 0.0
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        for i, delta in enumerate(deltas):
            if interval and (wait := start + i * interval - loop.time()) > 0:
                if buf:
                    await resp.write(bytes(buf))
                    buf.clear()
                await asyncio.sleep(wait)
            buf += _event({"type": "content_block_delta", "index": 0, "delta": delta})
        if directives.die_after is not None:
            if directives.status is None:
                await resp.write(bytes(buf))
                return kill_connection(request, resp)
            buf += _event(error_body(directives.status))
            await resp.write(bytes(buf))
            return resp
        if directives.cut_after is not None:
            # A clean end of the body, but no content_block_stop, message_delta or message_stop.
            await resp.write(bytes(buf))
            return resp
        buf += _event({"type": "content_block_stop", "index": 0})
        buf += _event({"type": "message_delta",
                       "delta": {"stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence},
                       "usage": {"output_tokens": plan.output_tokens}})
        buf += _event({"type": "message_stop"})
        await resp.write(bytes(buf))
    except ConnectionError:
        pass  # the client went away mid-stream
    return resp

