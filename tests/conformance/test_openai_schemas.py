"""The validator itself (openai_schemas.py): nullable read as "or null" and nothing else relaxed,
known-good bodies pass and known-bad ones fail, deviations only where named."""

import copy
import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.conformance.openai_schemas import DOCUMENT, ERROR_CODE, OpenAISchemas, read_nullable

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "hi", "refusal": None}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    "meta": {"provider": "sim"},  # an extension: the schema allows more members
}
CHUNK: dict[str, Any] = {
    "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-4o",
    "usage": None,  # `$ref: CompletionUsage` with `nullable: true` in the document
    "choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}],
}
PART_ADDED: dict[str, Any] = {
    "type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_1", "output_index": 0,
    "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
}


@pytest.fixture(scope="module")
def schemas() -> Iterator[OpenAISchemas]:
    yield OpenAISchemas.load()


def _valid(schema: dict[str, Any], instance: Any) -> bool:
    return Draft202012Validator(read_nullable(schema)).is_valid(instance)


def test_nullable_true_also_allows_null_and_nothing_else() -> None:
    schema = {"type": "string", "enum": ["a", "b"], "nullable": True, "description": "kept outside"}
    assert _valid(schema, None) and _valid(schema, "a")
    assert not _valid(schema, "c") and not _valid(schema, 1)
    assert read_nullable(schema)["description"] == "kept outside"


def test_nullable_false_and_absent_keep_null_out() -> None:
    assert not _valid({"type": "integer", "nullable": False}, None)
    assert not _valid({"type": "integer"}, None)


def test_a_property_named_nullable_is_not_the_keyword() -> None:
    schema = {"type": "object", "properties": {"nullable": {"type": "integer"}}, "required": ["nullable"]}
    assert read_nullable(schema) == schema
    assert not _valid(schema, {"nullable": None})


def test_nullable_is_read_inside_the_document() -> None:
    with gzip.open(DOCUMENT, "rb") as raw:
        document = json.load(raw)
    usage = document["components"]["schemas"]["CreateChatCompletionStreamResponse"]["properties"]["usage"]
    assert usage.get("nullable") is True  # the 3.0 keyword this module exists for
    read = read_nullable(usage)
    assert "nullable" not in json.dumps(read) and {"type": "null"} in read["anyOf"]


def test_known_good_bodies_conform(schemas: OpenAISchemas) -> None:
    assert schemas.errors("CreateChatCompletionResponse", COMPLETION) == []
    assert schemas.errors("CreateChatCompletionStreamResponse", CHUNK) == []
    assert schemas.check_stream_event("ResponseStreamEvent", PART_ADDED) == "ResponseContentPartAddedEvent"


@pytest.mark.parametrize(("change", "says"), [
    (lambda b: b.pop("created"), "'created' is a required property"),
    (lambda b: b.update(created="1700000000"), "is not of type 'integer'"),
    (lambda b: b["choices"][0].update(finish_reason="done"), "is not one of"),
    (lambda b: b["choices"][0]["message"].update(role="user"), "is not one of"),
    (lambda b: b.update(usage=None), "None is not of type 'object'"),  # usage is not nullable here
])
def test_known_bad_bodies_fail(schemas: OpenAISchemas, change: Any, says: str) -> None:
    body = copy.deepcopy(COMPLETION)
    change(body)
    problems = schemas.errors("CreateChatCompletionResponse", body)
    assert problems and any(says in problem for problem in problems), problems
    with pytest.raises(AssertionError, match="does not conform to CreateChatCompletionResponse"):
        schemas.check("CreateChatCompletionResponse", body)


def test_an_output_text_part_without_logprobs_fails_and_says_why(schemas: OpenAISchemas) -> None:
    event = copy.deepcopy(PART_ADDED)
    del event["part"]["logprobs"]
    (problem,) = schemas.errors("ResponseContentPartAddedEvent", event)
    assert "'logprobs' is a required property" in problem  # the closest variant's reason, not another's


def test_stream_event_variants_by_type(schemas: OpenAISchemas) -> None:
    assert schemas.variant("ResponseStreamEvent", "response.completed") == "ResponseCompletedEvent"
    assert schemas.variant("ResponseStreamEvent", "error") == "ResponseErrorEvent"
    with pytest.raises(KeyError):
        schemas.variant("ResponseStreamEvent", "response.made_up")
    with pytest.raises(AssertionError):
        schemas.check_stream_event("ResponseStreamEvent", {**PART_ADDED, "sequence_number": "3"})


def test_a_deviation_is_skipped_only_at_its_path(schemas: OpenAISchemas) -> None:
    ours = {"error": {"message": "Invalid API key.", "type": "authentication_error", "param": None, "code": 401}}
    assert schemas.errors("ErrorResponse", ours)  # OpenAI's code is a string or null
    assert schemas.errors("ErrorResponse", ours, deviations=[ERROR_CODE]) == []
    without_param = {"error": {"message": "x", "type": "invalid_request_error", "code": 400}}
    assert schemas.errors("ErrorResponse", without_param, deviations=[ERROR_CODE])  # param is still required
    assert schemas.errors("ErrorResponse", {"error": {"message": "x", "type": "t", "param": None}},
                          deviations=[ERROR_CODE])  # and so is code


def test_unknown_schema_names_fail_loudly(schemas: OpenAISchemas) -> None:
    with pytest.raises(KeyError):
        schemas.check("NoSuchSchema", {})
    assert {"Response", "Batch", "VideoResource", "CreateEmbeddingResponse"} <= schemas.names()
