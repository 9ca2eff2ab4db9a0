"""Client surfaces: Anthropic Messages and OpenAI Responses <-> the canonical chat format.

Outputs are checked against the official SDKs' own models and stream helpers: each
SDK is pointed at an httpx MockTransport that translates the request the SDK sent
(to_chat_request), plays a scripted provider answer in chat format, and answers with
the surface translation, so the SDK parses exactly what a client would receive.
"""

from collections.abc import Callable
from typing import Any

import anthropic
import httpx2 as httpx  # both SDKs are built on httpx2, a fork of httpx with the same API
import msgspec
import openai
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from libs.contracts.bus.inference import Usage
from libs.contracts.errors import ErrorBody
from libs.contracts.http.chat import ChatCompletionRequest
from libs.contracts.http.messages import MessagesRequest, anthropic_error_json
from libs.contracts.http.responses import ResponsesRequest
from services.router.providers.anthropic_translate import to_anthropic_request
from services.router.surfaces import anthropic_messages as am
from services.router.surfaces import responses as rs
from services.router.surfaces._chat import SurfaceError

_enc = msgspec.json.encode
_dec = msgspec.json.decode
ANTHROPIC_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
RESPONSES_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER_ARGS = '{"city": "Paris", "units": ["c", "f"]}'
WEATHER_TOOL = {"name": "weather", "description": "Weather now", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


# --- helpers: chat-format fixtures ---------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    body = {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-x",
            "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                  "finish_reason": finish}], **extra}
    return b"data: " + _enc(body) + b"\n\n"


def tool_delta(fragment: str, call_id: str | None = None, name: str | None = None, index: int = 0) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": fragment}}
    if call_id is not None:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def text_then_tool_chunks() -> list[bytes]:
    """Real-shaped OpenAI chunks: role, text in pieces, one tool call split across chunks, finish."""
    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me "}), chunk({"content": "check."}),
        chunk(tool_delta("", "call_w1", "weather")),
        chunk(tool_delta('{"city": "Pa')), chunk(tool_delta('ris", "units": ')), chunk(tool_delta('["c", "f"]}')),
        chunk({}, "tool_calls"),
    ]


CACHED_USAGE = {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129,
                "prompt_tokens_details": {"cached_tokens": 100}}
