"""Chat completions, as the gateway sends them, against OpenAI's published schemas
(CreateChatCompletionResponse, CreateChatCompletionStreamResponse): plain, tools,
response_format json_schema, every stream chunk and the include_usage chunk, through each path
that builds them (an OpenAI-compatible upstream passed through, translated from Anthropic and from
Gemini, and each of those replayed from the response cache)."""

import json
import secrets
from typing import Any

import pytest

from tests.conformance.openai_schemas import OpenAISchemas
from tests.conformance.wire import DONE, SseEvent, stream
from tests.integration.cluster import Cluster

TOOLS = [{"type": "function", "function": {
    "name": "lookup", "description": "find things",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": {
    "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}}}

# (model, served from the cache): a cached answer is replayed from what the first request stored.
ROUTES = [
    pytest.param("sim/gpt-sim", False, id="openai-compatible"),
    pytest.param("anthropic/claude-haiku-4-5", False, id="from-anthropic"),
    pytest.param("google/gemini-2.5-flash", False, id="from-gemini"),
    pytest.param("sim/gpt-sim", True, id="cached-openai-compatible"),
    pytest.param("anthropic/claude-haiku-4-5", True, id="cached-from-anthropic"),
    pytest.param("google/gemini-2.5-flash", True, id="cached-from-gemini"),
]


def _request(model: str, cached: bool, **body: Any) -> dict[str, Any]:
    request = {"model": model, "messages": [{"role": "user", "content": f"hello {secrets.token_hex(4)}"}], **body}
    if cached:
        request["temperature"] = 0  # deterministic, so the cache stores and serves it
    return request


def _answer(gateway: Cluster, cached: bool, request: dict[str, Any]) -> dict[str, Any]:
    client = gateway.client()
    if cached:
        client.chat.completions.create(**request)
    raw = client.chat.completions.with_raw_response.create(**request)
    assert raw.headers.get("X-Cache-Status", "").startswith("hit") == cached, raw.headers
    body: dict[str, Any] = raw.http_response.json()
    assert body["meta"]["model"] == request["model"]  # our extension, where the schema allows more
    return body


def _chunks(gateway: Cluster, cached: bool, request: dict[str, Any]) -> list[dict[str, Any]]:
    if cached:
        stream(gateway.base_url, gateway.admin_key, "/chat/completions", request)
    response, events = stream(gateway.base_url, gateway.admin_key, "/chat/completions", request)
    assert response.headers.get("X-Cache-Status", "").startswith("hit") == cached, response.headers
    assert events[-1] == SseEvent(None, DONE), events[-1]
    return [event.data for event in events[:-1]]


def _check_chunks(openai_schemas: OpenAISchemas, chunks: list[dict[str, Any]]) -> None:
    assert chunks
    for index, chunk in enumerate(chunks):
        try:
            openai_schemas.check("CreateChatCompletionStreamResponse", chunk)
        except AssertionError as exc:
            raise AssertionError(f"chunk {index} of {len(chunks)}: {exc}") from None


@pytest.mark.parametrize(("model", "cached"), ROUTES)
def test_completion(gateway: Cluster, openai_schemas: OpenAISchemas, model: str, cached: bool) -> None:
    body = _answer(gateway, cached, _request(model, cached))
    openai_schemas.check("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"].startswith("Echo: hello")


@pytest.mark.parametrize(("model", "cached"), ROUTES)
def test_tool_calls(gateway: Cluster, openai_schemas: OpenAISchemas, model: str, cached: bool) -> None:
    body = _answer(gateway, cached, _request(model, cached, tools=TOOLS))
    openai_schemas.check("CreateChatCompletionResponse", body)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["tool_calls"][0]["type"] == "function"


@pytest.mark.parametrize(("model", "cached"), ROUTES)
def test_json_schema_answer(gateway: Cluster, openai_schemas: OpenAISchemas, model: str, cached: bool) -> None:
    body = _answer(gateway, cached, _request(model, cached, response_format=JSON_SCHEMA))
    openai_schemas.check("CreateChatCompletionResponse", body)
    if not model.startswith("anthropic/"):  # Anthropic has no JSON mode: it is asked in words (the simulator echoes)
        assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)


@pytest.mark.parametrize(("model", "cached"), ROUTES)
def test_every_stream_chunk(gateway: Cluster, openai_schemas: OpenAISchemas, model: str, cached: bool) -> None:
    chunks = _chunks(gateway, cached, _request(model, cached))
    _check_chunks(openai_schemas, chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks).startswith("Echo: hello")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(("model", "cached"), ROUTES)
def test_the_usage_chunk(gateway: Cluster, openai_schemas: OpenAISchemas, model: str, cached: bool) -> None:
    chunks = _chunks(gateway, cached, _request(model, cached, stream_options={"include_usage": True}))
    _check_chunks(openai_schemas, chunks)
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0 and "meta" in usage
    # The usage chunk is one of the stream's: the same completion id as every other chunk.
    assert {c["id"] for c in chunks} == {usage["id"]}


@pytest.mark.parametrize(("model", "cached"), ROUTES)
def test_streamed_tool_calls(gateway: Cluster, openai_schemas: OpenAISchemas, model: str, cached: bool) -> None:
    chunks = _chunks(gateway, cached, _request(model, cached, tools=TOOLS, stream_options={"include_usage": True}))
    _check_chunks(openai_schemas, chunks)
    calls = [call for c in chunks if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert calls and calls[0]["function"]["name"] == "lookup"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
