"""Gemini adapter: pure translation both ways, then complete()/open_stream() against the simulator in-process."""

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from libs.contracts.bus.inference import OP_CHAT, OP_EMBEDDINGS, Usage
from services.router.providers import adapter_modules, known_provider_hints
from services.router.providers.base import ProviderSettings, UpstreamError
from services.router.providers.gemini import GeminiAdapter, gemini_error
from services.router.providers.gemini_response import ChatStream, chat_response, embeddings_response
from services.router.providers.gemini_translate import (
    TranslationError,
    chat_request,
    clean_schema,
    embeddings_request,
)
from tests.unit.sim_server import Sim, running_sim
from tools.upstream_sim.openai_embeddings import embed

KEY = "gk-test"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city", "strict": True,
    "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                   "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}


def _encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _events(raw: bytes) -> list[dict[str, Any]]:
    chunks = [e for e in raw.split(b"\n\n") if e]
    assert all(c.startswith(b"data: ") for c in chunks)
    return [msgspec.json.decode(c[len(b"data: "):]) for c in chunks]


# --- OpenAI -> Gemini ------------------------------------------------------------------------


def test_discovery_enables_google_by_gemini_api_key() -> None:
    assert adapter_modules()["gemini"].ADAPTER is GeminiAdapter
    assert known_provider_hints()["google"] == "GEMINI_API_KEY"


def test_messages_roles_parts_tools_and_merging() -> None:
    body = {"model": "google/gemini-2.5-flash", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "Compare"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a/cat.webp?x=1"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
        ]},
        {"role": "user", "content": "and the weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 3}'},
        {"role": "user", "content": "thanks"},
    ]}
    assert chat_request(body) == {
        "contents": [
            {"role": "user", "parts": [
                {"text": "Compare"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
                {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/a/cat.webp?x=1"}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
                {"text": "and the weather?"},
            ]},
            {"role": "model", "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": {"temp": 3}}}},
                {"text": "thanks"},
            ]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use metric."}]},
    }


def test_other_content_parts() -> None:
    body = {"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER", "filename": "a.pdf"}},
        {"type": "image_url", "image_url": {"url": "data:,hello%20world"}},
        {"type": "image_url", "image_url": "gs://bucket/x.png"},
    ]}]}
    assert chat_request(body)["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGR"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBER"}},
        {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(b"hello world").decode()}},
        {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/x.png"}},
    ]