STREAM_USAGE = Usage(input_units=20, output_units=7, cached_units=4)  # what the router metered
TAIL = chunk(None, usage={"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}) + b"data: [DONE]\n\n"


def completion(content: str | None = "Hello there.", tool_calls: list[dict[str, Any]] | None = None,
               finish: str = "stop", usage: dict[str, Any] | None = None, **extra: Any) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return _enc({"id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "gpt-x",
                 "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                 "usage": usage or {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}, **extra})


def weather_call() -> dict[str, Any]:
    return {"id": "call_w1", "type": "function", "function": {"name": "weather", "arguments": WEATHER_ARGS}}


def sse_events(data: bytes) -> list[tuple[str, bytes]]:
    out = []
    for event in data.split(b"\n\n"):
        if event:
            name, payload = event.split(b"\n")
            assert name.startswith(b"event: ") and payload.startswith(b"data: ")
            out.append((name[7:].decode(), payload[6:]))
    return out


def mock_http(answer: Callable[[dict[str, Any]], httpx.Response], seen: list[dict[str, Any]]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(_dec(request.content))
        return answer(seen[-1])
    return httpx.Client(transport=httpx.MockTransport(handler))


def sse_response(data: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=data)


def chat_checked(chat: bytes) -> dict[str, Any]:
    """A translated body must pass the gateway's own chat-completions contract."""
    msgspec.json.decode(chat, type=ChatCompletionRequest)
    return _dec(chat)


def anthropic_req(**extra: Any) -> dict[str, Any]:
    body = {"model": "openai/gpt-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    return chat_checked(am.to_chat_request(_enc({**body, **extra})))


def responses_req(**extra: Any) -> dict[str, Any]:
    return chat_checked(rs.to_chat_request(_enc({"model": "openai/gpt-x", "input": "hi", **extra})))


# --- contracts -----------------------------------------------------------------------------------


def test_messages_contract_strict_where_it_matters() -> None:
    decode = msgspec.json.Decoder(MessagesRequest).decode
    ok = decode(b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"x"}]}],"new":1}')
    assert ok.messages[0].content == [{"type": "x"}]
    for bad, where in [(b'"max_tokens":0', "$.max_tokens"), (b'"temperature":1.5', "$.temperature"),
                       (b'"tool_choice":{"type":"tool"}', "name"), (b'"messages":[]', "$.messages")]:
        body = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],' + bad + b"}"
        with pytest.raises(msgspec.ValidationError, match=where.replace("$", r"\$")):
            decode(body)
    with pytest.raises(msgspec.ValidationError, match="role"):
        decode(b'{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}')


def test_responses_contract() -> None:
    decode = msgspec.json.Decoder(ResponsesRequest).decode
    assert decode(b'{"model":"m","input":"hi","store":true}').input == "hi"
    for bad in [b'{"model":"m"}', b'{"model":"m","input":[]}', b'{"model":"m","input":"x","tool_choice":"maybe"}',
                b'{"model":"m","input":"x","text":{"format":{"type":"json_schema"}}}',
                b'{"model":"m","input":"x","max_output_tokens":0}']:
        with pytest.raises(msgspec.ValidationError):
            decode(bad)


# --- Anthropic: request --------------------------------------------------------------------------


def test_anthropic_text_system_sampling_stream() -> None:
    out = anthropic_req(system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
                        stop_sequences=["END"], temperature=0.3, top_p=0.9, top_k=5, stream=True,
                        metadata={"user_id": "u-1"}, thinking={"type": "enabled", "budget_tokens": 1024})
    assert out == {"model": "openai/gpt-x", "max_tokens": 100, "temperature": 0.3, "top_p": 0.9, "stop": ["END"],
                   "user": "u-1", "stream": True, "stream_options": {"include_usage": True},
                   "messages": [{"role": "system", "content": "Be brief.\nBe kind."},
                                {"role": "user", "content": "hi"}]}


def test_anthropic_images_and_documents() -> None:
    out = anthropic_req(messages=[{"role": "user", "content": [
        {"type": "text", "text": "compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc text"}},
    ]}])
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
        {"type": "text", "text": "doc text"}]}]


def test_anthropic_tool_round_trip_turns() -> None:
    out = anthropic_req(
        tools=[WEATHER_TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": "weather in Paris and Rome?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True, "content": [
                    {"type": "text", "text": "station down"},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/map.png"}}]},
                {"type": "text", "text": "and tomorrow?"}]},
        ])
    assert out["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "Weather now", "parameters": WEATHER_TOOL["input_schema"]}}]
    assert out["tool_choice"] == "auto" and out["parallel_tool_calls"] is False
    assert out["messages"][1:] == [
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: station down"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/map.png"}},
                                     {"type": "text", "text": "and tomorrow?"}]},
    ]


def test_anthropic_conversation_survives_the_anthropic_provider_round_trip() -> None:
    """Anthropic client -> chat -> the Anthropic adapter gives back the client's conversation."""
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                                     {"type": "text", "text": "thanks"}]},
    ]
    body = {"model": "anthropic/claude", "max_tokens": 64, "system": "Be brief.", "messages": messages,
            "tools": [WEATHER_TOOL], "tool_choice": {"type": "tool", "name": "weather"}, "stop_sequences": ["END"]}
    back = to_anthropic_request(am.to_chat_request(_enc(body)), "claude", stream=False)
    assert back == {**body, "model": "claude"}


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "weather"}, {"type": "function", "function": {"name": "weather"}}),
])
def test_anthropic_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    out = anthropic_req(tools=[WEATHER_TOOL], tool_choice=choice)
    assert out["tool_choice"] == expected and "parallel_tool_calls" not in out
    assert "tool_choice" not in anthropic_req(tool_choice=choice)  # chat refuses tool_choice without tools


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "search_result", "source": "x"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
     "messages[0].content[0].source"),
    ({"max_tokens": 0}, None),
])
def test_anthropic_untranslatable_is_refused(extra: dict[str, Any], param: str | None) -> None:
    with pytest.raises(SurfaceError) as info:
        anthropic_req(**extra)
    assert info.value.status == 400 and info.value.param == param


