"""The Responses surface's translation (services/router/surfaces/responses.py) against OpenAI's
published schemas, for the paths the simulator cannot reach end to end: refusals, an incomplete
end followed by an error event, a failure before any chunk. Everything reachable through a real
gateway is in tests/integration/test_conformance_responses.py."""

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from libs.contracts.errors import ErrorBody
from services.router.surfaces import responses as rs
from tests.conformance.openai_schemas import OpenAISchemas

REQUEST = msgspec.json.encode({
    "model": "openai/gpt-x", "input": "weather?", "instructions": "Be brief.", "user": "someone",
    "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
    "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}}})


@pytest.fixture(scope="module")
def schemas() -> Iterator[OpenAISchemas]:
    yield OpenAISchemas.load()


def _completion(content: str | None, finish: str = "stop", refusal: str | None = None) -> bytes:
    return msgspec.json.encode({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "gpt-x",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": finish,
                     "message": {"role": "assistant", "content": content, "refusal": refusal}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}})


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-x",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


def _events(data: bytes) -> list[dict[str, Any]]:
    return [msgspec.json.decode(event.split(b"\ndata: ", 1)[1]) for event in data.split(b"\n\n") if event]


@pytest.mark.parametrize("body", [
    pytest.param(_completion(None, refusal="I can't."), id="refusal"),
    pytest.param(_completion("Partial", finish="length"), id="incomplete"),
    pytest.param(_completion("Hi"), id="echoing-the-request"),
])
def test_bodies(schemas: OpenAISchemas, body: bytes) -> None:
    schemas.check("Response", msgspec.json.decode(rs.from_chat_response(body, REQUEST)))


def test_refusal_incomplete_and_error_events(schemas: OpenAISchemas) -> None:
    stream = rs.ResponsesStream(REQUEST)
    data = stream.feed(_chunk({"role": "assistant", "refusal": ""}) + _chunk({"refusal": "I can't"}) +
                       _chunk({"content": "Partial"}) + _chunk({}, "length"))
    data += stream.finish(None) + stream.error("provider_error", "upstream went away")
    seen = [schemas.check_stream_event("ResponseStreamEvent", event) for event in _events(data)]
    assert {"ResponseRefusalDeltaEvent", "ResponseRefusalDoneEvent", "ResponseIncompleteEvent",
            "ResponseErrorEvent"} <= set(seen)


def test_a_failure_before_any_chunk(schemas: OpenAISchemas) -> None:
    data = rs.ResponsesStream(REQUEST).fail(ErrorBody("slow down", "rate_limit_error", 429))
    seen = [schemas.check_stream_event("ResponseStreamEvent", event) for event in _events(data)]
    assert seen == ["ResponseCreatedEvent", "ResponseInProgressEvent", "ResponseFailedEvent"]
