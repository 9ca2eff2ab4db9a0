"""The error envelope against OpenAI's `ErrorResponse`, where OpenAI's document and our contract
agree: `{"error": {"message", "type", "param", "code"}}`, every member present. They differ in one
place, on purpose (docs/conformance.md): our `code` is the HTTP status as an integer, OpenAI's a
string or null; the tests check that field against the status instead.

Also the error *events* that end a stream failing after its first byte, on each surface: chat's
error chunk, the Responses API's `error` event (ResponseErrorEvent, numbered after the events
before it) and Anthropic's `error` event. The edge writes those itself when the router goes quiet,
so a private gateway with a short idle timeout makes it do so."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from anthropic.types.shared import ErrorResponse

from tests.conformance.openai_schemas import OpenAISchemas
from tests.conformance.wire import TIMEOUT_S, check_error, parse_sse, stream
from tests.integration.api import call
from tests.integration.cluster import MAX_BODY_BYTES, Cluster, cleanup, start_cluster

CHAT = {"model": "sim/gpt-sim", "messages": [{"role": "user", "content": "hello there you"}]}
ODD_IDS = ["à", "a.b", "*", ">", "x" * 300]
# (method, path, json body or raw bytes, key or None for the admin key, expected status)
FAILURES = [
    pytest.param("POST", "/chat/completions", CHAT, "sk-aig-wrong", 401, id="wrong-key"),
    pytest.param("POST", "/chat/completions", b"{", None, 400, id="malformed-json"),
    pytest.param("POST", "/embeddings", {"model": "sim/embed-sim"}, None, 400, id="missing-field"),
    pytest.param("POST", "/responses", {"model": "sim/gpt-sim", "input": "x", "previous_response_id": "resp_1"},
                 None, 400, id="responses-stored-state"),
    pytest.param("POST", "/messages", {"model": "sim/gpt-sim", "max_tokens": 0, "messages": []}, None, 400,
                 id="messages-invalid"),
    pytest.param("POST", "/chat/completions", b'{"model": "sim/gpt-sim", "messages": "' + b"x" * MAX_BODY_BYTES + b'"}',
                 None, 413, id="oversized"),
    pytest.param("GET", "/models/nosuch/model", None, None, 404, id="unknown-model"),
    pytest.param("POST", "/chat/completions", {**CHAT, "model": "sim/gpt-sim+status=503"}, None, 502,
                 id="provider-5xx"),
    pytest.param("POST", "/chat/completions", {**CHAT, "model": "sim/gpt-sim+status=429"}, None, 429,
                 id="provider-429"),
    pytest.param("POST", "/chat/completions", {**CHAT, "model": "sim/gpt-sim+status=422"}, None, 422,
                 id="provider-4xx"),
    pytest.param("POST", "/images/generations", {"prompt": "a cat"}, None, 400, id="images-no-model"),
    pytest.param("GET", "/no/such/path", None, None, 404, id="unknown-path"),
]


def _send(gateway: Cluster, method: str, path: str, body: Any, key: str | None) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.request(method, f"{gateway.base_url}{path}", content=body, timeout=TIMEOUT_S, headers={
            "Authorization": f"Bearer {key or gateway.admin_key}", "Content-Type": "application/json"})
    return call(gateway, method, path, key, json=body)


@pytest.mark.parametrize(("method", "path", "body", "key", "status"), FAILURES)
def test_error_envelope(gateway: Cluster, openai_schemas: OpenAISchemas, method: str, path: str, body: Any,
                        key: str | None, status: int) -> None:
    response = _send(gateway, method, path, body, key)
    assert response.status_code == status, response.text
    check_error(openai_schemas, response.json(), status)


@pytest.mark.parametrize("kind", ["files", "batches", "videos"])
@pytest.mark.parametrize("odd", ODD_IDS)
def test_unknown_and_odd_ids_are_the_same_envelope(gateway: Cluster, openai_schemas: OpenAISchemas, kind: str,
                                                   odd: str) -> None:
    response = call(gateway, "GET", f"/{kind}/{odd}")
    assert response.status_code in (400, 404), response.text
    check_error(openai_schemas, response.json(), response.status_code)


def test_stream_failing_before_its_first_byte(gateway: Cluster, openai_schemas: OpenAISchemas) -> None:
    response = call(gateway, "POST", "/chat/completions", json={**CHAT, "model": "sim/gpt-sim+status=503",
                                                                "stream": True})
    assert response.status_code == 502
    check_error(openai_schemas, response.json(), 502)


def test_chat_stream_failing_midway(gateway: Cluster, openai_schemas: OpenAISchemas) -> None:
    _, events = stream(gateway.base_url, gateway.admin_key, "/chat/completions",
                       {**CHAT, "model": "sim/gpt-sim+die_after=2"})
    *chunks, last = events
    for chunk in chunks:
        openai_schemas.check("CreateChatCompletionStreamResponse", chunk.data)
    check_error(openai_schemas, last.data, 502)


# Error events the edge writes itself ------------------------------------------------------------

@pytest.fixture(scope="module")
def quiet_router_gateway() -> Iterator[Cluster]:
    """A gateway whose edge gives up on a stream after 0.5 s without a chunk from the router; the
    simulator paces chunks a second apart (`tps=1`), well inside the router's own read timeout."""
    cluster = start_cluster(extra_env={"SWITCHBOARD_STREAM_IDLE_TIMEOUT_S": "0.5"})
    yield cluster
    cleanup(cluster)


SLOW = "sim/gpt-sim+tps=1"


def test_stalled_chat_stream(quiet_router_gateway: Cluster, openai_schemas: OpenAISchemas) -> None:
    _, events = stream(quiet_router_gateway.base_url, quiet_router_gateway.admin_key, "/chat/completions",
                       {**CHAT, "model": SLOW})
    check_error(openai_schemas, events[-1].data, 504)


def test_stalled_responses_stream(quiet_router_gateway: Cluster, openai_schemas: OpenAISchemas) -> None:
    _, events = stream(quiet_router_gateway.base_url, quiet_router_gateway.admin_key, "/responses",
                       {"model": SLOW, "input": "hello there you"})
    for index, event in enumerate(events):
        openai_schemas.check_stream_event("ResponseStreamEvent", event.data)
        assert event.data["sequence_number"] == index  # the edge's event continues the router's count
    assert events[-1].name == "error" and events[-1].data["code"] == "timeout_error"


def test_stalled_messages_stream(quiet_router_gateway: Cluster) -> None:
    gateway = quiet_router_gateway
    with httpx.stream("POST", f"{gateway.base_url}/messages", timeout=TIMEOUT_S,
                      headers={"x-api-key": gateway.admin_key, "anthropic-version": "2023-06-01"},
                      json={"model": SLOW, "max_tokens": 64, "stream": True,
                            "messages": [{"role": "user", "content": "hello there you"}]}) as response:
        events = parse_sse(list(response.iter_lines()))
    assert events[-1].name == "error"
    error = ErrorResponse.model_validate_json(json.dumps(events[-1].data), strict=True)
    assert error.error.type == "timeout_error"
