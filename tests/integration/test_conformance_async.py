"""Files, batches (the objects and every line of their output and error files) and videos, as the
gateway sends them, against OpenAI's published schemas; batch lines run through each provider
path (an OpenAI-compatible upstream, Anthropic, Gemini), videos through each video provider's wire
(OpenAI's videos API, Gemini Veo, Replicate, fal)."""

import io
import json
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.conformance.openai_schemas import OpenAISchemas
from tests.conformance.wire import check_error
from tests.integration.api import call, create_sub_account
from tests.integration.cluster import Cluster, eventually

TERMINAL = ("completed", "failed", "expired", "cancelled")
# The document has no schema for a batch output or error file's lines; this is the line OpenAI's
# Batch guide documents (platform.openai.com/docs/guides/batch), held as strictly.
LINE = Draft202012Validator({
    "type": "object", "required": ["id", "custom_id", "response", "error"],
    "properties": {
        "id": {"type": "string"}, "custom_id": {"type": "string"},
        "response": {"anyOf": [{"type": "null"}, {
            "type": "object", "required": ["status_code", "request_id", "body"],
            "properties": {"status_code": {"type": "integer"}, "request_id": {"type": "string"},
                           "body": {"type": "object"}}}]},
        "error": {"anyOf": [{"type": "null"}, {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}]}}})
ENDPOINTS = {"/v1/chat/completions": "CreateChatCompletionResponse", "/v1/embeddings": "CreateEmbeddingResponse",
             "/v1/responses": "Response"}
