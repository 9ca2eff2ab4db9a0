"""The official anthropic SDK against /v1/messages and the openai SDK against /v1/responses,
each routed to providers of every wire format."""

import json

import anthropic
import openai
import pytest

from tests.integration.cluster import Cluster

TOOLS_ANTHROPIC = [{"name": "lookup", "description": "find things",
                    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}]
TOOLS_RESPONSES = [{"type": "function", "name": "lookup", "description": "find things",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}]
MODELS = ["sim/gpt-sim", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash"]


def _anthropic(gateway: Cluster, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=key or gateway.admin_key,
                               max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_messages_non_stream_and_stream(gateway: Cluster, model: str) -> None:
    client = _anthropic(gateway)
    message = client.messages.create(model=model, max_tokens=64, system="be brief",
                                     messages=[{"role": "user", "content": "hello there"}])
    assert message.content[0].text == "Echo: hello there"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    with client.messages.stream(model=model, max_tokens=64,
                                messages=[{"role": "user", "content": "hello there"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: hello there" and final.usage.output_tokens > 0


def test_messages_tool_round_trip(gateway: Cluster) -> None:
    client = _anthropic(gateway)
    ask = [{"role": "user", "content": "find cats"}]
    first = client.messages.create(model="sim/gpt-sim", max_tokens=64, messages=ask, tools=TOOLS_ANTHROPIC)
    tool_use = next(block for block in first.content if block.type == "tool_use")
    assert first.stop_reason == "tool_use" and "q" in tool_use.input
    second = client.messages.create(model="sim/gpt-sim", max_tokens=64, tools=TOOLS_ANTHROPIC, messages=[
        *ask, {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "3 cats"}]}])
    assert second.content[0].text == "Tool said: 3 cats"


def test_messages_errors(gateway: Cluster) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        _anthropic(gateway, key="sk-aig-wrong").messages.create(
            model="sim/gpt-sim", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError):
        _anthropic(gateway).messages.create(model="sim/gpt-sim", max_tokens=0,
                                            messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.InternalServerError):
        _anthropic(gateway).messages.create(model="sim/gpt-sim+status=503", max_tokens=8,
                                            messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("model", MODELS)
def test_responses_non_stream_and_stream(gateway: Cluster, model: str) -> None:
    client = gateway.client()
    response = client.responses.create(model=model, input="hello there", instructions="be brief")
    assert response.output_text == "Echo: hello there" and response.status == "completed"
    assert response.usage is not None and response.usage.output_tokens > 0
    events = list(client.responses.create(model=model, input="hello there", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Echo: hello there"


def test_responses_function_call_round_trip(gateway: Cluster) -> None:
    client = gateway.client()
    first = client.responses.create(model="sim/gpt-sim", input="find cats", tools=TOOLS_RESPONSES)
    call = next(item for item in first.output if item.type == "function_call")
    assert "q" in json.loads(call.arguments)
    second = client.responses.create(model="sim/gpt-sim", tools=TOOLS_RESPONSES, input=[
        {"role": "user", "content": "find cats"}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "3 cats"}])
    assert second.output_text == "Tool said: 3 cats"


def test_responses_refuses_stored_state(gateway: Cluster) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().responses.create(model="sim/gpt-sim", input="x", previous_response_id="resp_123")
    assert "previous_response_id" in str(err.value)