# --- Anthropic: answers, checked with the SDK's models -------------------------------------------


def test_anthropic_message_from_completion() -> None:
    body = completion("Checking.", [weather_call()], "tool_calls", CACHED_USAGE)
    message = Message.model_validate_json(am.from_chat_response(body))
    assert message.id == "msg_abc" and message.model == "gpt-x" and message.stop_reason == "tool_use"
    assert message.content[0].type == "text" and message.content[0].text == "Checking."
    tool = message.content[1]
    assert tool.type == "tool_use" and (tool.id, tool.name, tool.input) == ("call_w1", "weather", _dec(WEATHER_ARGS))
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        20, 100, 9)
    assert message.stop_sequence is None


@pytest.mark.parametrize(("finish", "stop"), [("stop", "end_turn"), ("length", "max_tokens"),
                                              ("tool_calls", "tool_use"), ("content_filter", "refusal")])
def test_anthropic_stop_reasons(finish: str, stop: str) -> None:
    message = Message.model_validate_json(am.from_chat_response(completion(finish=finish)))
    assert message.stop_reason == stop


def test_anthropic_message_edge_cases() -> None:
    bad_args = {"id": "call_x", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    raw = am.from_chat_response(completion("", [bad_args], "tool_calls", meta={"cost": {"total_micros": 3}}))
    message = Message.model_validate_json(raw)
    assert [b.type for b in message.content] == ["tool_use"]  # no empty text block
    assert message.content[0].input == {"_raw_arguments": "{not json"}
    assert message.usage.cache_read_input_tokens is None  # unknown, not zero
    assert _dec(raw)["meta"] == {"cost": {"total_micros": 3}}  # the gateway's meta survives


def anthropic_client(answer: Callable[[dict[str, Any]], httpx.Response], seen: list[dict[str, Any]]
                     ) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="k", base_url="http://gw.test", max_retries=0,
                               http_client=mock_http(answer, seen))


def test_anthropic_sdk_end_to_end_non_stream() -> None:
    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> httpx.Response:
        chat = _dec(am.to_chat_request(_enc(body)))
        assert chat["messages"][-1] == {"role": "user", "content": "weather?"} and chat["tools"]
        return httpx.Response(200, content=am.from_chat_response(completion("On it.", [weather_call()],
                                                                            "tool_calls")))

    client = anthropic_client(answer, seen)
    message = client.messages.create(model="openai/gpt-x", max_tokens=50, tools=[WEATHER_TOOL],  # type: ignore[list-item]
                                     messages=[{"role": "user", "content": "weather?"}])
    assert message.stop_reason == "tool_use" and message.content[1].input == _dec(WEATHER_ARGS)  # type: ignore[union-attr]


def anthropic_stream_bytes(chunks: list[bytes], usage: Usage | None = STREAM_USAGE) -> bytes:
    stream = am.MessagesStream()
    out = b"".join(stream.feed(c) for c in chunks)
    assert stream.feed(TAIL) == b""  # the usage-only chunk and [DONE] yield nothing
    return out + stream.finish(usage)


