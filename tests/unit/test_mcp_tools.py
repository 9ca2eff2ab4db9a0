"""How each MCP tool's arguments become an HTTP API call, and how answers become tool results."""

import base64
import json

import msgspec
import pytest

from services.edge.mcp.results import tool_result
from services.edge.mcp.tools import TOOLS, ApiAnswer, ApiCall, ArgumentsError

SPECS = {spec.name: spec for spec in TOOLS}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def test_body_tools_post_their_arguments_and_chat_never_streams() -> None:
    call = SPECS["chat"].build({"model": "m", "messages": [], "stream": True, "stream_options": {}, "seed": 1})
    assert isinstance(call, ApiCall) and (call.method, call.path) == ("POST", "/v1/chat/completions")
    assert json.loads(call.body or b"") == {"model": "m", "messages": [], "seed": 1}
    video = SPECS["generate_video"].build({"prompt": "p"})
    assert isinstance(video, ApiCall) and video.path == "/v1/videos/generations"


@pytest.mark.parametrize("odd", ["à", "a.b", "*", ">", "x" * 300, "..", "a/b", "a b"])
def test_an_id_that_cannot_be_an_id_is_the_unknown_id_404_without_a_call(odd: str) -> None:
    answer = SPECS["get_job"].build({"id": odd})
    assert isinstance(answer, ApiAnswer) and answer.status == 404
    assert json.loads(answer.body)["error"]["message"] == f"No job with id '{odd}' for this key."
    eval_answer = SPECS["get_eval"].build({"id": odd})
    assert isinstance(eval_answer, ApiAnswer) and b"No eval with id" in eval_answer.body


def test_ids_and_queries_shape_the_request() -> None:
    assert SPECS["cancel_job"].build({"id": "job_1"}) == ApiCall("DELETE", "/v1/jobs/job_1")
    usage = SPECS["usage_by_tag"].build({"from": "2026-01-01", "bucket": "day", "tag": None})
    assert usage == ApiCall("GET", "/v1/usage/by-tag", query={"from": "2026-01-01", "bucket": "day"})
    assert SPECS["list_models"].build({}) == ApiCall("GET", "/v1/models")


@pytest.mark.parametrize("args", [{"id": 7}, {}, {"id": "job_1", "extra": 1}])
def test_wrong_arguments_of_read_tools_are_argument_errors(args: dict[str, object]) -> None:
    with pytest.raises(ArgumentsError, match="Invalid arguments"):
        SPECS["get_job"].build(args)


def test_search_models_keeps_models_matching_every_word() -> None:
    spec = SPECS["search_models"]
    args = {"query": "GPT Vision", "limit": 1}
    assert spec.build(args) == ApiCall("GET", "/v1/models")
    listing = {"data": [
        {"id": "openai/gpt-4o", "provider": "openai", "capabilities": ["chat", "vision"]},
        {"id": "openai/gpt-4o-mini", "provider": "openai", "capabilities": ["chat", "vision"]},
        {"id": "openai/gpt-3.5", "provider": "openai", "capabilities": ["chat"]},
    ]}
    assert spec.refine is not None
    found = json.loads(spec.refine(ApiAnswer(200, "application/json", msgspec.json.encode(listing)), args).body)
    assert found["total"] == 2 and [card["id"] for card in found["data"]] == ["openai/gpt-4o"]
    failed = ApiAnswer(401, "application/json", b'{"error": {}}')
    assert spec.refine(failed, args) is failed


def test_json_answers_are_text_and_structured_content() -> None:
    result = tool_result(ApiAnswer(200, "application/json", b'{"object": "list", "data": []}'))
    assert not result.is_error and result.structured_content == {"object": "list", "data": []}
    assert result.content[0].type == "text" and json.loads(result.content[0].text) == {"object": "list", "data": []}


def test_http_errors_are_tool_errors_with_the_gateways_message() -> None:
    body = b'{"error": {"message": "Model x not found.", "type": "model_not_found", "code": 404, "param": "model"}}'
    result = tool_result(ApiAnswer(404, "application/json", body))
    assert result.is_error and result.content[0].text == "404 model_not_found: Model x not found."
    assert result.structured_content == json.loads(body)
    plain = tool_result(ApiAnswer(502, "text/plain", b"Bad gateway"))
    assert plain.is_error and plain.content[0].text == "Bad gateway"


def test_inline_images_and_audio_become_media_content() -> None:
    b64 = base64.b64encode(PNG).decode()
    images = tool_result(ApiAnswer(200, "application/json", json.dumps({"data": [{"b64_json": b64}]}).encode()))
    assert [part.type for part in images.content] == ["text", "image"]
    assert images.content[1].data == b64 and images.content[1].mime_type == "image/png"
    assert json.loads(images.content[0].text)["data"][0]["b64_json"] == "<image content 1>"
    audio = tool_result(ApiAnswer(200, "audio/mpeg", b"ID3abc"))
    assert audio.content[0].type == "audio" and base64.b64decode(audio.content[0].data) == b"ID3abc"
    assert audio.content[0].mime_type == "audio/mpeg"
    text = tool_result(ApiAnswer(200, "text/plain", b"hello there"))
    assert text.content[0].type == "text" and text.content[0].text == "hello there"
