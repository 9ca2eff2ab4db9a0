"""Tests for services/jobs/outputs.py: what a model answered, as text."""

from typing import Any

import msgspec
import pytest

from services.jobs.outputs import Answer, answer_of


def completion(message: dict[str, Any], finish_reason: str | None = "stop", **extra: Any) -> bytes:
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, **extra}
    return msgspec.json.encode(body)


def chunk(delta: dict[str, Any] | None = None, finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish_reason}]}


def sse(*events: dict[str, Any] | bytes, done: bool = True) -> bytes:
    out = b"".join(e if isinstance(e, bytes) else b"data: " + msgspec.json.encode(e) + b"\n\n" for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


def call_delta(index: int, name: str | None = None, arguments: str = "", call_id: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    call: dict[str, Any] = {"index": index, "function": function}
    if call_id is not None:
        call |= {"id": call_id, "type": "function"}
    return {"tool_calls": [call]}


# --- chat.completion ----------------------------------------------------------------------------


def test_completion_content() -> None:
    assert answer_of(completion({"content": "Paris."}), streamed=False) == Answer("Paris.", "stop")
    meta = {"meta": {"request_id": "req_1", "cost": {"total_micros": 5}}}
    assert answer_of(completion({"content": "x"}, "length", **meta), streamed=False) == Answer("x", "length")


def test_completion_content_parts_and_refusal() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]
    assert answer_of(completion({"content": parts}), streamed=False).text == "ab"
    refused = completion({"content": None, "refusal": "I can't help with that."})
    assert answer_of(refused, streamed=False).text == "I can't help with that."


def test_completion_tool_calls() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    answer = answer_of(completion({"content": None, "tool_calls": calls}, "tool_calls"), streamed=False)
    assert answer.finish_reason == "tool_calls"
    assert answer.text == '[{"name":"get_weather","arguments":{"city":"Paris"}},{"name":"get_time","arguments":{}}]'
    # Arguments that are not JSON stay the string they are; an object is kept as one.
    odd = [{"function": {"name": "f", "arguments": "{bad"}}, {"function": {"name": "g", "arguments": {"k": 1}}}]
    text = answer_of(completion({"content": "", "tool_calls": odd}), streamed=False).text
    assert msgspec.json.decode(text) == [{"name": "f", "arguments": "{bad"}, {"name": "g", "arguments": {"k": 1}}]
    # Text beside a tool call is the answer.
    assert answer_of(completion({"content": "Let me check.", "tool_calls": calls}), streamed=False).text == \
        "Let me check."


def test_completion_first_choice_only() -> None:
    body = msgspec.json.encode({"choices": [
        {"index": 0, "message": {"content": "first"}, "finish_reason": "stop"},
        {"index": 1, "message": {"content": "second"}, "finish_reason": "length"},
    ]})
    assert answer_of(body, streamed=False) == Answer("first", "stop")


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b"null", b'{"choices": []}', b'{"choices": null}', b'{"choices": [{}]}',
     b'{"choices": [{"message": {"content": 5}}]}', b'{"error": {"message": "boom"}}', b'{"choices": [1e999]}',
     b"[" * 5000, b"[" * 5000 + b"]" * 5000, b"\xff\xfe"],
)
def test_completion_garbage(body: bytes) -> None:
    assert answer_of(body, streamed=False) == Answer("", None)


# --- chat.completion.chunk SSE ------------------------------------------------------------------


def test_stream_content_across_chunks() -> None:
    body = sse(
        chunk({"role": "assistant", "content": "", "refusal": None}),
        chunk({"content": "The"}),
        chunk({"content": " capital"}),
        chunk({"content": " is Paris."}),
        chunk({}, "stop"),
    )
    assert answer_of(body, streamed=True) == Answer("The capital is Paris.", "stop")


def test_stream_crlf_multiline_and_no_space() -> None:
    body = (b'data:{"choices":[{"index":0,"delta":{"content":"a"}}]}\r\n\r\n'
            b': a comment\r\n'
            b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"length"}]}\r\n\r\n'
            b"data: [DONE]\r\n\r\n")
    assert answer_of(body, streamed=True) == Answer("ab", "length")


def test_stream_tool_call_fragments() -> None:
    body = sse(
        chunk({"role": "assistant", "content": None, **call_delta(0, "get_weather", "", "call_1")}),
        chunk(call_delta(0, arguments='{"ci')),
        chunk(call_delta(0, arguments='ty": "Par')),
        chunk(call_delta(1, "get_time", "", "call_2")),
        chunk(call_delta(0, arguments='is"}')),
        chunk(call_delta(1, arguments="{}")),
        chunk({}, "tool_calls"),
    )
    answer = answer_of(body, streamed=True)
    assert answer.finish_reason == "tool_calls"
    assert answer.text == '[{"name":"get_weather","arguments":{"city":"Paris"}},{"name":"get_time","arguments":{}}]'


def test_stream_tool_call_name_repeated_and_cut_short() -> None:
    # Some compatible servers repeat the name on every fragment; a stream cut short leaves bad JSON.
    body = sse(chunk(call_delta(0, "f", '{"a":')), chunk(call_delta(0, "f", " 1")), done=False)
    answer = answer_of(body, streamed=True)
    assert msgspec.json.decode(answer.text) == [{"name": "f", "arguments": '{"a": 1'}]
    assert answer.finish_reason is None


def test_stream_usage_chunks_and_other_choices() -> None:
    usage = {"id": "x", "object": "chat.completion.chunk", "choices": [],
             "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    body = sse(
        chunk({"content": "one"}),
        chunk({"content": "OTHER"}, index=1),
        chunk({"content": " two"}),
        chunk({}, "stop"),
        chunk({}, "length", index=1),
        usage,
        {"choices": None, "meta": {"request_id": "req_1"}},
    )
    assert answer_of(body, streamed=True) == Answer("one two", "stop")


def test_stream_finish_reason_is_last_non_null() -> None:
    body = sse(chunk({"content": "a"}, "length"), chunk({"content": "b"}), chunk({}, None))
    assert answer_of(body, streamed=True) == Answer("ab", "length")


def test_stream_skips_error_events_and_bad_lines() -> None:
    body = sse(
        chunk({"content": "kept"}),
        b"data: {not json\n\n",
        b'data: {"choices": [{"delta": {"content": 7}}]}\n\n',
        b"data: " + b"[" * 5000 + b"\n\n",
        b"retry: 100\nid: 4\n\n",
        b'event: error\ndata: {"choices": [{"index": 0, "delta": {"content": " ERROR"}}]}\n\n',
        b'event: message\ndata: {"choices": [{"index": 0, "delta": {"content": "!"}}]}\n\n',
        chunk({}, "stop"),
    )
    assert answer_of(body, streamed=True) == Answer("kept!", "stop")


def test_stream_refusal() -> None:
    body = sse(chunk({"content": None, "refusal": "I can't"}), chunk({"refusal": " do that."}), chunk({}, "stop"))
    assert answer_of(body, streamed=True).text == "I can't do that."


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"data: [DONE]\n\n", b"data:\n\n", b"data: null\n\n", b"data: 5\n\n", b"\xff\xfe\x00",
     b'{"choices": [{"message": {"content": "not sse"}}]}', b"event: error\ndata: {}\n\n"],
)
def test_stream_garbage(body: bytes) -> None:
    assert answer_of(body, streamed=True) == Answer("", None)
