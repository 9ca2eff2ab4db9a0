"""Anthropic adapter: pure translation both ways, then the adapter and the official SDK against the simulator."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import msgspec
import pytest
from aiohttp import web

from libs.contracts.bus.inference import OP_CHAT, OP_EMBEDDINGS, Usage
from libs.contracts.config import RouterConfig
from services.router.failures import from_upstream
from services.router.providers import adapter_modules, build_providers
from services.router.providers.anthropic import AnthropicAdapter
from services.router.providers.anthropic_translate import (
    JSON_INSTRUCTION,
    AnthropicUsage,
    StreamTranslator,
    openai_usage,
    to_anthropic_request,
    to_openai_completion,
)
from services.router.providers.base import ProviderSettings, UpstreamError
from services.router.providers.openai_compat import upstream_message
from tests.unit.sim_server import Sim, running_sim

KEY = "sk-ant-test"
_enc = msgspec.json.encode


def req(messages: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body = {"model": "anthropic/claude-x", "messages": messages or [{"role": "user", "content": "hi"}], **extra}
    return to_anthropic_request(_enc(body), "claude-x", stream=False)


def refused(**extra: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        req(**extra)
    assert (info.value.kind, info.value.status) == ("malformed", 400)
    return info.value


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}

# --- request: OpenAI -> Anthropic -----------------------------------------------------------


def test_minimal_request_defaults() -> None:
    out = req()
    assert out == {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4096}
    streamed = to_anthropic_request(b'{"messages":[{"role":"user","content":"x"}],"stream":false}', "m", True)
    assert streamed["stream"] is True


def test_system_and_developer_messages_become_top_level_system() -> None:
    assert req([{"role": "system", "content": "be brief"}, {"role": "user", "content": "q"}])["system"] == "be brief"
    out = req([
        {"role": "system", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "user", "content": "q"},
        {"role": "developer", "content": "three"},
        {"role": "assistant", "content": "a"},
    ])
    assert out["system"] == [{"type": "text", "text": "one\ntwo"}, {"type": "text", "text": "three"}]
    assert out["messages"] == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_content_parts_and_images() -> None:
    out = req([{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": ""},
    ]}])
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what is this"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize("part", [
    {"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}},
    {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}},
    {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}},
    {"type": "file", "file": {"file_id": "f"}},
])
def test_unsupported_parts_are_refused(part: dict[str, Any]) -> None:
    refused(messages=[{"role": "user", "content": [part]}])


def test_tool_calls_results_and_role_merging() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    call2 = {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
    out = req([
        {"role": "user", "content": "weather and time?"},
        {"role": "user", "content": "please"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [call, call2]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "thanks"},
    ])
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather and time?"},
                                     {"type": "text", "text": "please"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
            {"type": "text", "text": "thanks"},
        ]},
    ]
    bad = {**call, "function": {"name": "f", "arguments": "[1]"}}
    refused(messages=[{"role": "assistant", "content": None, "tool_calls": [bad]}])


def test_tools_translate_to_input_schema() -> None:
    bare = {"type": "function", "function": {"name": "ping"}}
    assert req(tools=[WEATHER, bare])["tools"] == [
        {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER["function"]["parameters"]},
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]
    refused(tools=[{"type": "web_search"}])


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
    (None, None, None),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
])
def test_tool_choice_mapping(choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    extra = {k: v for k, v in (("tool_choice", choice), ("parallel_tool_calls", parallel)) if v is not None}
    assert req(tools=[WEATHER], **extra).get("tool_choice") == expected
    assert "tool_choice" not in req(**extra)  # without tools there is nothing to choose from


def test_sampling_limits_stop_and_user() -> None:
    out = req(max_tokens=100, top_p=0.9, stop="END", user="u-42", seed=7, presence_penalty=1, models=["x/y"])
    assert out["max_tokens"] == 100 and out["top_p"] == 0.9
    assert out["stop_sequences"] == ["END"] and out["metadata"] == {"user_id": "u-42"}
    assert not {"seed", "presence_penalty", "models", "user", "stop"} & set(out)
    assert req(max_tokens=100, max_completion_tokens=50, stop=["a", "b"])["max_tokens"] == 50
    assert req(stop=["a", "b"])["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in req(stop=None)


@pytest.mark.parametrize(("given", "sent"), [(0.7, 0.7), (1.6, 1.0), (2, 1.0), (-0.5, 0.0), (0, 0.0)])
def test_temperature_is_clamped(given: float, sent: float) -> None:
    assert req(temperature=given)["temperature"] == sent


def test_response_format_becomes_a_system_instruction() -> None:
    out = req([{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}],
              response_format={"type": "json_object"})
    assert out["system"] == [{"type": "text", "text": "sys"}, {"type": "text", "text": JSON_INSTRUCTION}]
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out = req(response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}})
    assert out["system"].startswith(JSON_INSTRUCTION)
    assert "'thing'" in out["system"] and out["system"].endswith(_enc(schema).decode())
    assert "system" not in req(response_format={"type": "text"})


def test_unsupported_fields_are_refused() -> None:
    assert "'n' = 2 is not supported for Anthropic models" in refused(n=2).message
    assert req(n=1)["max_tokens"] == 4096
    refused(logprobs=True)
    refused(functions=[{"name": "f"}])
    refused(messages=[{"role": "function", "name": "f", "content": "x"}])
    for body in (b"[1]", b"not json"):
        with pytest.raises(UpstreamError) as info:
            to_anthropic_request(body, "m", False)
        assert info.value.status == 400


# --- answer: Anthropic -> OpenAI ------------------------------------------------------------


def _message(**fields: Any) -> bytes:
    return _enc({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x-2025",
                 "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn",
                 "usage": {"input_tokens": 10, "output_tokens": 5}, **fields})


def test_completion_text_and_usage_with_cache_tokens() -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
             "cache_creation_input_tokens": 20}
    body, counted = to_openai_completion(_message(
        content=[{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "Hel"},
                 {"type": "text", "text": "lo"}],
        usage=usage))
    out = msgspec.json.decode(body)
    assert out["id"] == "chatcmpl-msg_1" and out["object"] == "chat.completion" and out["model"] == "claude-x-2025"
    assert isinstance(out["created"], int)
    assert out["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "Hello", "refusal": None}}]
    assert out["usage"] == {"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
                            "prompt_tokens_details": {"cached_tokens": 100}}
    assert counted == Usage(input_units=130, output_units=5, cached_units=100)


def test_completion_tool_use() -> None:
    body, _ = to_openai_completion(_message(stop_reason="tool_use", content=[
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]))
    message = msgspec.json.decode(body)["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "toolu_1", "type": "function",
                                      "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]
    assert msgspec.json.decode(body)["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), (None, "stop"),
])
def test_finish_reasons(stop_reason: str | None, finish: str) -> None:
    body, _ = to_openai_completion(_message(stop_reason=stop_reason))
    assert msgspec.json.decode(body)["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("data", [b"not json", b'{"id":"x"}', b'{"id":"x","model":"m","content":"str"}'])
def test_completion_not_a_message_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        to_openai_completion(data)


def test_stream_translator_usage_merge_and_unknown_events() -> None:
    t = StreamTranslator()
    start = {"type": "message_start", "message": {"id": "msg_9", "model": "claude-x", "content": [],
             "usage": {"input_tokens": 7, "output_tokens": 1, "cache_read_input_tokens": 3}}}
    assert b'"role":"assistant"' in t.feed("message_start", _enc(start))
    assert t.feed("some_future_event", b'{"type":"some_future_event"}') == b""
    assert t.feed("ping", b'{"type":"ping"}') == b""
    tail = t.feed("message_delta", b'{"type":"message_delta","delta":{"stop_reason":"max_tokens"},'
                                   b'"usage":{"output_tokens":42}}')
    assert b'"finish_reason":"length"' in tail
    chunk, usage = t.usage_chunk()
    assert usage == Usage(10, 42, 3)
    assert msgspec.json.decode(chunk)["choices"] == [] and msgspec.json.decode(chunk)["id"] == "chatcmpl-msg_9"
    assert openai_usage(AnthropicUsage())[1] == Usage(0, 0, 0)


def test_upstream_message_reads_anthropics_error_envelope() -> None:
    assert upstream_message(b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}') == (
        "Overloaded")


def test_env_enables_anthropic(monkeypatch: pytest.MonkeyPatch) -> None:
    assert adapter_modules()["anthropic"].ADAPTER is AnthropicAdapter  # type: ignore[attr-defined]
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    adapter = build_providers([], RouterConfig())["anthropic"]
    assert isinstance(adapter, AnthropicAdapter) and adapter.operations == frozenset({OP_CHAT})
    assert adapter.settings.base_url == "https://api.anthropic.com"


# --- the adapter against the simulator ------------------------------------------------------


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Sim]:
    async with running_sim(KEY) as server:
        yield server


async def _adapter(base_url: str, key: str = KEY) -> AnthropicAdapter:
    adapter = AnthropicAdapter(ProviderSettings(slug="anthropic", kind="anthropic", base_url=base_url + "/",
                                                api_key=key, read_timeout_s=2))
    await adapter.start()
    return adapter


@pytest.fixture
async def adapter(sim: Sim) -> AsyncIterator[AnthropicAdapter]:
    a = await _adapter(sim.base_url)
    try:
        yield a
    finally:
        await a.close()


def chat(text: str = "hello brave new world", **extra: Any) -> bytes:
    return _enc({"model": "anthropic/claude-sim", "messages": [{"role": "user", "content": text}], **extra})


async def drain(adapter: AnthropicAdapter, body: bytes, model: str = "claude-sim") -> tuple[list[bytes], Any]:
    stream = await adapter.open_stream(OP_CHAT, model, body)
    chunks: list[bytes] = []
    try:
        async for events in stream:
            chunks.append(events)
    finally:
        await stream.aclose()
    return chunks, stream


def chunk_objects(chunks: list[bytes]) -> list[dict[str, Any]]:
    events = b"".join(chunks).split(b"\n\n")
    assert events[-1] == b""
    assert all(e.startswith(b"data: {") for e in events[:-1])
    return [msgspec.json.decode(e[len(b"data: "):]) for e in events[:-1]]


async def upstream_error(call: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await call
    return info.value


async def test_complete_text_and_the_wire_request(sim: Sim, adapter: AnthropicAdapter) -> None:
    async with aiohttp.ClientSession() as http:
        await http.delete(sim.base_url + "/_sim/requests")
    result = await adapter.complete(OP_CHAT, "claude-sim", chat(temperature=1.5))
    out = msgspec.json.decode(result.body)
    assert out["choices"][0]["message"]["content"] == "Echo: hello brave new world"
    assert out["choices"][0]["finish_reason"] == "stop" and out["model"] == "claude-sim"
    assert out["id"].startswith("chatcmpl-msg_")
    assert result.usage == Usage(4, 5, 0) and out["usage"]["total_tokens"] == 9
    (entry,) = await sim.journal()
    assert entry["path"] == "/v1/messages"
    assert entry["headers"]["x-api-key"] == KEY and entry["headers"]["anthropic-version"] == "2023-06-01"
    assert entry["headers"]["content-type"] == "application/json"
    assert entry["body"] == {"model": "claude-sim", "messages": [{"role": "user", "content": "hello brave new world"}],
                             "max_tokens": 4096, "temperature": 1.0}


async def test_complete_tool_call_round_trip(adapter: AnthropicAdapter) -> None:
    result = await adapter.complete(OP_CHAT, "claude-sim", chat("weather in Oslo?", tools=[WEATHER]))
    choice = msgspec.json.decode(result.body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("toolu_") and call["function"]["name"] == "get_weather"
    assert isinstance(msgspec.json.decode(call["function"]["arguments"])["city"], str)
    followup = _enc({"model": "anthropic/claude-sim", "tools": [WEATHER], "messages": [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny and warm"},
    ]})
    result = await adapter.complete(OP_CHAT, "claude-sim", followup)
    assert msgspec.json.decode(result.body)["choices"][0]["message"]["content"] == "Tool said: sunny and warm"


async def test_complete_stop_and_max_tokens(adapter: AnthropicAdapter) -> None:
    out = msgspec.json.decode((await adapter.complete(OP_CHAT, "claude-sim", chat(stop="brave"))).body)
    assert (out["choices"][0]["message"]["content"], out["choices"][0]["finish_reason"]) == ("Echo: hello ", "stop")
    out = msgspec.json.decode((await adapter.complete(OP_CHAT, "claude-sim", chat(max_tokens=2))).body)
    assert (out["choices"][0]["message"]["content"], out["choices"][0]["finish_reason"]) == ("Echo: hello", "length")


async def test_stream_text_reassembles_and_withholds_the_tail(adapter: AnthropicAdapter) -> None:
    full = msgspec.json.decode((await adapter.complete(OP_CHAT, "claude-sim", chat())).body)
    chunks, stream = await drain(adapter, chat(stream=True, stream_options={"include_usage": True}))
    raw = b"".join(chunks)
    assert b"[DONE]" not in raw and b'"choices":[]' not in raw and b'"usage"' not in raw
    objs = chunk_objects(chunks)
    assert all(o["object"] == "chat.completion.chunk" and o["model"] == "claude-sim" for o in objs)
    assert len({o["id"] for o in objs}) == 1 and objs[0]["id"].startswith("chatcmpl-msg_")
    assert objs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(o["choices"][0]["delta"].get("content") or "" for o in objs)
    assert text == full["choices"][0]["message"]["content"]
    assert objs[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert stream.usage == Usage(4, 5, 0)
    usage_chunk = msgspec.json.decode(stream.usage_chunk)
    assert usage_chunk["choices"] == [] and usage_chunk["id"] == objs[0]["id"]
    assert usage_chunk["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9,
                                    "prompt_tokens_details": {"cached_tokens": 0}}


async def test_stream_tool_call_arguments_reassemble(adapter: AnthropicAdapter) -> None:
    chunks, stream = await drain(adapter, chat("weather?", tools=[WEATHER], tool_choice="required", stream=True))
    deltas = [o["choices"][0]["delta"] for o in chunk_objects(chunks)]
    head = deltas[1]["tool_calls"][0]
    assert head["index"] == 0 and head["id"].startswith("toolu_") and head["type"] == "function"
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[2:-1]]
    assert len(fragments) > 1
    assert isinstance(msgspec.json.decode("".join(fragments))["city"], str)
    assert chunk_objects(chunks)[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.usage.output_units == len(fragments)


@pytest.mark.parametrize("stream", [False, True])
async def test_429_carries_retry_after(adapter: AnthropicAdapter, stream: bool) -> None:
    body = chat(stream=stream)
    call = adapter.open_stream if stream else adapter.complete
    exc = await upstream_error(call(OP_CHAT, "claude-sim+status=429+retry_after=7", body))
    assert (exc.kind, exc.status, exc.retry_after) == ("status", 429, 7)
    assert exc.message == "Simulated error 429."


@pytest.mark.parametrize("stream", [False, True])
async def test_529_overloaded_is_a_5xx_status_error(adapter: AnthropicAdapter, stream: bool) -> None:
    call = adapter.open_stream if stream else adapter.complete
    exc = await upstream_error(call(OP_CHAT, "claude-sim+status=529", chat(stream=stream)))
    assert (exc.kind, exc.status, exc.message) == ("status", 529, "Overloaded")
    failure = from_upstream(exc, "anthropic")
    assert failure.error.code == 502 and "returned 529: Overloaded" in failure.error.message


async def test_wrong_key_is_401(sim: Sim) -> None:
    adapter = await _adapter(sim.base_url, key="wrong")
    try:
        exc = await upstream_error(adapter.complete(OP_CHAT, "claude-sim", chat()))
    finally:
        await adapter.close()
    assert (exc.status, exc.message) == (401, "invalid x-api-key")


async def test_malformed_answers(adapter: AnthropicAdapter) -> None:
    exc = await upstream_error(adapter.complete(OP_CHAT, "claude-sim+malformed", chat()))
    assert exc.kind == "malformed"
    exc = await upstream_error(drain(adapter, chat(stream=True), "claude-sim+malformed"))
    assert exc.kind == "malformed" and "content_block_start" in exc.message


async def test_error_event_mid_stream(adapter: AnthropicAdapter) -> None:
    received: list[bytes] = []
    stream = await adapter.open_stream(OP_CHAT, "claude-sim+die_after=2+status=529", chat(stream=True))
    with pytest.raises(UpstreamError) as info:
        async for events in stream:
            received.append(events)
    await stream.aclose()
    assert (info.value.kind, info.value.status) == ("status", 529)
    assert info.value.message == "overloaded_error: Overloaded"
    # Metered as far as it got: message_start's input count, one output token per delta.
    assert stream.usage == Usage(4, 2, 0) and stream.usage_chunk is None


async def test_stream_closed_cleanly_without_message_stop_is_truncated(adapter: AnthropicAdapter) -> None:
    received: list[bytes] = []
    stream = await adapter.open_stream(OP_CHAT, "claude-sim+cut_after=3", chat(stream=True))
    with pytest.raises(UpstreamError) as info:
        async for events in stream:
            received.append(events)
    await stream.aclose()
    assert info.value.kind == "connection" and "no message_stop" in info.value.message
    deltas = [c["choices"][0]["delta"].get("content") for c in chunk_objects(received)]
    assert "".join(d or "" for d in deltas) == "Echo: hello brave"  # the three pieces were relayed
    assert all(c["choices"][0]["finish_reason"] is None for c in chunk_objects(received))
    assert stream.usage == Usage(4, 3, 0) and stream.usage_chunk is None


async def test_stream_cut_off_is_a_connection_error(adapter: AnthropicAdapter) -> None:
    exc = await upstream_error(drain(adapter, chat(stream=True), "claude-sim+die_after=1"))
    assert exc.kind == "connection"


async def test_reset_and_hang(sim: Sim) -> None:
    adapter = AnthropicAdapter(ProviderSettings(slug="anthropic", kind="anthropic", base_url=sim.base_url,
                                                api_key=KEY, read_timeout_s=0.3))
    await adapter.start()
    try:
        exc = await upstream_error(adapter.complete(OP_CHAT, "claude-sim+reset", chat()))
        assert exc.kind == "connection"
        exc = await upstream_error(adapter.open_stream(OP_CHAT, "claude-sim+hang", chat(stream=True)))
        assert exc.kind == "timeout"
    finally:
        await adapter.close()


async def test_refusals_never_reach_the_upstream(sim: Sim, adapter: AnthropicAdapter) -> None:
    async with aiohttp.ClientSession() as http:
        await http.delete(sim.base_url + "/_sim/requests")
    exc = await upstream_error(adapter.complete(OP_CHAT, "claude-sim", chat(n=3)))
    assert (exc.kind, exc.status) == ("malformed", 400) and "'n' = 3" in exc.message
    assert from_upstream(exc, "anthropic").error.code == 400
    exc = await upstream_error(adapter.complete(OP_EMBEDDINGS, "claude-sim", chat()))
    assert exc.status == 400
    assert await sim.journal() == []


async def test_crlf_split_events_from_a_raw_upstream() -> None:
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_r", "model": "claude-r", "content": [],
            "usage": {"input_tokens": 3, "cache_read_input_tokens": 50, "cache_creation_input_tokens": 2}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("brand_new_event", {"type": "brand_new_event"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hi ☃"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 4}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    whole = b"".join(b"event: " + n.encode() + b"\r\ndata: " + _enc(d) + b"\r\n\r\n" for n, d in events)

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(0, len(whole), 37):
            await resp.write(whole[i : i + 37])
            await asyncio.sleep(0)
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    adapter = await _adapter(f"http://127.0.0.1:{runner.addresses[0][1]}")
    try:
        chunks, stream = await drain(adapter, chat(stream=True))
    finally:
        await adapter.close()
        await runner.cleanup()
    objs = chunk_objects(chunks)
    assert [o["choices"][0]["delta"] for o in objs] == [{"role": "assistant", "content": ""}, {"content": "Hi ☃"}, {}]
    assert stream.usage == Usage(55, 4, 50)


# --- the simulator speaks the real wire format ----------------------------------------------


async def test_sim_checks_headers_and_max_tokens(sim: Sim) -> None:
    body = {"model": "claude-sim", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    good = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    cases = [
        ({"anthropic-version": "2023-06-01"}, body, 401, "authentication_error"),
        ({**good, "x-api-key": "nope"}, body, 401, "authentication_error"),
        ({"x-api-key": KEY}, body, 400, "invalid_request_error"),
        (good, {k: v for k, v in body.items() if k != "max_tokens"}, 400, "invalid_request_error"),
        (good, {**body, "model": "claude-sim+status=503"}, 503, "api_error"),
    ]
    async with aiohttp.ClientSession() as http:
        for headers, payload, status, kind in cases:
            async with http.post(sim.base_url + "/v1/messages", json=payload, headers=headers) as resp:
                assert resp.status == status, (headers, payload)
                data = await resp.json()
            assert data["type"] == "error" and data["error"]["type"] == kind
        async with http.post(sim.base_url + "/v1/messages", json={**body, "stream": True}, headers=good) as resp:
            raw = (await resp.read()).decode()
    names = [block.split("\n")[0] for block in raw.split("\n\n") if block]
    assert names == ["event: message_start", "event: content_block_start", "event: ping",
                     "event: content_block_delta", "event: content_block_delta", "event: content_block_stop",
                     "event: message_delta", "event: message_stop"]


async def test_official_anthropic_sdk_against_the_sim(sim: Sim) -> None:
    async with anthropic.AsyncAnthropic(base_url=sim.base_url, api_key=KEY, max_retries=0) as client:
        message = await client.messages.create(
            model="claude-sim", max_tokens=64, system="be terse",
            messages=[{"role": "user", "content": "sdk says hi"}])
        assert message.content[0].type == "text" and message.content[0].text == "Echo: sdk says hi"
        assert message.stop_reason == "end_turn"
        assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 4)

        async with client.messages.stream(model="claude-sim", max_tokens=64,
                                          messages=[{"role": "user", "content": "sdk says hi"}]) as stream:
            parts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        assert "".join(parts) == "Echo: sdk says hi" and len(parts) == 4
        assert final.usage.output_tokens == 4 and final.stop_reason == "end_turn"

        tools = [{"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}]
        async with client.messages.stream(model="claude-sim", max_tokens=64, tools=tools,
                                          messages=[{"role": "user", "content": "weather?"}]) as stream:
            final = await stream.get_final_message()
        (block,) = final.content
        assert block.type == "tool_use" and block.name == "get_weather" and isinstance(block.input["city"], str)

        with pytest.raises(anthropic.RateLimitError):
            await client.messages.create(model="claude-sim+status=429", max_tokens=8,
                                         messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.InternalServerError) as info:
            await client.messages.create(model="claude-sim+status=529", max_tokens=8,
                                         messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 529