def test_tools_and_generation_config() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER, {"type": "function", "function": {
        "name": "now", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "required", "temperature": 0.2, "top_p": 0.9, "max_tokens": 10,
        "max_completion_tokens": 64, "stop": "END", "n": 2, "seed": 7, "presence_penalty": 0.5,
        "frequency_penalty": 0.1, "reasoning_effort": "low", "logit_bias": {"1": 2}, "user": "u",
        "parallel_tool_calls": False, "models": ["google/x"]}
    out = chat_request(body)
    assert out["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather in a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "now"},  # an OBJECT without properties is refused by Gemini: parameters left out
    ]}]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert out["generationConfig"] == {
        "temperature": 0.2, "topP": 0.9, "candidateCount": 2, "seed": 7, "presencePenalty": 0.5,
        "frequencyPenalty": 0.1, "maxOutputTokens": 64, "stopSequences": ["END"],
        "thinkingConfig": {"thinkingBudget": 1024}}
    assert set(out) == {"contents", "tools", "toolConfig", "generationConfig"}


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    out = chat_request({"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER], "tool_choice": choice})
    assert out["toolConfig"] == {"functionCallingConfig": config}


def test_response_format() -> None:
    messages = [{"role": "user", "content": "x"}]
    assert chat_request({"messages": messages, "response_format": {"type": "json_object"}})["generationConfig"] == {
        "responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": schema}}
    assert chat_request({"messages": messages, "response_format": fmt})["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "properties": {"a": {"type": "integer"}}}}
    assert "generationConfig" not in chat_request({"messages": messages, "response_format": {"type": "text"}})


def test_clean_schema() -> None:
    schema = {
        "$schema": "x", "$id": "y", "type": "object", "additionalProperties": False, "strict": True,
        "$defs": {"Pet": {"type": "object", "properties": {"kind": {"const": "cat"}}, "additionalProperties": False}},
        "properties": {
            "pet": {"$ref": "#/$defs/Pet"},
            "when": {"type": "string", "format": "date-time"},
            "mail": {"type": "string", "format": "email", "minLength": 3},
            "note": {"type": ["string", "null"], "description": "d"},
            "either": {"oneOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "boolean"}]},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^a"}, "uniqueItems": True},
            "additionalProperties": {"type": "string"},  # a property *named* like a keyword stays
        },
        "required": ["pet"],
    }
    assert clean_schema(schema) == {
        "type": "object",
        "properties": {
            "pet": {"type": "object", "properties": {"kind": {"enum": ["cat"]}}},
            "when": {"type": "string", "format": "date-time"},
            "mail": {"type": "string", "minLength": 3},
            "note": {"type": "string", "nullable": True, "description": "d"},
            "either": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^a"}},
            "additionalProperties": {"type": "string"},
        },
        "required": ["pet"],
    }
    recursive = {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"}
    assert clean_schema(recursive)["type"] == "object"  # cut off after 16 levels, no RecursionError


@pytest.mark.parametrize(("body", "needle"), [
    ({"messages": []}, "non-empty"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}, "file_id"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://h/x.png"}}]}]},
     "scheme"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://[::1"}}]}]},
     "malformed"),  # urlsplit's ValueError was a router 500 (schemathesis finding)
    ({"messages": [{"role": "tool", "tool_call_id": "call_x", "content": "1"}]}, "tool_call_id"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{"}}]}]},
     "not JSON"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "text"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]}, "function tools"),
    ({"messages": [{"role": "critic", "content": "x"}]}, "role"),
])
def test_untranslatable_requests_are_refused(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(TranslationError, match=needle):
        chat_request(body)


# --- Gemini -> OpenAI ------------------------------------------------------------------------


def test_chat_response_text_calls_usage() -> None:
    answer = {
        "candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
            {"text": "secret plan", "thought": True},
            {"text": "Let me "}, {"text": "check."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
        ]}}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
                          "cachedContentTokenCount": 4, "totalTokenCount": 22},
        "modelVersion": "gemini-2.5-flash", "responseId": "r1",
    }
    out, usage = chat_response(answer, "gemini-2.5-flash")
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert isinstance(out["created"], int) and out["model"] == "gemini-2.5-flash"
    (choice,) = out["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "Let me check."
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_") and len(call["id"]) == 29 and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert out["usage"] == {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22,
                            "prompt_tokens_details": {"cached_tokens": 4},
                            "completion_tokens_details": {"reasoning_tokens": 7}}
    assert usage == Usage(input_units=10, output_units=12, cached_units=4)


@pytest.mark.parametrize(("reason", "expected"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("OTHER", "stop"), ("MALFORMED_FUNCTION_CALL", "stop"),
])
def test_finish_reasons(reason: str, expected: str) -> None:
    out, usage = chat_response({"candidates": [{"finishReason": reason, "content": {"parts": [{"text": "x"}]}}]}, "m")
    assert out["choices"][0]["finish_reason"] == expected
    assert usage is None and "usage" not in out


def test_chat_response_several_candidates_and_blocked_prompt() -> None:
    out, _ = chat_response({"candidates": [
        {"index": 1, "finishReason": "STOP", "content": {"parts": [{"text": "b"}]}},
        {"index": 0, "finishReason": "SAFETY"},
    ]}, "m")
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in out["choices"]] == [
        (0, None, "content_filter"), (1, "b", "stop")]
    out, usage = chat_response({"promptFeedback": {"blockReason": "SAFETY"},
                                "usageMetadata": {"promptTokenCount": 3}}, "m")
    assert out["choices"] == [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None},
                               "logprobs": None, "finish_reason": "content_filter"}]
    assert usage == Usage(3, 0, 0)
    with pytest.raises(TranslationError):
        chat_response({"candidates": []}, "m")


