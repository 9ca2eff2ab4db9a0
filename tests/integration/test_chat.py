"""Chat completions through edge -> NATS -> router -> simulator, with the openai SDK."""

import json

import pytest

from tests.integration.cluster import UPSTREAM_KEY, Cluster

USER = [{"role": "user", "content": "hello gateway"}]


def test_non_stream_chat_answers_with_gateway_headers(gateway: Cluster) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=USER, extra_headers={"X-Request-Id": "req-abc-123"})
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello gateway"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 2
    assert raw.headers["X-Request-Id"] == "req-abc-123"
    assert raw.headers["X-Model"] == "openai/gpt-4o-mini"
    assert raw.headers["X-Provider"] == "openai"
    assert int(raw.headers["X-Latency-Ms"]) >= 0


def test_request_id_is_generated_when_absent(gateway: Cluster) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=USER)
    first = raw.headers["X-Request-Id"]
    second = gateway.client().chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=USER).headers["X-Request-Id"]
    assert len(first) >= 16 and first != second


def test_parameters_reach_the_provider_untouched(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    parts = [{"type": "text", "text": "what is this"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]
    completion = gateway.client().chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": parts}], n=2, stop=["never"],
        seed=42, max_completion_tokens=50, temperature=0.7, top_p=0.9, user="end-user-1",
        extra_body={"vendor_extension": {"keep": [1, 2.50, "x"]}})
    assert len(completion.choices) == 2
    (seen,) = [e for e in gateway.sim_journal() if e["path"] == "/v1/chat/completions"]
    body = seen["body"]
    assert body["model"] == "gpt-4o-mini"  # slug translated to the upstream name
    assert body["messages"][0]["content"] == parts
    for name, value in {"n": 2, "stop": ["never"], "seed": 42, "max_completion_tokens": 50, "temperature": 0.7,
                        "top_p": 0.9, "user": "end-user-1", "vendor_extension": {"keep": [1, 2.5, "x"]}}.items():
        assert body[name] == value, name
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_stream_relays_chunks_and_honours_include_usage(gateway: Cluster) -> None:
    client = gateway.client()
    chunks = list(client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello gateway"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    plain = list(client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER, stream=True))
    assert all(c.usage is None for c in plain)
    assert "".join(c.choices[0].delta.content or "" for c in plain if c.choices) == text


def test_stream_carries_gateway_headers(gateway: Cluster) -> None:
    with gateway.client().chat.completions.with_streaming_response.create(
            model="sim/gpt-sim", messages=USER, stream=True) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["X-Model"] == "sim/gpt-sim"
        assert response.headers["X-Provider"] == "sim"
        assert "X-Request-Id" in response.headers
        body = b"".join(response.iter_bytes())
    assert body.rstrip().endswith(b"data: [DONE]")


def test_tool_call_round_trip(gateway: Cluster) -> None:
    client = gateway.client()
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    first = client.chat.completions.create(model="openai/gpt-4o", messages=USER, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    second = client.chat.completions.create(model="openai/gpt-4o", tools=tools, messages=[
        *USER, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"}])
    assert second.choices[0].message.content == "Tool said: sunny, 21C"


def test_streamed_tool_call_arguments_reassemble(gateway: Cluster) -> None:
    tools = [{"type": "function", "function": {
        "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
                                         "required": ["q"]}}}]
    chunks = list(gateway.client().chat.completions.create(
        model="openai/gpt-4o", messages=USER, tools=tools, stream=True))
    args = "".join(tc.function.arguments or "" for c in chunks if c.choices
                   for tc in (c.choices[0].delta.tool_calls or []))
    assert "q" in json.loads(args)


def test_json_schema_response_format(gateway: Cluster) -> None:
    schema = {"type": "object", "additionalProperties": False, "required": ["name", "age", "tags"],
              "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                             "tags": {"type": "array", "items": {"type": "string"}}}}
    completion = gateway.client().chat.completions.create(
        model="openai/gpt-4o-mini", messages=USER,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}})
    value = json.loads(completion.choices[0].message.content)
    assert isinstance(value["name"], str) and isinstance(value["age"], int) and isinstance(value["tags"], list)


def test_json_object_response_format(gateway: Cluster) -> None:
    completion = gateway.client().chat.completions.create(
        model="openai/gpt-4o-mini", messages=USER, response_format={"type": "json_object"})
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_provider_declared_in_config_file(gateway: Cluster) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(model="local/any-model", messages=USER)
    assert raw.parse().choices[0].message.content == "Echo: hello gateway"
    assert raw.headers["X-Provider"] == "local"
    assert raw.headers["X-Model"] == "local/any-model"


@pytest.mark.parametrize("stream", [False, True])
def test_model_not_in_catalog_is_passed_through(gateway: Cluster, stream: bool) -> None:
    gateway.clear_sim_journal()
    client = gateway.client()
    if stream:
        list(client.chat.completions.create(model="openai/ft:gpt-4o:acme:v1", messages=USER, stream=True))
    else:
        client.chat.completions.create(model="openai/ft:gpt-4o:acme:v1", messages=USER)
    (seen,) = gateway.sim_journal()
    assert seen["body"]["model"] == "ft:gpt-4o:acme:v1"
