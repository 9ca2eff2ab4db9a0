"""Native Anthropic and Gemini providers behind the OpenAI surface (simulator plays both)."""

import json

import pytest

from tests.integration.api import generation
from tests.integration.cluster import UPSTREAM_KEY, Cluster

USER = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "find",
                                           "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
                                                          "required": ["q"]}}}]


def test_anthropic_chat_through_the_openai_surface(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="anthropic/claude-haiku-4-5", messages=USER, max_tokens=64)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.choices[0].finish_reason == "stop" and completion.usage.prompt_tokens > 0
    assert raw.headers["X-Provider"] == "anthropic" and float(raw.headers["X-Cost-Cents"]) > 0
    (seen,) = [e for e in gateway.sim_journal() if e["path"] == "/v1/messages"]
    assert seen["body"]["system"] == "be brief" and seen["body"]["model"] == "claude-haiku-4-5"
    assert seen["headers"].get("x-api-key") == UPSTREAM_KEY
    assert generation(gateway, raw.headers["X-Request-Id"])["provider"] == "anthropic"


def test_anthropic_stream_and_tools(gateway: Cluster) -> None:
    client = gateway.client()
    chunks = list(client.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=USER, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hello there"
    assert chunks[-1].usage is not None and chunks[-1].model_extra["meta"]["provider"] == "anthropic"
    first = client.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=USER, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and "q" in json.loads(call.function.arguments)
    second = client.chat.completions.create(model="anthropic/claude-haiku-4-5", tools=TOOLS, messages=[
        *USER, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "found it"}])
    assert second.choices[0].message.content == "Tool said: found it"


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_chat(gateway: Cluster, stream: bool) -> None:
    client = gateway.client()
    if stream:
        chunks = list(client.chat.completions.create(model="google/gemini-2.5-flash", messages=USER, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        raw = client.chat.completions.with_raw_response.create(model="google/gemini-2.5-flash", messages=USER)
        assert raw.headers["X-Provider"] == "google"
        text = raw.parse().choices[0].message.content
    assert text == "Echo: hello there"


def test_gemini_embeddings(gateway: Cluster) -> None:
    result = gateway.client().embeddings.create(model="google/text-embedding-004", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) > 0