def test_stream_translation() -> None:
    stream = ChatStream("gemini-x")
    usage = {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6}
    first = stream.feed({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
                        "usageMetadata": {"promptTokenCount": 4}})
    second = stream.feed({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "lo"}, {"functionCall": {"name": "f", "args": {"a": 1}}},
        {"functionCall": {"name": "g"}}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": usage})
    events = _events(first + second)
    heads = {(e["object"], e["model"], e["id"]) for e in events}
    assert heads == {("chat.completion.chunk", "gemini-x", events[0]["id"])}
    deltas = [(e["choices"][0]["delta"], e["choices"][0]["finish_reason"]) for e in events]
    assert deltas[0] == ({"role": "assistant", "content": ""}, None)
    assert deltas[1] == ({"content": "Hel"}, None) and deltas[2] == ({"content": "lo"}, None)
    calls = [d["tool_calls"][0] for d, _ in deltas[3:5]]
    assert [(c["index"], c["type"], c["function"]) for c in calls] == [
        (0, "function", {"name": "f", "arguments": '{"a":1}'}), (1, "function", {"name": "g", "arguments": "{}"})]
    assert all(c["id"].startswith("call_") for c in calls)
    assert deltas[5] == ({}, "tool_calls") and len(deltas) == 6
    chunk, got = stream.close()
    assert got == Usage(4, 2, 0)
    assert chunk is not None
    tail = msgspec.json.decode(chunk)
    assert tail["choices"] == [] and tail["usage"]["total_tokens"] == 6 and tail["id"] == events[0]["id"]


def test_stream_translation_edge_cases() -> None:
    unfinished = ChatStream("m")
    unfinished.feed({"candidates": [{"content": {"parts": [{"text": "x"}]}}]})
    with pytest.raises(TranslationError, match="finish reason"):
        unfinished.close()
    with pytest.raises(TranslationError, match="without any candidate"):
        ChatStream("m").close()
    blocked = ChatStream("m")
    events = _events(blocked.feed({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}))
    assert [e["choices"][0]["finish_reason"] for e in events] == [None, "content_filter"]
    assert blocked.close() == (None, None)


def test_embeddings_translation() -> None:
    request, fmt = embeddings_request({"input": ["a", "b"], "dimensions": 8, "encoding_format": "base64"},
                                      "models/text-embedding-004")
    assert fmt == "base64"
    assert request == {"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]}, "outputDimensionality": 8}
        for t in ("a", "b")]}
    assert embeddings_request({"input": "solo"}, "models/e") == (
        {"requests": [{"model": "models/e", "content": {"parts": [{"text": "solo"}]}}]}, "float")
    for bad in ([1, 2, 3], [[1, 2]], [], None, ["a", 1]):
        with pytest.raises(TranslationError):
            embeddings_request({"input": bad}, "models/e")
    with pytest.raises(TranslationError, match="encoding_format"):
        embeddings_request({"input": "x", "encoding_format": "int8"}, "models/e")

    answers = [{"embeddings": [{"values": [0.5, -1.0]}]}, {"embeddings": [{"values": [0.25, 2.0]}]}]
    out, usage = embeddings_response(answers, "e", "float", 2)
    assert out == {"object": "list", "model": "e", "usage": {"prompt_tokens": 0, "total_tokens": 0}, "data": [
        {"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
        {"object": "embedding", "index": 1, "embedding": [0.25, 2.0]}]}
    assert usage == Usage(0, 0, 0)
    out, _ = embeddings_response(answers, "e", "base64", 2)
    assert struct.unpack("<2f", base64.b64decode(out["data"][1]["embedding"])) == (0.25, 2.0)
    with pytest.raises(TranslationError, match="3 inputs"):
        embeddings_response(answers, "e", "float", 3)


@pytest.mark.parametrize(("status", "body", "headers", "expected"), [
    (429, b'{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":'
          b'[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"33.2s"}]}}', {},
     (429, 34, "Quota exceeded")),
    (429, b'{"error":{"code":429,"message":"q","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo",'
          b'"retryDelay":"30s"}]}}', {"Retry-After": "2"}, (429, 2, "q")),
    (400, b'{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":'
          b'[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}', {},
     (401, None, "API key not valid.")),
    (503, b'[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]', {},
     (503, None, "The model is overloaded.")),
    (500, b"<html>oops</html>", {}, (500, None, "<html>oops</html>")),
])
def test_gemini_error(status: int, body: bytes, headers: dict[str, str], expected: tuple[Any, ...]) -> None:
    exc = gemini_error(status, body, headers)
    assert exc.kind == "status" and (exc.status, exc.retry_after, exc.message) == expected


# --- against the simulator -------------------------------------------------------------------


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Sim]:
    async with running_sim(KEY) as server:
        yield server


async def _adapter(base_url: str, key: str = KEY) -> GeminiAdapter:
    adapter = GeminiAdapter(ProviderSettings(slug="google", kind="gemini", base_url=base_url, api_key=key,
                                             read_timeout_s=2))
    await adapter.start()
    return adapter


@pytest.fixture
async def adapter(sim: Sim) -> AsyncIterator[GeminiAdapter]:
    async with aiohttp.ClientSession() as http:
        await http.delete(sim.base_url + "/_sim/requests")
    a = await _adapter(sim.base_url)
    try:
        yield a
    finally:
        await a.close()


