"""/v1/messages, as the gateway sends it, against the official `anthropic` SDK's own types with
strict parsing: every body as `anthropic.types.Message`, every stream event as the
`RawMessageStreamEvent` union, an error event as `ErrorResponse`; through native Anthropic and
translated from an OpenAI-compatible upstream and from Gemini.

Strictness: the raw JSON is parsed with pydantic's strict mode in JSON mode
(`model_validate_json(..., strict=True)`), so nothing is coerced (a "3" is not an int, a wrong
`type` or `stop_reason` literal fails). anthropic 2.14 types its fixed values as Literals, which
strict mode matches exactly in either mode; JSON mode is the one that stays right for Enum fields
too (strict *Python* mode demands Enum instances, which a wire body cannot hold). The SDK's models
allow extra fields (`meta`, our extension, is one)."""

import json
import secrets
from typing import Any

import httpx
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from tests.conformance.wire import TIMEOUT_S, parse_sse
from tests.integration.cluster import Cluster

EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
TOOLS = [{"name": "lookup", "description": "find things",
          "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}]
MODELS = [pytest.param("anthropic/claude-haiku-4-5", id="anthropic-native"),
          pytest.param("sim/gpt-sim", id="from-openai-compatible"),
          pytest.param("google/gemini-2.5-flash", id="from-gemini")]


def _headers(gateway: Cluster) -> dict[str, str]:
    return {"x-api-key": gateway.admin_key, "anthropic-version": "2023-06-01"}


def _body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "system": "be brief",
            "messages": [{"role": "user", "content": f"find cats {secrets.token_hex(4)}"}], **extra}


def _message(gateway: Cluster, body: dict[str, Any]) -> Message:
    response = httpx.post(f"{gateway.base_url}/messages", json=body, headers=_headers(gateway), timeout=TIMEOUT_S)
    assert response.status_code == 200, response.text
    return Message.model_validate_json(response.content, strict=True)


def _events(gateway: Cluster, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event, strictly parsed; an `error` event (which ends a failed stream) as ErrorResponse."""
    with httpx.stream("POST", f"{gateway.base_url}/messages", json={**body, "stream": True},
                      headers=_headers(gateway), timeout=TIMEOUT_S) as response:
        lines = list(response.iter_lines())
    assert response.status_code == 200, lines[:3]
    events = parse_sse(lines)
    for event in events:
        assert event.name == event.data["type"], event
        raw = json.dumps(event.data)
        if event.name == "error":
            ErrorResponse.model_validate_json(raw, strict=True)
        else:
            EVENTS.validate_json(raw, strict=True)
    return [event.data for event in events]


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


@pytest.mark.parametrize("model", MODELS)
def test_text_message(gateway: Cluster, model: str) -> None:
    message = _message(gateway, _body(model))
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"
    assert (message.model_extra or {})["meta"]["model"] == model


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_message(gateway: Cluster, model: str) -> None:
    message = _message(gateway, _body(model, tools=TOOLS))
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content if block.type == "tool_use"] == ["tool_use"]


@pytest.mark.parametrize("model", MODELS)
def test_max_tokens_message(gateway: Cluster, model: str) -> None:
    assert _message(gateway, _body(f"{model}+truncate=2")).stop_reason == "max_tokens"


@pytest.mark.parametrize("model", MODELS)
def test_every_text_stream_event(gateway: Cluster, model: str) -> None:
    events = _events(gateway, _body(model))
    kinds = _kinds(events)
    assert kinds[:2] == ["message_start", "content_block_start"] and kinds[-2:] == ["message_delta", "message_stop"]
    assert set(kinds) == {"message_start", "content_block_start", "content_block_delta", "content_block_stop",
                          "message_delta", "message_stop"}
    assert events[-2]["delta"]["stop_reason"] == "end_turn" and events[-2]["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_every_tool_use_stream_event(gateway: Cluster, model: str) -> None:
    events = _events(gateway, _body(model, tools=TOOLS))
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    deltas = {e["delta"]["type"] for e in events if e["type"] == "content_block_delta"}
    assert "tool_use" in starts and "input_json_delta" in deltas
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize("model", MODELS)
def test_max_tokens_stream(gateway: Cluster, model: str) -> None:
    events = _events(gateway, _body(f"{model}+truncate=2"))
    assert events[-2]["delta"]["stop_reason"] == "max_tokens" and events[-1]["type"] == "message_stop"


@pytest.mark.parametrize("model", MODELS)
def test_failed_stream_ends_in_an_error_event(gateway: Cluster, model: str) -> None:
    events = _events(gateway, _body(f"{model}+die_after=2"))
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "api_error"