def test_anthropic_stream_events_parse_and_accumulate() -> None:
    data = anthropic_stream_bytes(text_then_tool_chunks())
    events = [(name, ANTHROPIC_EVENT.validate_json(payload)) for name, payload in sse_events(data)]
    assert all(name == event.type for name, event in events)
    assert [e.type for _, e in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    start = events[5][1]
    assert (start.index, start.content_block.type, start.content_block.id, start.content_block.name) == (
        1, "tool_use", "call_w1", "weather")
    delta = events[-2][1]
    assert delta.delta.stop_reason == "tool_use"
    assert (delta.usage.output_tokens, delta.usage.input_tokens, delta.usage.cache_read_input_tokens) == (7, 16, 4)

    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> httpx.Response:
        chat = _dec(am.to_chat_request(_enc(body)))
        assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
        return sse_response(data)

    with anthropic_client(answer, seen).messages.stream(
            model="openai/gpt-x", max_tokens=50, messages=[{"role": "user", "content": "weather?"}]) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "Let me check."
    assert final.content[0].text == "Let me check."  # type: ignore[union-attr]
    assert final.content[1].input == _dec(WEATHER_ARGS)  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 7 and final.usage.input_tokens == 16


def test_streams_split_calls_that_share_an_index() -> None:
    """Some providers send every call with index 0 (or none): a new id means a new call."""
    chunks = [chunk(tool_delta('{"city": "Paris"}', "call_a", "weather")),
              chunk(tool_delta('{"city": "Rome"}', "call_b", "weather")), chunk({}, "tool_calls")]
    anthropic_events = [ANTHROPIC_EVENT.validate_json(p) for _, p in sse_events(anthropic_stream_bytes(chunks))]
    starts = [e.content_block.id for e in anthropic_events if e.type == "content_block_start"]
    assert starts == ["call_a", "call_b"]
    final = RESPONSES_EVENT.validate_json(sse_events(responses_stream_bytes(chunks))[-1][1]).response
    assert [(o.call_id, o.arguments) for o in final.output] == [
        ("call_a", '{"city": "Paris"}'), ("call_b", '{"city": "Rome"}')]


def test_anthropic_stream_partial_events_and_empty_stream() -> None:
    whole = b"".join(text_then_tool_chunks())
    stream = am.MessagesStream()
    pieces = b"".join(stream.feed(whole[i:i + 37]) for i in range(0, len(whole), 37))  # events cut anywhere
    assert pieces == am.MessagesStream().feed(whole) == am.MessagesStream().feed(whole.replace(b"\n", b"\r\n"))
    assert stream.finish(None) and stream.finish(None) == b""  # idempotent
    events = [ANTHROPIC_EVENT.validate_json(p) for _, p in sse_events(pieces)]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta"
                   and e.delta.type == "text_delta") == "Let me check."
    empty = am.MessagesStream().finish(None, "length")
    kinds = [ANTHROPIC_EVENT.validate_json(p).type for _, p in sse_events(empty)]
    assert kinds == ["message_start", "message_delta", "message_stop"]
    assert _dec(sse_events(empty)[1][1])["delta"]["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(("status", "type_", "expected"), [
    (400, "invalid_request_error", "invalid_request_error"), (401, "authentication_error", "authentication_error"),
    (402, "budget_exceeded", "billing_error"), (403, "permission_error", "permission_error"),
    (404, "model_not_found", "not_found_error"), (429, "rate_limit_error", "rate_limit_error"),
    (502, "provider_error", "api_error"), (503, "service_unavailable_error", "api_error"),
    (504, "timeout_error", "timeout_error"), (529, "overloaded_error", "overloaded_error"),
])
def test_anthropic_errors(status: int, type_: str, expected: str) -> None:
    body = _dec(anthropic_error_json(status, "nope"))
    assert body == {"type": "error", "error": {"type": expected, "message": "nope"}}


def test_anthropic_sdk_reads_error_body() -> None:
    def answer(body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(429, content=anthropic_error_json(429, "slow down", "req_1"))

    with pytest.raises(anthropic.RateLimitError) as info:
        anthropic_client(answer, []).messages.create(model="m", max_tokens=5,
                                                     messages=[{"role": "user", "content": "x"}])
    assert info.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"},
                               "request_id": "req_1"}


# --- Responses: request --------------------------------------------------------------------------


