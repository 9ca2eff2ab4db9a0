"""Result lines in the providers' formats, read back with the official SDKs' own types; the
public views (OpenAI's Batch, Anthropic's MessageBatch) the same way."""

import json

import anthropic.types.messages as anthropic_types
import msgspec
import openai.types as openai_types

from libs.contracts.http import batches as http
from services.jobs.batch_output import output_line, result_line, unfinished
from services.jobs.batch_runner import Tally, apply_tally
from services.jobs.message_batches import message_batch

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "end_turn",
           "stop_sequence": None, "content": [{"type": "text", "text": "hi"}],
           "usage": {"input_tokens": 1, "output_tokens": 1}}


def _ok(index: int = 0) -> http.LineResult:
    return http.LineResult(index=index, custom_id=f"c{index}", outcome="succeeded", request_id=f"batch_x-{index}",
                           status_code=200, body=json.dumps(MESSAGE).encode(), cost_micros=10, input_tokens=3,
                           output_tokens=4)


def _failed() -> http.LineResult:
    body = b'{"error": {"message": "upstream broke", "type": "provider_error", "code": 500, "param": null}}'
    return http.LineResult(index=1, custom_id="c1", outcome="errored", request_id="batch_x-1", status_code=500,
                           body=body)


def test_openai_output_and_error_lines() -> None:
    ok = json.loads(output_line("batch_x", _ok()))
    assert ok == {"id": "batch_req_x_0", "custom_id": "c0", "error": None,
                  "response": {"status_code": 200, "request_id": "batch_x-0", "body": MESSAGE}}
    failed = json.loads(output_line("batch_x", _failed()))
    assert failed["response"]["status_code"] == 500 and failed["error"] is None
    expired = json.loads(output_line("batch_x", unfinished("batch_x", 2, "c2", "expired")))
    assert expired["response"] is None and expired["error"]["code"] == http.CODE_EXPIRED


def test_anthropic_results_lines_parse_as_the_sdk_types() -> None:
    lines = [_ok(), _failed(), unfinished("b", 2, "c2", "cancelled"), unfinished("b", 3, "c3", "expired")]
    parsed = [anthropic_types.MessageBatchIndividualResponse.model_validate_json(result_line(r)) for r in lines]
    assert [p.result.type for p in parsed] == ["succeeded", "errored", "canceled", "expired"]
    assert parsed[0].result.message.content[0].text == "hi"  # type: ignore[union-attr]
    error = parsed[1].result.error  # type: ignore[union-attr]
    assert error.error.type == "api_error" and error.error.message == "upstream broke"


def _record(surface: str = "openai") -> http.BatchRecord:
    batch = http.Batch(id="batch_x", endpoint="/v1/chat/completions", input_file_id="file-1", completion_window="24h",
                       status="in_progress", created_at=1_700_000_000, expires_at=1_700_086_400,
                       request_counts=http.RequestCounts(total=3, processing=3))
    return http.BatchRecord(batch=batch, account_id="acc", surface=surface)  # type: ignore[arg-type]


def test_views_parse_as_the_sdk_types() -> None:
    record = _record()
    tally = Tally()
    tally.add(_ok(0))
    tally.add(_failed())
    tally.add(_ok(0))  # a line seen twice (a redelivery) counts once
    assert apply_tally(record, tally, 3) and not apply_tally(record, tally, 3)
    view = openai_types.Batch.model_validate_json(http.encode(record.batch))
    assert view.request_counts is not None
    assert (view.request_counts.total, view.request_counts.completed, view.request_counts.failed) == (3, 1, 1)
    assert view.usage is not None and view.usage.total_tokens == 7
    record.batch.status, record.batch.completed_at, record.results_object = "completed", 1_700_000_100, "x"
    mb = anthropic_types.MessageBatch.model_validate_json(msgspec.json.encode(message_batch(record)))
    assert mb.processing_status == "ended" and mb.results_url == "/v1/messages/batches/batch_x/results"
    assert (mb.request_counts.succeeded, mb.request_counts.errored, mb.request_counts.processing) == (1, 1, 0)
    assert mb.ended_at is not None and mb.ended_at.year == 2023