def _chat(text: str = "hello brave world", **extra: Any) -> bytes:
    return _encode({"model": "google/gemini-sim", "messages": [
        {"role": "system", "content": "be kind"}, {"role": "user", "content": text}], **extra})


async def _drain(adapter: GeminiAdapter, model: str, body: bytes) -> tuple[bytes, Any]:
    stream = await adapter.open_stream(OP_CHAT, model, body)
    chunks = []
    try:
        async for events in stream:
            assert events.endswith(b"\n\n")
            chunks.append(events)
    finally:
        await stream.aclose()
    return b"".join(chunks), stream


async def _error(call: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await call
    return info.value


async def test_complete_chat(sim: Sim, adapter: GeminiAdapter) -> None:
    result = await adapter.complete(OP_CHAT, "gemini-sim", _chat(temperature=0.5, max_tokens=50))
    answer = msgspec.json.decode(result.body)
    assert answer["choices"][0]["message"]["content"] == "Echo: hello brave world"
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["model"] == "gemini-sim"
    assert result.usage == Usage(input_units=5, output_units=4) and result.latency_ms > 0
    (entry,) = await sim.journal()
    assert entry["path"] == "/v1beta/models/gemini-sim:generateContent"
    assert entry["headers"]["x-goog-api-key"] == KEY and "authorization" not in entry["headers"]
    assert entry["body"] == {"contents": [{"role": "user", "parts": [{"text": "hello brave world"}]}],
                             "systemInstruction": {"parts": [{"text": "be kind"}]},
                             "generationConfig": {"temperature": 0.5, "maxOutputTokens": 50}}


async def test_complete_tool_call_round_trip(adapter: GeminiAdapter) -> None:
    result = await adapter.complete(OP_CHAT, "gemini-sim", _chat("weather in Oslo?", tools=[WEATHER]))
    choice = msgspec.json.decode(result.body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"city"}'}
    follow_up = _encode({"model": "g", "tools": [WEATHER], "messages": [
        {"role": "user", "content": "weather in Oslo?"}, choice["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]})
    result = await adapter.complete(OP_CHAT, "gemini-sim", follow_up)
    assert msgspec.json.decode(result.body)["choices"][0]["message"]["content"] == "Tool said: sunny"


async def test_stream_text_withholds_the_tail(sim: Sim, adapter: GeminiAdapter) -> None:
    raw, stream = await _drain(adapter, "gemini-sim", _chat("one two three", stream=True))
    assert b"[DONE]" not in raw
    events = _events(raw)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "Echo: one two three"
    assert [e["choices"][0]["finish_reason"] for e in events][-2:] == [None, "stop"]
    assert all(e["choices"] for e in events)  # no usage-only chunk among them
    assert stream.usage == Usage(input_units=5, output_units=4)
    tail = msgspec.json.decode(stream.usage_chunk)
    assert tail["choices"] == [] and tail["usage"]["completion_tokens"] == 4 and tail["id"] == events[0]["id"]
    (entry,) = await sim.journal()
    assert entry["path"] == "/v1beta/models/gemini-sim:streamGenerateContent"


async def test_stream_function_call(adapter: GeminiAdapter) -> None:
    raw, stream = await _drain(adapter, "gemini-sim", _chat("weather?", stream=True, tools=[WEATHER],
                                                             tool_choice={"type": "function",
                                                                          "function": {"name": "get_weather"}}))
    deltas = [e["choices"][0] for e in _events(raw)]
    assert deltas[0]["delta"]["role"] == "assistant"
    (call,) = deltas[1]["delta"]["tool_calls"]
    assert call["index"] == 0 and call["function"] == {"name": "get_weather", "arguments": '{"city":"city"}'}
    assert deltas[-1]["finish_reason"] == "tool_calls" and len(deltas) == 3
    assert stream.usage is not None and stream.usage_chunk is not None


async def test_embeddings_float_base64_and_batches(sim: Sim, adapter: GeminiAdapter) -> None:
    result = await adapter.complete(OP_EMBEDDINGS, "embed-sim", b'{"model":"google/e","input":"hi","dimensions":8}')
    answer = msgspec.json.decode(result.body)
    assert answer["data"][0]["embedding"] == embed(b"s:hi", 8).tolist()
    assert answer["usage"] == {"prompt_tokens": 0, "total_tokens": 0} and result.usage == Usage(0, 0, 0)
    texts = [f"text {i}" for i in range(150)]
    result = await adapter.complete(OP_EMBEDDINGS, "embed-sim",
                                    _encode({"model": "e", "input": texts, "encoding_format": "base64"}))
    data = msgspec.json.decode(result.body)["data"]
    assert [d["index"] for d in data] == list(range(150))
    assert base64.b64decode(data[149]["embedding"]) == embed(b"s:text 149", 16).tobytes()
    journal = await sim.journal()
    assert [e["path"] for e in journal] == ["/v1beta/models/embed-sim:batchEmbedContents"] * 3
    assert [len(e["body"]["requests"]) for e in journal[1:]] == [100, 50]
    assert journal[0]["body"]["requests"][0] == {"model": "models/embed-sim", "content": {"parts": [{"text": "hi"}]},
                                                 "outputDimensionality": 8}


async def test_token_id_embeddings_are_refused_locally(sim: Sim, adapter: GeminiAdapter) -> None:
    exc = await _error(adapter.complete(OP_EMBEDDINGS, "embed-sim", b'{"model":"e","input":[1,2,3]}'))
    assert (exc.kind, exc.status) == ("malformed", 400) and "token-id" in exc.message
    exc = await _error(adapter.complete(OP_CHAT, "gemini-sim", b"[]"))
    assert (exc.kind, exc.status) == ("malformed", 400)
    assert await sim.journal() == []


async def test_429_carries_retry_after(adapter: GeminiAdapter) -> None:
    model = "gemini-sim+status=429+retry_after=7"
    for call in (adapter.complete(OP_CHAT, model, _chat()), adapter.open_stream(OP_CHAT, model, _chat())):
        exc = await _error(call)
        assert (exc.kind, exc.status, exc.retry_after) == ("status", 429, 7)
        assert exc.message.startswith("Resource has been exhausted")


async def test_503_message_is_extracted(adapter: GeminiAdapter) -> None:
    exc = await _error(adapter.complete(OP_CHAT, "gemini-sim+status=503", _chat()))
    assert (exc.kind, exc.status, exc.retry_after) == ("status", 503, None)
    assert exc.message == "The model is overloaded. Please try again later. (simulated)"
    exc = await _error(adapter.complete(OP_EMBEDDINGS, "embed-sim+status=503", b'{"input":"x"}'))
    assert exc.status == 503


async def test_malformed_answers(adapter: GeminiAdapter) -> None:
    exc = await _error(adapter.complete(OP_CHAT, "gemini-sim+malformed", _chat()))
    assert exc.kind == "malformed" and exc.status is None
    exc = await _error(_drain(adapter, "gemini-sim+malformed", _chat()))
    assert exc.kind == "malformed"


async def test_stream_cut_before_finish_is_a_connection_error(adapter: GeminiAdapter) -> None:
    exc = await _error(_drain(adapter, "gemini-sim+die_after=2", _chat("a b c d e")))
    assert exc.kind == "connection"


async def test_stream_closed_cleanly_without_finish_reason_is_truncated(adapter: GeminiAdapter) -> None:
    stream = await adapter.open_stream(OP_CHAT, "gemini-sim+cut_after=2", _chat("a b c d e"))
    received = b""
    with pytest.raises(UpstreamError) as info:
        async for events in stream:
            received += events
    await stream.aclose()
    assert info.value.kind == "connection" and "end marker" in info.value.message
    assert b'"content":"Echo:"' in received and b'"content":" a"' in received and b'"stop"' not in received
    # Gemini's usageMetadata is cumulative: the last one seen is what was delivered.
    assert stream.usage == Usage(input_units=7, output_units=2) and stream.usage_chunk is None


async def test_wrong_key_is_a_credentials_error(sim: Sim) -> None:
    adapter = await _adapter(sim.base_url + "/v1beta/", key="wrong")  # a versioned base URL is kept as is
    try:
        exc = await _error(adapter.complete(OP_CHAT, "gemini-sim", _chat()))
        assert (exc.status, exc.message) == (401, "API key not valid. Please pass a valid API key.")
    finally:
        await adapter.close()


async def test_sim_without_key_unknown_method_and_array_stream(sim: Sim) -> None:
    url = sim.base_url + "/v1beta/models/gemini-sim"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(url + ":generateContent", json=body) as resp:
            assert resp.status == 403 and (await resp.json())["error"]["status"] == "PERMISSION_DENIED"
        async with http.post(url + ":countTokens", json=body, params={"key": KEY}) as resp:
            assert resp.status == 404 and (await resp.json())["error"]["code"] == 404
        async with http.post(url + ":streamGenerateContent", json=body, params={"key": KEY}) as resp:
            chunks = await resp.json()
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "Echo: hi there"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
