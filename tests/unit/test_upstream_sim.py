"""Tests for the upstream provider simulator (tools/upstream_sim)."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import openai
import pytest
from aiohttp import web

from tools.upstream_sim import SimSettings, create_app
from tools.upstream_sim.schema_fill import fill_schema

AUTH = {"Authorization": "Bearer test-key"}
CHAT = "/v1/chat/completions"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Sim:
    port: int
    http: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def running_sim(settings: SimSettings | None = None) -> AsyncIterator[Sim]:
    # AppRunner rather than TestServer: TestServer forces handler_cancellation=True, while the
    # real CLI runs without it, and the fault directives must work in the real configuration.
    runner = web.AppRunner(create_app(settings or SimSettings()), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=AUTH) as http:
            yield Sim(port, http)
    finally:
        await runner.cleanup()


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with running_sim() as s:
        yield s


def chat_body(text: str = "hello brave new world", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-sim", "messages": [{"role": "user", "content": text}], **extra}


async def post_json(sim: Sim, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
    async with sim.http.post(path, json=body, **kw) as resp:
        return resp.status, msgspec.json.decode(await resp.read())


async def stream_events(sim: Sim, body: dict[str, Any]) -> list[Any]:
    """Return parsed SSE data payloads; the literal [DONE] marker is kept as a string."""
    async with sim.http.post(CHAT, json={**body, "stream": True}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = (await resp.read()).decode()
    events: list[Any] = []
    for block in raw.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: ")
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else msgspec.json.decode(data))
    return events


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 3},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "days"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


# --- chat ---------------------------------------------------------------------------------


async def test_chat_non_stream_shape_and_usage(sim: Sim) -> None:
    body = {
        "model": "gpt-sim",
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": [{"type": "text", "text": "look at"}, {"type": "image_url"}]},
        ],
    }
    status, data = await post_json(sim, CHAT, body)
    assert status == 200
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "gpt-sim"
    assert data["system_fingerprint"]
    (choice,) = data["choices"]
    assert choice["index"] == 0 and choice["logprobs"] is None and choice["finish_reason"] == "stop"
    msg = choice["message"]
    assert msg["role"] == "assistant" and msg["refusal"] is None and "tool_calls" not in msg
    assert msg["content"] == "Echo: look at [image]"
    usage = data["usage"]
    assert usage["prompt_tokens"] == 2 + 3
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == 9


async def test_stream_concatenation_matches_non_stream(sim: Sim) -> None:
    body = chat_body("  spaced   out\ttext  ")
    _, full = await post_json(sim, CHAT, body)
    events = await stream_events(sim, body)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-sim" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert all("usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == full["choices"][0]["message"]["content"]
    # One chunk per word, plus role and finish chunks.
    assert len(chunks) == full["usage"]["completion_tokens"] + 2
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


async def test_stream_include_usage(sim: Sim) -> None:
    body = chat_body(stream_options={"include_usage": True})
    _, full = await post_json(sim, CHAT, chat_body())
    events = await stream_events(sim, body)
    assert events[-1] == "[DONE]"
    *content, usage_chunk = events[:-1]
    assert all(c["usage"] is None for c in content)
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == full["usage"]


async def test_n_stop_and_max_tokens(sim: Sim) -> None:
    _, data = await post_json(sim, CHAT, chat_body(n=3))
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in data["choices"]}) == 1

    _, data = await post_json(sim, CHAT, chat_body(stop=["new", "brave"]))
    assert data["choices"][0]["message"]["content"] == "Echo: hello "
    assert data["choices"][0]["finish_reason"] == "stop"

    _, data = await post_json(sim, CHAT, chat_body(max_tokens=2))
    assert data["choices"][0]["message"]["content"] == "Echo: hello"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 2

    _, data = await post_json(sim, CHAT, chat_body(max_completion_tokens=3, stop="world"))
    assert data["choices"][0]["message"]["content"] == "Echo: hello brave"
    assert data["choices"][0]["finish_reason"] == "length"

    events = await stream_events(sim, chat_body(n=2, max_tokens=2))
    for index in (0, 1):
        mine = [c["choices"][0] for c in events[:-1] if c["choices"][0]["index"] == index]
        assert "".join(c["delta"].get("content") or "" for c in mine) == "Echo: hello"
        assert mine[-1]["finish_reason"] == "length"


async def test_tool_call_non_stream(sim: Sim) -> None:
    _, data = await post_json(sim, CHAT, chat_body(tools=[WEATHER_TOOL, TIME_TOOL]))
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    args = msgspec.json.decode(call["function"]["arguments"])
    assert isinstance(args["city"], str) and isinstance(args["days"], int) and args["days"] >= 3
    assert args["unit"] == "celsius"
    # Deterministic id for the same request.
    _, again = await post_json(sim, CHAT, chat_body(tools=[WEATHER_TOOL, TIME_TOOL]))
    assert again["choices"][0]["message"]["tool_calls"][0]["id"] == call["id"]

    choice_obj = {"type": "function", "function": {"name": "get_time"}}
    _, data = await post_json(sim, CHAT, chat_body(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice_obj))
    assert data["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"

    _, data = await post_json(sim, CHAT, chat_body(tools=[WEATHER_TOOL], tool_choice="none"))
    assert data["choices"][0]["message"]["content"].startswith("Echo: ")

    followup = {
        "model": "gpt-sim",
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny and warm"},
        ],
    }
    _, data = await post_json(sim, CHAT, followup)
    assert data["choices"][0]["message"]["content"] == "Tool said: sunny and warm"
    assert data["choices"][0]["finish_reason"] == "stop"


async def test_tool_call_streamed_arguments_reassemble(sim: Sim) -> None:
    _, full = await post_json(sim, CHAT, chat_body(tools=[WEATHER_TOOL]))
    expected = full["choices"][0]["message"]["tool_calls"][0]
    events = await stream_events(sim, chat_body(tools=[WEATHER_TOOL]))
    assert events[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in events[:-1]]
    head = deltas[0]["tool_calls"][0]
    assert head["index"] == 0 and head["id"] == expected["id"] and head["type"] == "function"
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:-1]]
    assert len(fragments) > 1
    args = "".join(fragments)
    assert args == expected["function"]["arguments"]
    assert msgspec.json.decode(args)["days"] >= 3
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_response_format_json_schema_and_object(sim: Sim) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 10},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "score": {"type": "number"},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "kind": {"enum": ["a", "b"]},
            "fixed": {"const": 42},
            "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "address": {"$ref": "#/$defs/address"},
        },
        "required": ["name", "age", "score", "ok", "tags", "kind", "fixed", "maybe", "address"],
        "additionalProperties": False,
        "$defs": {"address": {"type": "object", "properties": {"zip": {"type": "string"}}, "required": ["zip"]}},
    }
    rf = {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": schema}}
    _, data = await post_json(sim, CHAT, chat_body(response_format=rf))
    value = msgspec.json.decode(data["choices"][0]["message"]["content"])
    assert set(value) == set(schema["required"])
    assert isinstance(value["name"], str) and len(value["name"]) >= 10
    assert isinstance(value["age"], int) and 18 <= value["age"] <= 99
    assert isinstance(value["score"], float) and value["ok"] is True
    assert len(value["tags"]) >= 2 and all(isinstance(t, str) for t in value["tags"])
    assert value["kind"] == "a" and value["fixed"] == 42 and isinstance(value["maybe"], str)
    assert isinstance(value["address"]["zip"], str)

    _, data = await post_json(sim, CHAT, chat_body("hi there", response_format={"type": "json_object"}))
    assert msgspec.json.decode(data["choices"][0]["message"]["content"]) == {"echo": "hi there"}


def test_schema_fill_edge_cases() -> None:
    assert fill_schema({"type": ["null", "integer"], "exclusiveMinimum": 5}) == 6
    assert fill_schema({"type": "string", "format": "date-time"}) == "2024-01-01T00:00:00Z"
    assert fill_schema({"type": "string", "maxLength": 2}, name="abcdef") == "ab"
    assert fill_schema({"allOf": [{"properties": {"a": {"type": "integer"}}}, {"properties": {"b": {}}}]}) == {
        "a": 1,
        "b": {},
    }
    tree = {
        "$ref": "#/definitions/node",
        "definitions": {
            "node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/definitions/node"}}},
            }
        },
    }
    assert isinstance(fill_schema(tree), dict)  # recursive refs terminate


# --- embeddings -------------------------------------------------------------------------------


async def test_embeddings_float_and_base64(sim: Sim) -> None:
    body = {"model": "text-embedding-sim", "input": ["hello world", "other text here"]}
    status, floats = await post_json(sim, "/v1/embeddings", body)
    assert status == 200
    assert floats["object"] == "list" and floats["model"] == "text-embedding-sim"
    assert floats["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    vecs = [d["embedding"] for d in floats["data"]]
    assert [d["index"] for d in floats["data"]] == [0, 1]
    assert all(d["object"] == "embedding" for d in floats["data"])
    assert all(len(v) == 16 for v in vecs) and vecs[0] != vecs[1]
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-5) for v in vecs)

    _, b64 = await post_json(sim, "/v1/embeddings", {**body, "encoding_format": "base64"})
    for vec, item in zip(vecs, b64["data"], strict=True):
        raw = base64.b64decode(item["embedding"])
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vec

    _, again = await post_json(sim, "/v1/embeddings", {"model": "m", "input": "hello world", "dimensions": 64})
    assert len(again["data"][0]["embedding"]) == 64

    _, tokens = await post_json(sim, "/v1/embeddings", {"model": "m", "input": [[1, 2, 3], [4]]})
    assert len(tokens["data"]) == 2 and tokens["usage"]["prompt_tokens"] == 4
    _, single = await post_json(sim, "/v1/embeddings", {"model": "m", "input": [1, 2, 3]})
    assert single["data"][0]["embedding"] == tokens["data"][0]["embedding"]

    status, err = await post_json(sim, "/v1/embeddings", {"model": "m", "input": []})
    assert status == 400 and err["error"]["param"] == "input"


# --- auth, validation, misc endpoints ---------------------------------------------------------


async def test_auth() -> None:
    async with running_sim(SimSettings(api_key="sekret")) as s:
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            status, data = await post_json(s, CHAT, chat_body(), headers=headers)
            assert status == 401
            assert data["error"]["type"] == "invalid_request_error"
            assert data["error"]["code"] == "invalid_api_key" and data["error"]["param"] is None
        async with s.http.get("/v1/models", headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        status, _ = await post_json(s, CHAT, chat_body(), headers={"Authorization": "Bearer sekret"})
        assert status == 200


async def test_malformed_requests_are_400(sim: Sim) -> None:
    async with sim.http.post(CHAT, data=b"{not json", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        err = (await resp.json())["error"]
        assert err["type"] == "invalid_request_error" and set(err) == {"message", "type", "param", "code"}
    for body in ({"messages": []}, [1, 2], {"model": "gpt-sim"}, {"model": "gpt-sim+bogus=1", "messages": []}):
        status, data = await post_json(sim, CHAT, body)
        assert status == 400, body
        assert data["error"]["type"] == "invalid_request_error"


async def test_models_healthz_and_journal(sim: Sim) -> None:
    async with sim.http.get("/v1/models") as resp:
        models = await resp.json()
    assert models["object"] == "list" and {m["id"] for m in models["data"]} >= {"gpt-sim"}
    async with sim.http.get("/v1/models/some/fine-tuned:model") as resp:
        assert await resp.json() == {
            "id": "some/fine-tuned:model",
            "object": "model",
            "created": 1_700_000_000,
            "owned_by": "upstream-sim",
        }
    async with sim.http.get("/healthz") as resp:
        assert resp.status == 200 and await resp.text() == "ok"

    async with sim.http.delete("/_sim/requests") as resp:
        assert resp.status == 204
    body = chat_body(temperature=0.25, user="u1", seed=7)
    await post_json(sim, CHAT, body, headers={"X-Trace": "abc", "User-Agent": "t"})
    async with sim.http.get("/_sim/requests") as resp:
        (entry,) = await resp.json()
    assert entry["path"] == CHAT and entry["method"] == "POST"
    assert entry["body"] == body
    assert entry["headers"]["authorization"] == "Bearer test-key"
    assert entry["headers"]["x-trace"] == "abc"
    assert entry["headers"]["content-type"].startswith("application/json")
    assert "user-agent" not in entry["headers"]

    for i in range(205):
        await post_json(sim, "/v1/embeddings", {"model": "m", "input": str(i)})
    async with sim.http.get("/_sim/requests") as resp:
        entries = await resp.json()
    assert len(entries) == 200 and entries[-1]["body"]["input"] == "204"
    await sim.http.delete("/_sim/requests")
    async with sim.http.get("/_sim/requests") as resp:
        assert await resp.json() == []


# --- directives -------------------------------------------------------------------------------


async def test_status_directive(sim: Sim) -> None:
    async with sim.http.post(CHAT, json=chat_body(model="gpt-sim+status=429+retry_after=7")) as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "7"
        err = (await resp.json())["error"]
        assert err["code"] == "rate_limit_exceeded"
    headers = {"x-sim-status": "503"}
    async with sim.http.post(CHAT, json=chat_body(stream=True), headers=headers) as resp:
        assert resp.status == 503 and "Retry-After" not in resp.headers
        assert (await resp.json())["error"]["type"] == "server_error"
    status, data = await post_json(sim, "/v1/embeddings", {"model": "e+status=404", "input": "x"})
    assert status == 404 and data["error"]["type"] == "invalid_request_error"


async def test_malformed_directive(sim: Sim) -> None:
    async with sim.http.post(CHAT, json=chat_body(model="gpt-sim+malformed")) as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(await resp.read())
    async with sim.http.post(CHAT, json=chat_body(stream=True), headers={"x-sim-malformed": "1"}) as resp:
        first = (await resp.read()).split(b"\n\n")[0]
    assert first.startswith(b"data: ")
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(first[len(b"data: ") :])


async def test_die_after_truncates_stream(sim: Sim) -> None:
    body = chat_body(model="gpt-sim+die_after=2", stream=True)
    received = b""
    async with sim.http.post(CHAT, json=body) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in resp.content.iter_any():
                received += chunk
    events = [e for e in received.split(b"\n\n") if e]
    assert b"[DONE]" not in received
    assert len(events) == 3  # role chunk + exactly two content chunks
    contents = [msgspec.json.decode(e[6:])["choices"][0]["delta"].get("content") for e in events]
    assert contents == ["", "Echo:", " hello"]
    # Non-streaming: the body is cut short of its announced Content-Length.
    async with sim.http.post(CHAT, json=chat_body(), headers={"x-sim-die-after": "0"}) as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    status, _ = await post_json(sim, CHAT, chat_body())  # the server is still healthy
    assert status == 200


async def test_truncate_directive(sim: Sim) -> None:
    _, data = await post_json(sim, CHAT, chat_body(model="gpt-sim+truncate=2"))
    (choice,) = data["choices"]
    assert choice["message"]["content"] == "Echo: hello"
    assert choice["finish_reason"] == "length" and data["usage"]["completion_tokens"] == 2
    # An answer already as short is left alone; max_tokens and truncate: the smaller wins.
    _, data = await post_json(sim, CHAT, chat_body("hi", model="gpt-sim+truncate=2"))
    assert data["choices"][0]["message"]["content"] == "Echo: hi" and data["choices"][0]["finish_reason"] == "stop"
    _, data = await post_json(sim, CHAT, chat_body(max_tokens=3), headers={"x-sim-truncate": "1"})
    assert data["choices"][0]["message"]["content"] == "Echo:"
    _, data = await post_json(sim, CHAT, chat_body(model="gpt-sim+truncate=4", max_tokens=3))
    assert data["choices"][0]["message"]["content"] == "Echo: hello brave"
    _, data = await post_json(sim, CHAT, chat_body(model="gpt-sim+truncate=0"))
    assert data["choices"][0]["message"]["content"] == "" and data["choices"][0]["finish_reason"] == "length"

    events = await stream_events(sim, chat_body(model="gpt-sim+truncate=3"))
    assert events[-1] == "[DONE]"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1])
    assert text == "Echo: hello brave" and events[-2]["choices"][0]["finish_reason"] == "length"

    # Tool calls are not text: they are not cut.
    _, data = await post_json(sim, CHAT, chat_body(model="gpt-sim+truncate=1", tools=[WEATHER_TOOL]))
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    assert msgspec.json.decode(data["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])["days"] >= 3

    for model in ("gpt-sim+truncate", "gpt-sim+truncate=x", "gpt-sim+truncate=-1"):
        status, err = await post_json(sim, CHAT, chat_body(model=model))
        assert status == 400 and "truncate" in err["error"]["message"], model


async def test_truncate_directive_anthropic_and_gemini(sim: Sim) -> None:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    body = {"model": "claude-sim+truncate=2", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hello brave new world"}]}
    status, data = await post_json(sim, "/v1/messages", body, headers=headers)
    assert status == 200
    assert data["content"] == [{"type": "text", "text": "Echo: hello"}] and data["stop_reason"] == "max_tokens"

    gemini = {"contents": [{"role": "user", "parts": [{"text": "hello brave new world"}]}]}
    status, data = await post_json(sim, "/v1beta/models/gemini-sim+truncate=3:generateContent", gemini,
                                   headers={"x-goog-api-key": "k"})
    assert status == 200
    (candidate,) = data["candidates"]
    assert candidate["content"]["parts"] == [{"text": "Echo: hello brave"}]
    assert candidate["finishReason"] == "MAX_TOKENS"


async def test_reset_directive(sim: Sim) -> None:
    with pytest.raises(aiohttp.ClientError):
        async with sim.http.post(CHAT, json=chat_body(model="gpt-sim+reset")) as resp:
            await resp.read()
    with pytest.raises(aiohttp.ClientError):
        async with sim.http.post(CHAT, json=chat_body(stream=True), headers={"x-sim-reset": "true"}) as resp:
            await resp.read()


async def test_hang_directive(sim: Sim) -> None:
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        async with sim.http.post(
            CHAT, json=chat_body(model="gpt-sim+hang"), timeout=aiohttp.ClientTimeout(total=0.3)
        ) as resp:
            await resp.read()
    assert time.monotonic() - started < 1.0
    status, _ = await post_json(sim, CHAT, chat_body())
    assert status == 200


async def test_latency_directives() -> None:
    async with running_sim(SimSettings(latency_ms=150)) as s:
        started = time.monotonic()
        await post_json(s, CHAT, chat_body())
        assert time.monotonic() - started >= 0.15
        started = time.monotonic()
        await post_json(s, "/v1/embeddings", {"model": "m+latency=0", "input": "x"})
        assert time.monotonic() - started < 0.1
        started = time.monotonic()
        await post_json(s, CHAT, chat_body(), headers={"x-sim-latency-ms": "250"})
        assert time.monotonic() - started >= 0.25

        # ttft before the first chunk, then ~20 words/s pacing: 5 words -> >= 4 intervals.
        body = chat_body("one two three four", model="gpt-sim+ttft=100+tps=20", stream=True)
        started = time.monotonic()
        async with s.http.post(CHAT, json=body) as resp:
            first = await resp.content.readuntil(b"\n\n")
            first_at = time.monotonic() - started
            rest = await resp.read()
        total = time.monotonic() - started
        assert b'"role":"assistant"' in first and b"[DONE]" in rest
        assert 0.1 <= first_at < 0.3
        assert total >= 0.1 + 4 * 0.05 - 0.01


# --- the official SDK and the CLI -------------------------------------------------------------


async def test_openai_sdk(sim: Sim) -> None:
    client = openai.AsyncOpenAI(base_url=f"{sim.base_url}/v1", api_key="x", max_retries=0)
    async with client:
        completion = await client.chat.completions.create(
            model="gpt-sim", messages=[{"role": "user", "content": "sdk says hi"}]
        )
        assert completion.choices[0].message.content == "Echo: sdk says hi"
        assert completion.usage is not None and completion.usage.total_tokens == 3 + 4

        stream = await client.chat.completions.create(
            model="gpt-sim",
            messages=[{"role": "user", "content": "sdk says hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        parts: list[str] = []
        usage = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        assert "".join(parts) == "Echo: sdk says hi"
        assert usage is not None and usage.completion_tokens == 4

        tooled = await client.chat.completions.create(
            model="gpt-sim", messages=[{"role": "user", "content": "weather"}], tools=[WEATHER_TOOL]
        )
        call = tooled.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather" and "city" in msgspec.json.decode(call.function.arguments)

        # The SDK asks for base64 by default and decodes it back into floats.
        emb = await client.embeddings.create(model="text-embedding-sim", input=["a b", "c"], dimensions=8)
        assert [len(d.embedding) for d in emb.data] == [8, 8]
        plain = await client.embeddings.create(
            model="text-embedding-sim", input="a b", encoding_format="float", dimensions=8
        )
        assert plain.data[0].embedding == emb.data[0].embedding

        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(
                model="gpt-sim+status=429", messages=[{"role": "user", "content": "x"}]
            )