def test_responses_string_input_instructions_and_parameters() -> None:
    out = responses_req(instructions="Be brief.", max_output_tokens=64, temperature=0.2, top_p=0.5, stream=True,
                        user="u-1", reasoning={"effort": "low"}, store=True, metadata={"k": "v"},
                        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"},
                                         "strict": True}})
    assert out == {"model": "openai/gpt-x", "max_tokens": 64, "temperature": 0.2, "top_p": 0.5,
                   "reasoning_effort": "low", "user": "u-1", "stream": True, "stream_options": {"include_usage": True},
                   "response_format": {"type": "json_schema", "json_schema": {
                       "name": "out", "schema": {"type": "object"}, "strict": True}},
                   "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}
    assert responses_req(text={"format": {"type": "json_object"}})["response_format"] == {"type": "json_object"}
    assert "response_format" not in responses_req(text={"format": {"type": "text"}})


def test_responses_items_tools_and_outputs() -> None:
    out = responses_req(
        tools=[{"type": "function", "name": "weather", "description": "Weather now",
                "parameters": WEATHER_TOOL["input_schema"]}],
        tool_choice={"type": "function", "name": "weather"}, parallel_tool_calls=False,
        input=[
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,AA",
                                          "detail": "low"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "weather", "arguments": "{}"},
            {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_2", "output": [
                {"type": "input_text", "text": "map:"}, {"type": "input_image", "image_url": "https://x.test/m.png"}]},
        ])
    assert out["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "Weather now", "parameters": WEATHER_TOOL["input_schema"]}}]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert out["parallel_tool_calls"] is False
    call = {"type": "function", "function": {"name": "weather", "arguments": "{}"}}
    assert out["messages"] == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "Checking.",
         "tool_calls": [{"id": "call_1", **call}, {"id": "call_2", **call}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "map:"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/m.png"}}]},
    ]
    for choice in ("auto", "none", "required"):
        assert responses_req(tools=[{"type": "function", "name": "f"}], tool_choice=choice)["tool_choice"] == choice
    assert "tool_choice" not in responses_req(tool_choice="required")  # chat refuses tool_choice without tools
    file_part = {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}
    assert responses_req(input=[{"role": "user", "content": [file_part]}])["messages"][0]["content"] == [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}]


