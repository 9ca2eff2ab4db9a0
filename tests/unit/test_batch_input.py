"""Batch input files: line splitting across chunks, whole-file validation, the lines run."""

import asyncio
import json
from collections.abc import AsyncIterator

import msgspec

from libs.contracts.http import batches as http
from services.jobs import batch_input
from services.jobs.jsonl import split_lines

CHAT = "/v1/chat/completions"


def _line(custom_id: str, **body: object) -> bytes:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": CHAT,
                       "body": {"model": "m", "messages": [], **body}}).encode()


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _check(data: bytes, size: int = 7) -> batch_input.Checked:
    return asyncio.run(batch_input.check(_chunks(data, size), CHAT))


def test_lines_split_the_same_whatever_the_chunking() -> None:
    data = b"one\ntwo\n\nthree"

    async def collect(size: int) -> list[bytes]:
        return [line async for line in split_lines(_chunks(data, size))]

    for size in (1, 2, 3, 5, 100):
        assert asyncio.run(collect(size)) == [b"one", b"two", b"", b"three"]


def test_a_good_file_yields_its_custom_ids_and_models() -> None:
    checked = _check(_line("a") + b"\n\n" + _line("b") + b"\n")
    assert checked.errors == [] and checked.custom_ids == ["a", "b"] and checked.models == {"m"}


def test_each_problem_is_named_with_its_line_number() -> None:
    data = b"\n".join([
        _line("a"), b"{broken", _line("a"),
        json.dumps({"custom_id": "c", "method": "GET", "url": CHAT, "body": {"model": "m"}}).encode(),
        json.dumps({"custom_id": "d", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m"}}).encode(),
        json.dumps({"custom_id": "e", "method": "POST", "url": CHAT, "body": "text"}).encode(),
        json.dumps({"custom_id": "f", "method": "POST", "url": CHAT, "body": {"model": ""}}).encode(),
        json.dumps({"method": "POST", "url": CHAT, "body": {"model": "m"}}).encode(),
        b"[1, 2]",
    ])
    found = [(e.line, e.code) for e in _check(data).errors]
    assert found == [(2, http.CODE_INVALID_JSON), (3, http.CODE_DUPLICATE_CUSTOM_ID), (4, http.CODE_INVALID_METHOD),
                     (5, http.CODE_INVALID_URL), (6, http.CODE_INVALID_BODY), (7, http.CODE_MISSING_MODEL),
                     (8, http.CODE_MISSING_CUSTOM_ID), (9, http.CODE_INVALID_JSON)]


def test_an_empty_file_and_too_many_lines_fail() -> None:
    assert [e.code for e in _check(b"\n \n").errors] == [http.CODE_EMPTY_FILE]
    many = b"\n".join(_line(f"id{i}") for i in range(http.MAX_LINES + 1))
    errors = _check(many, size=1 << 16).errors
    assert [(e.code, e.line) for e in errors] == [(http.CODE_TOO_MANY_LINES, http.MAX_LINES + 1)]


def test_a_file_bad_on_every_line_reports_a_bounded_list() -> None:
    checked = _check(b"x\n" * 500, size=64)
    assert checked.error_count == 500 and len(checked.errors) == batch_input.MAX_REPORTED_ERRORS


def test_lines_drop_stream_fields_and_keep_the_rest() -> None:
    async def collect() -> list[batch_input.Line]:
        data = _line("a", stream=True, stream_options={"include_usage": True}, temperature=0.5)
        return [line async for line in batch_input.lines(_chunks(data, 4), CHAT)]

    (only,) = asyncio.run(collect())
    assert (only.index, only.line_no, only.custom_id, only.model) == (0, 1, "a", "m")
    assert msgspec.json.decode(only.body) == {"model": "m", "messages": [], "temperature": 0.5}


def test_a_body_the_edge_would_refuse_is_named() -> None:
    assert batch_input.schema_error(CHAT, b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}') is None
    assert "messages" in (batch_input.schema_error(CHAT, b'{"model": "m", "messages": 3}') or "")
    assert batch_input.schema_error("/v1/embeddings", b'{"model": "m"}') is not None
