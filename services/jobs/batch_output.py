"""A finished batch's results: OpenAI's output and error files (files of the batch's
owner, purpose batch_output) or Anthropic's results JSONL.

Lines are read back from KV `sb_batch_lines` one at a time while the file streams
into the Object Store, so memory stays at one line whatever the batch's size. Lines
that never ran (the batch was cancelled or expired) are written from their custom id.
"""

import time
from collections.abc import AsyncIterator

import msgspec

from libs.contracts.files import FileRecord, job_object_name
from libs.contracts.http import batches as http
from libs.contracts.http import message_batches as anthropic
from libs.contracts.http.batches import LineResult
from libs.runtime.blobs import BlobStore
from libs.runtime.files import FileStore
from services.jobs.batch_runner import Stop, Tally, request_id_of
from services.jobs.batch_store import LineStore

JSONL = "application/jsonl"
RESULTS_FILENAME = "results.jsonl"
_NOT_RUN = {"cancelled": ("canceled", http.CODE_CANCELLED, "The batch was cancelled before this request ran."),
            "expired": ("expired", http.CODE_EXPIRED, "The batch expired before this request ran.")}


def unfinished(batch_id: str, index: int, custom_id: str, stop: Stop) -> LineResult:
    outcome, code, message = _NOT_RUN[stop]
    return LineResult(index=index, custom_id=custom_id, outcome=outcome,  # type: ignore[arg-type]
                      request_id=request_id_of(batch_id, index), error_code=code, error_message=message)


def output_line(batch_id: str, result: LineResult) -> bytes:
    response = None
    if result.status_code:
        response = http.LineResponse(status_code=result.status_code, request_id=result.request_id,
                                     body=msgspec.Raw(result.body or b"null"))
    error = None
    if result.error_code is not None:
        error = http.LineError(code=result.error_code, message=result.error_message or "")
    line = http.OutputLine(id=f"batch_req_{batch_id.removeprefix(http.BATCH_ID_PREFIX)}_{result.index}",
                           custom_id=result.custom_id, response=response, error=error)
    return http.encode(line) + b"\n"


def result_line(result: LineResult) -> bytes:
    outcome: anthropic.Succeeded | anthropic.Errored | anthropic.Canceled | anthropic.Expired
    if result.outcome == "succeeded":
        outcome = anthropic.Succeeded(message=msgspec.Raw(result.body))
    elif result.outcome == "canceled":
        outcome = anthropic.Canceled()
    elif result.outcome == "expired":
        outcome = anthropic.Expired()
    else:
        outcome = anthropic.Errored(error=anthropic.ErrorResponse(error=anthropic.ErrorObject(
            type=anthropic.ERROR_TYPES.get(result.status_code, "api_error"), message=_message_of(result))))
    return anthropic.encode(anthropic.ResultLine(custom_id=result.custom_id, result=outcome)) + b"\n"


def _message_of(result: LineResult) -> str:
    if result.error_message:
        return result.error_message
    try:
        return str(msgspec.json.decode(result.body)["error"]["message"])
    except (msgspec.DecodeError, KeyError, TypeError):
        return f"The request failed with status {result.status_code}."


class Outputs:
    def __init__(self, files: FileStore, blobs: BlobStore, lines: LineStore) -> None:
        self._files = files
        self._blobs = blobs
        self._lines = lines

    async def _results(self, batch_id: str, custom_ids: list[str], tally: Tally, stop: Stop | None,
                       wanted: frozenset[str]) -> AsyncIterator[LineResult]:
        for index, custom_id in enumerate(custom_ids):
            outcome = tally.outcomes.get(index)
            if outcome is None:
                if stop is None:
                    raise RuntimeError(f"batch {batch_id}: line {index} never finished")
                result: LineResult | None = unfinished(batch_id, index, custom_id, stop)
            elif outcome not in wanted:
                continue
            else:
                result = await self._lines.get(batch_id, index)
                if result is None:
                    raise RuntimeError(f"batch {batch_id}: line {index} is not stored")
            if result.outcome in wanted:
                yield result

    async def openai_files(self, record: http.BatchRecord, custom_ids: list[str], tally: Tally,
                           stop: Stop | None) -> tuple[FileRecord | None, FileRecord | None]:
        batch = record.batch
        expires_at = int(time.time()) + record.output_expires_s if record.output_expires_s else None

        async def write(name: str, wanted: frozenset[str]) -> FileRecord:
            async def chunks() -> AsyncIterator[bytes]:
                async for result in self._results(batch.id, custom_ids, tally, stop, wanted):
                    yield output_line(batch.id, result)

            return await self._files.save(record.account_id, record.subaccount_id, f"{batch.id}_{name}.jsonl",
                                          "batch_output", chunks(), content_type=JSONL, expires_at=expires_at)

        counts = tally.counts
        failed = len(custom_ids) - counts.succeeded
        output = await write("output", frozenset({"succeeded"})) if counts.succeeded else None
        errors_file = await write("error", frozenset({"errored", "canceled", "expired"})) if failed else None
        return output, errors_file

    async def anthropic_results(self, record: http.BatchRecord, custom_ids: list[str], tally: Tally,
                                stop: Stop | None) -> str:
        name = job_object_name(record.account_id, record.batch.id, RESULTS_FILENAME)

        async def chunks() -> AsyncIterator[bytes]:
            every = frozenset({"succeeded", "errored", "canceled", "expired"})
            async for result in self._results(record.batch.id, custom_ids, tally, stop, every):
                yield result_line(result)

        await self._blobs.put(name, chunks(), JSONL)
        return name


def count_unfinished(tally: Tally, custom_ids: list[str], stop: Stop | None) -> None:
    """Count the lines that never ran as cancelled or expired, so the counts add up to the total."""
    if stop is None:
        return
    outcome = _NOT_RUN[stop][0]
    missing = sum(1 for index in range(len(custom_ids)) if index not in tally.outcomes)
    setattr(tally.counts, outcome, getattr(tally.counts, outcome) + missing)