@pytest.mark.parametrize(("extra", "param"), [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"background": True}, "background"),
    ({"tools": [{"type": "web_search"}]}, "tools[0]"),
    ({"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}, "input[0].content[0]"),
])
def test_responses_untranslatable_is_refused(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(SurfaceError) as info:
        responses_req(**extra)
    assert info.value.param == param


# --- Responses: answers, checked with the SDK's models -------------------------------------------

REQUEST = _enc({"model": "openai/gpt-x", "input": "weather?", "instructions": "Be brief.",
                "tools": [{"type": "function", "name": "weather", "parameters": WEATHER_TOOL["input_schema"]}],
                "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}}})


def test_responses_response_from_completion() -> None:
    body = completion("Checking.", [weather_call()], "tool_calls",
                      {**CACHED_USAGE, "completion_tokens_details": {"reasoning_tokens": 4}})
    response = Response.model_validate_json(rs.from_chat_response(body, REQUEST))
    assert (response.id, response.object, response.status, response.model) == (
        "resp_abc", "response", "completed", "gpt-x")
    assert response.output_text == "Checking."
    call = response.output[1]
    assert call.type == "function_call" and (call.call_id, call.name, call.arguments) == (
        "call_w1", "weather", WEATHER_ARGS)
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 100
    assert (response.usage.total_tokens, response.usage.output_tokens_details.reasoning_tokens) == (129, 4)
    assert response.instructions == "Be brief." and response.tools[0].name == "weather"  # type: ignore[union-attr]
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"


def test_responses_incomplete_and_refusal() -> None:
    response = Response.model_validate_json(rs.from_chat_response(completion("Partial", finish="length")))
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    refused = _dec(completion(None))
    refused["choices"][0]["message"]["refusal"] = "I can't."
    response = Response.model_validate_json(rs.from_chat_response(_enc(refused)))
    assert response.output[0].content[0].type == "refusal"  # type: ignore[union-attr]
    assert response.tools == [] and response.tool_choice == "auto" and response.parallel_tool_calls is True


def responses_stream_bytes(chunks: list[bytes], usage: Usage | None = STREAM_USAGE) -> bytes:
    stream = rs.ResponsesStream(REQUEST)
    out = b"".join(stream.feed(c) for c in chunks)
    assert stream.feed(TAIL) == b""
    return out + stream.finish(usage)


def test_responses_stream_events_parse_and_accumulate() -> None:
    data = responses_stream_bytes(text_then_tool_chunks())
    events = [(name, RESPONSES_EVENT.validate_json(payload)) for name, payload in sse_events(data)]
    assert all(name == event.type for name, event in events)
    assert [e.sequence_number for _, e in events] == list(range(len(events)))
    assert [e.type for _, e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    completed = events[-1][1].response
    assert completed.output_text == "Let me check." and completed.output[1].arguments == WEATHER_ARGS
    assert completed.usage.input_tokens == 20 and completed.usage.input_tokens_details.cached_tokens == 4

    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> httpx.Response:
        chat = _dec(rs.to_chat_request(_enc(body)))
        assert chat["stream"] is True and chat["messages"] == [{"role": "user", "content": "weather?"}]
        return sse_response(data)

    client = openai.OpenAI(api_key="k", base_url="http://gw.test/v1", max_retries=0,
                           http_client=mock_http(answer, seen))
    with client.responses.stream(model="openai/gpt-x", input="weather?") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "Let me check." and final.output_text == "Let me check."
    call = final.output[1]
    assert call.type == "function_call" and call.arguments == WEATHER_ARGS and call.call_id == "call_w1"
    # And the plain create(stream=True) iterator types every event too.
    kinds = [e.type for e in client.responses.create(model="openai/gpt-x", input="weather?", stream=True)]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


def test_responses_stream_incomplete_refusal_and_error() -> None:
    stream = rs.ResponsesStream()
    data = stream.feed(chunk({"role": "assistant", "refusal": ""}) + chunk({"refusal": "I can't"}) +
                       chunk({"content": "Partial"}) + chunk({}, "length"))
    data += stream.finish(None) + stream.error("provider_error", "upstream went away")
    events = [RESPONSES_EVENT.validate_json(p) for _, p in sse_events(data)]
    kinds = [e.type for e in events]
    assert "response.refusal.delta" in kinds and "response.refusal.done" in kinds
    final = events[-2]
    assert final.type == "response.incomplete" and final.response.incomplete_details.reason == "max_output_tokens"
    assert [p.type for p in final.response.output[0].content] == ["refusal", "output_text"]
    assert final.response.output[0].status == "incomplete" and final.response.usage is None
    assert events[-1].type == "error" and events[-1].message == "upstream went away"


def test_responses_stream_failure_is_response_failed() -> None:
    stream = rs.ResponsesStream()
    data = stream.feed(chunk({"role": "assistant", "content": ""}) + chunk({"content": "Half an"}))
    data += stream.fail(ErrorBody("Provider x failed: cut short", "provider_error", 502), Usage(3, 2, 0))
    assert stream.finish(None) == b"" and stream.fail(ErrorBody("again", "provider_error", 502)) == b""
    events = [RESPONSES_EVENT.validate_json(p) for _, p in sse_events(data)]
    assert [e.type for e in events][-2:] == ["response.output_text.delta", "response.failed"]
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error"
    assert failed.error.message == "Provider x failed: cut short"
    assert failed.output[0].status == "incomplete" and failed.output[0].content[0].text == "Half an"
    assert failed.usage.output_tokens == 2
    # Before any chunk: the response still starts, then fails; a 429 keeps its code.
    early = rs.ResponsesStream().fail(ErrorBody("slow down", "rate_limit_error", 429))
    kinds = [RESPONSES_EVENT.validate_json(p) for _, p in sse_events(early)]
    assert [e.type for e in kinds] == ["response.created", "response.in_progress", "response.failed"]
    assert kinds[-1].response.error.code == "rate_limit_exceeded" and kinds[-1].response.usage is None


def test_messages_stream_failure_is_an_anthropic_error_event() -> None:
    stream = am.MessagesStream()
    data = stream.feed(chunk({"role": "assistant", "content": ""}) + chunk({"content": "Half"}))
    data += stream.fail(ErrorBody("Provider x failed: cut short", "provider_error", 502))
    assert stream.finish(None) == b""
    names = [name for name, _ in sse_events(data)]
    assert names[-1] == "error" and "message_stop" not in names and "message_delta" not in names
    assert _dec(sse_events(data)[-1][1]) == {"type": "error", "error": {"type": "api_error",
                                                                      "message": "Provider x failed: cut short"}}


def test_responses_sdk_end_to_end_non_stream() -> None:
    def answer(body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(200, content=rs.from_chat_response(completion("Hi!"), _enc(body)))

    client = openai.OpenAI(api_key="k", base_url="http://gw.test/v1", max_retries=0, http_client=mock_http(answer, []))
    response = client.responses.create(model="openai/gpt-x", input="hello", temperature=0.5)
    assert response.output_text == "Hi!" and response.temperature == 0.5 and response.status == "completed"
