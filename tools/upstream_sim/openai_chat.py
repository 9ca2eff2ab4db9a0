"""OpenAI ``POST /v1/chat/completions``: non-streaming and SSE streaming responses.

Every directive of ``directives.py`` applies; ``plain`` (drop response_format) and ``truncate=N``
(cut the text to N pieces, finish reason "length") shape the answer itself; ``cut_after=N`` ends a
stream cleanly after N pieces with no finish chunk and no ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import msgspec
from aiohttp import web

from tools.upstream_sim.common import (
    InvalidRequest,
    count_words,
    delay_ms,
    json_response,
    kill_connection,
    malformed_json_response,
    new_id,
    split_pieces,
)
from tools.upstream_sim.directives import Directives
from tools.upstream_sim.schema_fill import fill_schema, marked_schema

FINGERPRINT = "fp_upstream_sim"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_ARG_FRAGMENT = 8  # characters of tool-call arguments per streamed chunk
_DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.encode


class Plan(msgspec.Struct):
    """What the fake model "generates" for one request; identical for every choice."""

    content: str | None
    tool_call: dict[str, Any] | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest("Invalid message content: expected a string or an array of parts.", "messages")
    texts: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            raise InvalidRequest("Invalid content part: expected an object.", "messages")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            texts.append(text if isinstance(text, str) else "")
        elif kind in ("image_url", "input_image"):
            texts.append("[image]")
        elif kind == "input_audio":
            texts.append("[audio]")
        elif kind == "file":
            texts.append("[file]")
    return " ".join(texts)


def _int_param(payload: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidRequest(f"Invalid '{name}': expected an integer between {lo} and {hi}.", name)
    return value


def _pick_tool(tools: Any, tool_choice: Any) -> dict[str, Any]:
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise InvalidRequest("Invalid 'tools': expected an array of tool objects.", "tools")
    functions = [t.get("function") for t in tools if t.get("type", "function") == "function"]
    functions = [f for f in functions if isinstance(f, dict) and isinstance(f.get("name"), str)]
    if not functions:
        raise InvalidRequest("Invalid 'tools': no function tools with a name.", "tools")
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        wanted = fn.get("name") if isinstance(fn, dict) else None
        for f in functions:
            if f["name"] == wanted:
                return f
        raise InvalidRequest(f"Invalid 'tool_choice': no function named {wanted!r} in 'tools'.", "tool_choice")
    return functions[0]


def _json_text(value: Any) -> str:
    # indent=0 keeps one line but puts spaces after separators, so the JSON streams word by word.
    return msgspec.json.format(_encode(value), indent=0).decode()


def _response_format_text(response_format: Any, user_text: str, system_text: str = "") -> str | None:
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise InvalidRequest("Invalid 'response_format': expected an object.", "response_format")
    kind = response_format.get("type")
    if kind == "json_object":
        schema = marked_schema(system_text)
        return _json_text(fill_schema(schema) if schema is not None else {"echo": user_text})
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise InvalidRequest("Missing 'response_format.json_schema'.", "response_format")
        return _json_text(fill_schema(spec.get("schema", {})))
    if kind == "text":
        return None
    raise InvalidRequest(f"Invalid 'response_format.type': {kind!r}.", "response_format")


def _apply_limits(text: str, payload: dict[str, Any], truncate: int | None = None) -> tuple[str, str]:
    finish = "stop"
    stop = payload.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    cut = min((i for s in stops if isinstance(s, str) and s and (i := text.find(s)) >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    limit = _int_param(payload, "max_completion_tokens", 1, 1 << 31)
    if limit is None:
        limit = _int_param(payload, "max_tokens", 1, 1 << 31)
    if truncate is not None:
        limit = truncate if limit is None else min(limit, truncate)
    if limit is not None:
        pieces = split_pieces(text)
        if len(pieces) > limit:
            text = "".join(pieces[:limit])
            finish = "length"
    return text, finish


def plan_completion(payload: dict[str, Any], truncate: int | None = None) -> Plan:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise InvalidRequest(
            "Missing or invalid 'messages': expected a non-empty array.", "messages", "missing_required_parameter"
        )
    prompt_tokens = sum(count_words(_text_of(m.get("content"))) for m in messages)
    last = messages[-1]
    user_text = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    tools = payload.get("tools")
    tool_choice = payload.get("tool_choice")
    if last.get("role") == "tool":
        text = "Tool said: " + _text_of(last.get("content"))
    elif tools and tool_choice != "none":
        fn = _pick_tool(tools, tool_choice)
        name: str = fn["name"]
        arguments = _encode(fill_schema(fn.get("parameters") or {"type": "object"}, name=name)).decode()
        call_id = "call_" + hashlib.blake2b(f"{name}\0{user_text}".encode(), digest_size=12).hexdigest()
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        # Tool-call "tokens" are the streamed argument fragments, so usage matches the stream.
        fragments = max(1, -(-len(arguments) // _ARG_FRAGMENT))
        return Plan(None, call, "tool_calls", prompt_tokens, fragments)
    else:
        system_text = " ".join(_text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
        formatted = _response_format_text(payload.get("response_format"), user_text, system_text)
        text = formatted if formatted is not None else "Echo: " + user_text
    text, finish = _apply_limits(text, payload, truncate)
    return Plan(text, None, finish, prompt_tokens, count_words(text))


def _usage(plan: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


async def handle_chat(request: web.Request, payload: dict[str, Any], directives: Directives) -> web.StreamResponse:
    if directives.plain:
        payload = {k: v for k, v in payload.items() if k != "response_format"}
    plan = plan_completion(payload, directives.truncate)
    n = _int_param(payload, "n", 1, 128) or 1
    if payload.get("stream") is True:
        return await _stream(request, payload, plan, n, directives)
    await delay_ms(directives.latency_ms)
    if directives.malformed:
        return malformed_json_response()
    message: dict[str, Any] = {"role": "assistant", "content": plan.content, "refusal": None, "annotations": []}
    if plan.tool_call is not None:
        message["tool_calls"] = [plan.tool_call]
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": plan.finish_reason} for i in range(n)
    ]
    body = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": payload["model"],
        "choices": choices,
        "usage": _usage(plan),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if directives.die_after is not None:
        return await _truncated_json(request, _encode(body))
    return json_response(body)


async def _truncated_json(request: web.Request, data: bytes) -> web.StreamResponse:
    # Promise the full length, deliver half, hang up: the client sees a short body.
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.content_length = len(data)
    await resp.prepare(request)
    await resp.write(data[: len(data) // 2])
    return kill_connection(request, resp)


def _fragments(plan: Plan) -> list[str]:
    if plan.tool_call is not None:
        args: str = plan.tool_call["function"]["arguments"]
        return [args[i : i + _ARG_FRAGMENT] for i in range(0, len(args), _ARG_FRAGMENT)] or [""]
    return split_pieces(plan.content or "")


async def _stream(
    request: web.Request, payload: dict[str, Any], plan: Plan, n: int, directives: Directives
) -> web.StreamResponse:
    opts = payload.get("stream_options")
    include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
    head: dict[str, Any] = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": payload["model"],
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if include_usage:
        head["usage"] = None

    def event(choices: list[dict[str, Any]]) -> bytes:
        head["choices"] = choices
        return b"data: " + _encode(head) + b"\n\n"

    def per_choice(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"".join(
            event([{"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}]) for i in range(n)
        )

    await delay_ms(directives.ttft_ms)
    resp = web.StreamResponse(headers=SSE_HEADERS)
    await resp.prepare(request)
    if directives.malformed:
        await resp.write(b'data: {"id": "sim-malformed", "choices": [{"delta": \n\n' + _DONE)
        return resp

    call = plan.tool_call
    if call is None:
        first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    else:
        header = {"index": 0, **call, "function": {"name": call["function"]["name"], "arguments": ""}}
        first = {"role": "assistant", "content": None, "tool_calls": [header], "refusal": None}

    # Without pacing everything is coalesced into few writes; that is what makes the
    # benchmark cheap, and an SSE client cannot tell the difference.
    interval = 1.0 / directives.tps if directives.tps > 0 else 0.0
    frags = _fragments(plan)
    if directives.die_after is not None:
        frags = frags[: directives.die_after]
    if directives.cut_after is not None:
        frags = frags[: directives.cut_after]
    buf = bytearray(per_choice(first))
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        for i, frag in enumerate(frags):
            if interval:
                wait = start + i * interval - loop.time()
                if wait > 0:
                    if buf:
                        await resp.write(bytes(buf))
                        buf.clear()
                    await asyncio.sleep(wait)
            if call is None:
                delta: dict[str, Any] = {"content": frag}
            else:
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}
            buf += per_choice(delta)
        if directives.die_after is not None:
            # Flush what was promised, then drop the connection with no finish chunk or [DONE].
            if buf:
                await resp.write(bytes(buf))
            return kill_connection(request, resp)
        if directives.cut_after is not None:
            # A clean end of the body, but no finish chunk, usage or [DONE]: a truncated answer.
            await resp.write(bytes(buf))
            return resp
        buf += per_choice({}, plan.finish_reason)
        if include_usage:
            head["usage"] = _usage(plan)
            buf += event([])
        buf += _DONE
        await resp.write(bytes(buf))
    except ConnectionError:
        # The client went away mid-stream; nothing left to do and nothing worth logging.
        pass
    return resp
