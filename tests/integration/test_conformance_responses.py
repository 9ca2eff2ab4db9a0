"""/v1/responses, as the gateway sends it, against OpenAI's published schemas: the `Response`
body (text, function calls and their round trip, json_schema, incomplete) and every stream event
we emit, each against its own ResponseStreamEvent variant, through each provider path: an
OpenAI-compatible upstream, Anthropic and Gemini (all translated from chat by the router; the
surface is never served from the cache, so there is no cached path here).

The known gap these tests found first: `output_text` parts left out `logprobs`, which the schema
requires, in bodies and in `response.content_part.added` / `.done`."""

import json
import secrets
from typing import Any

import pytest

from tests.conformance.openai_schemas import OpenAISchemas
from tests.conformance.wire import SseEvent, stream
from tests.integration.api import call
from tests.integration.cluster import Cluster

TOOLS = [{"type": "function", "name": "lookup", "description": "find things",
          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}]
JSON_FORMAT = {"format": {"type": "json_schema", "name": "answer", "strict": True, "schema": {
    "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}}}
MODELS = [pytest.param("sim/gpt-sim", id="openai-compatible"),
          pytest.param("anthropic/claude-haiku-4-5", id="from-anthropic"),
          pytest.param("google/gemini-2.5-flash", id="from-gemini")]
UNION = "ResponseStreamEvent"
TEXT_EVENTS = {"response.created", "response.in_progress", "response.output_item.added",
               "response.content_part.added", "response.output_text.delta", "response.output_text.done",
               "response.content_part.done", "response.output_item.done"}
CALL_EVENTS = {"response.created", "response.in_progress", "response.output_item.added",
               "response.function_call_arguments.delta", "response.function_call_arguments.done",
               "response.output_item.done"}


def _respond(gateway: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    response = call(gateway, "POST", "/responses", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _events(gateway: Cluster, openai_schemas: OpenAISchemas, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event of a streamed response, each checked against its variant and the union; the
    SSE event name is the event's type and sequence numbers count from 0 without a gap."""
    _, events = stream(gateway.base_url, gateway.admin_key, "/responses", body)
    for index, event in enumerate(events):
        assert isinstance(event, SseEvent) and event.name == event.data["type"], event
        try:
            openai_schemas.check_stream_event(UNION, event.data)
        except AssertionError as exc:
            raise AssertionError(f"event {index} ({event.name}): {exc}") from None
        assert event.data["sequence_number"] == index
    return [event.data for event in events]


def _types(events: list[dict[str, Any]]) -> set[str]:
    return {event["type"] for event in events}


def _hello() -> str:
    return f"hello {secrets.token_hex(4)}"


@pytest.mark.parametrize("model", MODELS)
def test_text_response(gateway: Cluster, openai_schemas: OpenAISchemas, model: str) -> None:
    body = _respond(gateway, {"model": model, "input": _hello(), "instructions": "be brief",
                              "metadata": {"run": "conformance"}, "user": "someone", "temperature": 0.5})
    openai_schemas.check("Response", body)
    (message,) = body["output"]
    assert message["content"][0]["logprobs"] == [] and message["content"][0]["text"].startswith("Echo: hello")
    assert body["user"] == "someone" and body["metadata"] == {"run": "conformance"} and "meta" in body


@pytest.mark.parametrize("model", MODELS)
def test_function_call_and_its_round_trip(gateway: Cluster, openai_schemas: OpenAISchemas, model: str) -> None:
    first = _respond(gateway, {"model": model, "input": "find cats", "tools": TOOLS})
    openai_schemas.check("Response", first)
    (fn,) = [item for item in first["output"] if item["type"] == "function_call"]
    assert "q" in json.loads(fn["arguments"])
    assert first["tools"][0]["strict"] is False  # echoed as applied: not strict unless asked
    second = _respond(gateway, {"model": model, "tools": [{**TOOLS[0], "strict": True}], "input": [
        {"role": "user", "content": "find cats"}, fn,
        {"type": "function_call_output", "call_id": fn["call_id"], "output": "3 cats"}]})
    openai_schemas.check("Response", second)
    assert second["output"][0]["content"][0]["text"] == "Tool said: 3 cats"
    assert second["tools"][0]["strict"] is True


@pytest.mark.parametrize("model", MODELS)
def test_json_schema_response(gateway: Cluster, openai_schemas: OpenAISchemas, model: str) -> None:
    body = _respond(gateway, {"model": model, "input": _hello(), "text": JSON_FORMAT})
    openai_schemas.check("Response", body)
    assert body["text"] == JSON_FORMAT


@pytest.mark.parametrize("model", MODELS)
def test_incomplete_response(gateway: Cluster, openai_schemas: OpenAISchemas, model: str) -> None:
    # `truncate`: the simulator stops as a max_tokens limit would (finish reason "length").
    body = _respond(gateway, {"model": f"{model}+truncate=2", "input": _hello(), "max_output_tokens": 16})
    openai_schemas.check("Response", body)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}


@pytest.mark.parametrize("model", MODELS)
def test_every_text_stream_event(gateway: Cluster, openai_schemas: OpenAISchemas, model: str) -> None:
    events = _events(gateway, openai_schemas, {"model": model, "input": _hello(), "instructions": "be brief"})
    assert _types(events) == TEXT_EVENTS | {"response.completed"}
    parts = [e["part"] for e in events if e["type"].startswith("response.content_part.")]
    assert parts and all(part["logprobs"] == [] for part in parts)
    assert "usage" not in events[0]["response"] and events[-1]["response"]["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_every_function_call_stream_event(gateway: Cluster, openai_schemas: OpenAISchemas, model: str) -> None:
    events = _events(gateway, openai_schemas, {"model": model, "input": "find cats", "tools": TOOLS})
    assert _types(events) == CALL_EVENTS | {"response.completed"}
    (done,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert "q" in json.loads(done["arguments"])


@pytest.mark.parametrize("model", MODELS)
def test_incomplete_stream(gateway: Cluster, openai_schemas: OpenAISchemas, model: str) -> None:
    events = _events(gateway, openai_schemas, {"model": f"{model}+truncate=2", "input": _hello()})
    assert _types(events) == TEXT_EVENTS | {"response.incomplete"}
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


@pytest.mark.parametrize("model", MODELS)
def test_failed_stream(gateway: Cluster, openai_schemas: OpenAISchemas, model: str) -> None:
    # `die_after`: the provider drops the connection after two pieces.
    events = _events(gateway, openai_schemas, {"model": f"{model}+die_after=2", "input": "hello there you"})
    assert events[-1]["type"] == "response.failed" and events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"