PROVIDER_MODELS = {"/v1/chat/completions": ["sim/gpt-sim", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash"],
                   "/v1/responses": ["sim/gpt-sim", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash"],
                   "/v1/embeddings": ["sim/embed-sim", "google/text-embedding-004"]}
VIDEO_MODELS = [pytest.param("sim/video-sim", id="openai-videos"),
                pytest.param("google/veo-3.0-fast-generate-001", id="gemini-veo"),
                pytest.param("replicate/minimax/video-01", id="replicate"),
                pytest.param("fal/fal-ai/kling-video/v2.1/standard/text-to-video", id="fal")]


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _upload(gateway: Cluster, data: bytes, purpose: str = "batch", key: str | None = None) -> dict[str, Any]:
    return _ok(call(gateway, "POST", "/files", key, files={"file": ("input.jsonl", io.BytesIO(data))},
                    data={"purpose": purpose}))


def _line(custom_id: str, url: str, model: str) -> dict[str, Any]:
    if url == "/v1/chat/completions":
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": custom_id}]}
    else:
        body = {"model": model, "input": custom_id}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _wait(gateway: Cluster, batch_id: str) -> dict[str, Any]:
    return eventually(lambda: (b := _ok(call(gateway, "GET", f"/batches/{batch_id}")))["status"] in TERMINAL and b,
                      30, interval_s=0.2)


def _rows(gateway: Cluster, file_id: str) -> list[dict[str, Any]]:
    response = call(gateway, "GET", f"/files/{file_id}/content")
    assert response.status_code == 200
    return [json.loads(row) for row in response.text.splitlines() if row.strip()]


def _check_line(openai_schemas: OpenAISchemas, row: dict[str, Any], endpoint: str) -> None:
    problems = [f"{e.json_path}: {e.message}" for e in LINE.iter_errors(row)]
    assert not problems, (problems, row)
    if row["response"] is None:
        return
    body, status = row["response"]["body"], row["response"]["status_code"]
    if status == 200:
        openai_schemas.check(ENDPOINTS[endpoint], body)
    else:
        check_error(openai_schemas, body, status)


# Files ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("purpose", ["batch", "user_data"])
def test_file_objects(gateway: Cluster, openai_schemas: OpenAISchemas, purpose: str) -> None:
    created = _upload(gateway, b'{"a": 1}\n', purpose)
    openai_schemas.check("OpenAIFile", created)
    openai_schemas.check("OpenAIFile", _ok(call(gateway, "GET", f"/files/{created['id']}")))
    page = _ok(call(gateway, "GET", "/files", params={"limit": 2}))
    openai_schemas.check("ListFilesResponse", page)
    deleted = _ok(call(gateway, "DELETE", f"/files/{created['id']}"))
    openai_schemas.check("DeleteFileResponse", deleted)
    assert deleted == {"id": created["id"], "object": "file", "deleted": True}


def test_empty_pages(gateway: Cluster, openai_schemas: OpenAISchemas) -> None:
    # A new sub-account has nothing yet: OpenAI's list schemas still hold for an empty page.
    key = create_sub_account(gateway, name="conformance-empty")["key"]
    for path, schema in (("/files", "ListFilesResponse"), ("/batches", "ListBatchesResponse"),
                         ("/videos", "VideoListResource")):
        page = _ok(call(gateway, "GET", path, key))
        openai_schemas.check(schema, page)
        assert page["data"] == [] and page["has_more"] is False


# Batches ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_batch_objects_and_every_output_line(gateway: Cluster, openai_schemas: OpenAISchemas, endpoint: str) -> None:
    models = PROVIDER_MODELS[endpoint]
    lines = [_line(f"ok-{i}", endpoint, model) for i, model in enumerate(models)]
    lines.append(_line("refused", endpoint, f"{models[0]}+status=400"))  # an error line, from the provider
    file_id = _upload(gateway, _jsonl(lines))["id"]
    created = _ok(call(gateway, "POST", "/batches", json={"input_file_id": file_id, "endpoint": endpoint,
                                                          "completion_window": "24h",
                                                          "metadata": {"run": "conformance"}}))
    openai_schemas.check("Batch", created)
    assert created["status"] == "validating" and created["completion_window"] == "24h"
    done = _wait(gateway, created["id"])
    openai_schemas.check("Batch", done)
    assert done["status"] == "completed" and done["request_counts"]["failed"] == 1
    for file_key in ("output_file_id", "error_file_id"):
        openai_schemas.check("OpenAIFile", _ok(call(gateway, "GET", f"/files/{done[file_key]}")))
    output, failed = _rows(gateway, done["output_file_id"]), _rows(gateway, done["error_file_id"])
    assert len(output) == len(models) and len(failed) == 1
    for row in output + failed:
        _check_line(openai_schemas, row, endpoint)
    listed = _ok(call(gateway, "GET", "/batches", params={"limit": 5}))
    openai_schemas.check("ListBatchesResponse", listed)


def test_cancelled_batch_and_its_lines(gateway: Cluster, openai_schemas: OpenAISchemas) -> None:
    lines = [_line(f"slow-{i}", "/v1/chat/completions", "sim/gpt-sim+latency=300") for i in range(40)]
    created = _ok(call(gateway, "POST", "/batches", json={
        "input_file_id": _upload(gateway, _jsonl(lines))["id"], "endpoint": "/v1/chat/completions",
        "completion_window": "24h"}))
    eventually(lambda: _ok(call(gateway, "GET", f"/batches/{created['id']}"))["request_counts"]["completed"] > 0, 15)
    cancelling = _ok(call(gateway, "POST", f"/batches/{created['id']}/cancel"))
    openai_schemas.check("Batch", cancelling)
    done = _wait(gateway, created["id"])
    openai_schemas.check("Batch", done)
    assert done["status"] == "cancelled"
    for row in _rows(gateway, done["error_file_id"]):
        _check_line(openai_schemas, row, "/v1/chat/completions")
        assert row["response"] is None and row["error"]["code"] == "batch_cancelled"


def test_failed_batch(gateway: Cluster, openai_schemas: OpenAISchemas) -> None:
    bad_method = {"custom_id": "x", "method": "GET", "url": "/v1/chat/completions", "body": {}}
    file_id = _upload(gateway, _jsonl([bad_method]))["id"]
    created = _ok(call(gateway, "POST", "/batches", json={"input_file_id": file_id,
                                                          "endpoint": "/v1/chat/completions"}))
    done = _wait(gateway, created["id"])
    openai_schemas.check("Batch", done)
    assert done["status"] == "failed" and done["errors"]["data"][0]["line"] == 1


# Videos -----------------------------------------------------------------------------------------

def _video_done(gateway: Cluster, video_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        video = _ok(call(gateway, "GET", f"/videos/{video_id}"))
        return video if video["status"] in ("completed", "failed") else None

    return eventually(finished, 20, interval_s=0.2)


@pytest.mark.parametrize("model", VIDEO_MODELS)
def test_video_resources(gateway: Cluster, openai_schemas: OpenAISchemas, model: str) -> None:
    created = _ok(call(gateway, "POST", "/videos", json={"model": model, "prompt": "a red kite"}))
    openai_schemas.check("VideoResource", created)
    done = _video_done(gateway, created["id"])
    openai_schemas.check("VideoResource", done)
    assert done["status"] == "completed" and done["progress"] == 100
    failed = _video_done(gateway, _ok(call(gateway, "POST", "/videos", json={"model": f"{model}+fail",
                                                                              "prompt": "doomed"}))["id"])
    openai_schemas.check("VideoResource", failed)
    assert failed["status"] == "failed" and failed["error"]["message"]
    openai_schemas.check("VideoListResource", _ok(call(gateway, "GET", "/videos", params={"limit": 3})))
    for video in (done, failed):
        deleted = _ok(call(gateway, "DELETE", f"/videos/{video['id']}"))
        openai_schemas.check("DeletedVideoResource", deleted)


def test_a_running_video_and_its_deletion(gateway: Cluster, openai_schemas: OpenAISchemas) -> None:
    running = _ok(call(gateway, "POST", "/videos", json={"model": "sim/video-sim+job_s=30+progress",
                                                         "prompt": "slow"}))
    openai_schemas.check("VideoResource", running)
    # Once polled, the job is in progress (with the provider's progress) for its 30 s.
    polled = eventually(lambda: (v := _ok(call(gateway, "GET", f"/videos/{running['id']}")))["status"] == "in_progress"
                        and v, 10, interval_s=0.2)
    openai_schemas.check("VideoResource", polled)
    openai_schemas.check("DeletedVideoResource", _ok(call(gateway, "DELETE", f"/videos/{running['id']}")))
