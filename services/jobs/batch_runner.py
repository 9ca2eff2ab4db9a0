"""Running a batch's lines through the router, a bounded number at a time.

Each line is one request with a deterministic id (`<batch id>-<line index>`), billed at
the batch discount, tagged with the batch's tag. Its result is stored in KV
`sb_batch_lines` as soon as it is known, before the batch's message is acknowledged:
a batch redelivered to another replica skips the lines already stored, and a line that
was in flight on a replica that died runs again under the same request id, which the
usage stream and the ledger deduplicate, so it is billed once.

Before each line the caller's cap and prepaid balance are checked (caps.Budget); a line
refused there errors with `budget_exceeded` (402) and costs nothing. A ticker keeps the
record's counts current and notices a cancel or the end of the completion window:
then no new line starts, the lines in flight finish, and the rest are left unfinished.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Literal

import msgspec
import structlog

from libs.contracts import errors
from libs.contracts.errors import ErrorBody, error_json
from libs.contracts.http import batches as http
from libs.contracts.http.batches import LineCounts, LineResult
from services.jobs.batch_input import OPERATIONS, Line, schema_error
from services.jobs.batch_store import BatchStore, LineStore
from services.jobs.caps import Budget
from services.jobs.inference import Outcome, RouterClient

log = structlog.get_logger()
TICK_S = 0.5
Stop = Literal["cancelled", "expired"]


def request_id_of(batch_id: str, index: int) -> str:
    return f"{batch_id}-{index}"


class Tally(msgspec.Struct, kw_only=True):
    """What a run knows of its lines: each index's outcome, the counts, tokens and cost."""

    outcomes: dict[int, str] = {}
    counts: LineCounts = msgspec.field(default_factory=LineCounts)
    usage: http.BatchUsage = msgspec.field(default_factory=http.BatchUsage)
    cost_micros: int = 0

    def add(self, result: LineResult) -> None:
        if result.index in self.outcomes:
            return
        self.outcomes[result.index] = result.outcome
        setattr(self.counts, result.outcome, getattr(self.counts, result.outcome) + 1)
        self.cost_micros += result.cost_micros
        usage = self.usage
        usage.input_tokens += result.input_tokens
        usage.input_tokens_details.cached_tokens += result.cached_tokens
        usage.output_tokens += result.output_tokens
        usage.total_tokens += result.input_tokens + result.output_tokens


def apply_tally(record: http.BatchRecord, tally: Tally, total: int) -> bool:
    """Copy the tally into the record; whether anything changed."""
    counts = msgspec.structs.replace(tally.counts)
    if record.counts == counts and record.cost_micros == tally.cost_micros:
        return False
    record.counts = counts
    record.cost_micros = tally.cost_micros
    record.batch.usage = msgspec.json.decode(msgspec.json.encode(tally.usage), type=http.BatchUsage)
    record.batch.request_counts = request_counts(counts, total)
    return True


def request_counts(counts: LineCounts, total: int) -> http.RequestCounts:
    return http.RequestCounts(total=total, completed=counts.succeeded,
                              failed=counts.errored + counts.canceled + counts.expired,
                              processing=max(total - counts.done, 0))


def error_body(status: int, type_: str, message: str) -> bytes:
    return error_json(ErrorBody(message=message, type=type_, code=status))


def from_outcome(line: Line, outcome: Outcome) -> LineResult:
    usage = outcome.meta.usage if outcome.meta is not None else None
    tokens = {"input_tokens": usage.input_units, "output_tokens": usage.output_units,
              "cached_tokens": usage.cached_units} if usage is not None else {}
    if outcome.status == 200:
        return LineResult(index=line.index, custom_id=line.custom_id, outcome="succeeded",
                          request_id=outcome.request_id, status_code=200, body=outcome.body,
                          cost_micros=outcome.cost_micros, **tokens)
    body = outcome.body or error_body(outcome.status, outcome.error_type or errors.PROVIDER_ERROR,
                                      outcome.error or "The request failed.")
    return LineResult(index=line.index, custom_id=line.custom_id, outcome="errored", request_id=outcome.request_id,
                      status_code=outcome.status, body=body, cost_micros=outcome.cost_micros, **tokens)


def refused(line: Line, request_id: str, status: int, type_: str, message: str, code: str | None = None
            ) -> LineResult:
    return LineResult(index=line.index, custom_id=line.custom_id, outcome="errored", request_id=request_id,
                      status_code=status, body=error_body(status, type_, message), error_code=code,
                      error_message=message if code is not None else None)


class Runner:
    def __init__(self, router: RouterClient, store: BatchStore, lines: LineStore, concurrency: int) -> None:
        self._router = router
        self._store = store
        self._lines = lines
        self._concurrency = concurrency

    async def resume(self, batch_id: str) -> Tally:
        """What earlier deliveries of this batch already finished."""
        tally = Tally()
        async for result in self._lines.finished(batch_id):
            tally.add(result)
        return tally

    async def run(self, record: http.BatchRecord, source: AsyncIterator[Line], tally: Tally, budget: Budget
                  ) -> tuple[list[str], Stop | None]:
        """Run every unfinished line of `source`; the custom ids of all lines, and why it stopped early."""
        batch = record.batch
        total = batch.request_counts.total
        operation = OPERATIONS[batch.endpoint]
        tag = record.tag or f"batch:{batch.id}"
        stop: list[Stop] = []
        custom_ids: list[str] = []
        gate = asyncio.Semaphore(self._concurrency)

        async def one(line: Line) -> None:
            try:
                result = await self._line(record, line, operation, tag, budget)
                await self._lines.put(batch.id, result)
                tally.add(result)
            finally:
                gate.release()

        async def tick() -> None:
            while True:
                await asyncio.sleep(TICK_S)
                try:
                    await self._progress(record, tally, total, stop)
                except Exception as exc:  # NATS settling: the next tick tries again
                    log.warning("batch_progress_failed", batch_id=batch.id, error=repr(exc))

        await self._progress(record, tally, total, stop)  # a cancel that came before the run
        running: set[asyncio.Task[None]] = set()
        ticker = asyncio.get_running_loop().create_task(tick())
        try:
            async for line in source:
                custom_ids.append(line.custom_id)
                if line.index in tally.outcomes:
                    continue
                if not stop and time.time() >= batch.expires_at:
                    stop.append("expired")
                if stop:
                    continue  # read on for the custom ids: the unfinished lines are reported by them
                await gate.acquire()
                task = asyncio.get_running_loop().create_task(one(line))
                running.add(task)
                task.add_done_callback(running.discard)
            await asyncio.gather(*running)  # a line that could not be stored fails the run: redelivered
        finally:
            ticker.cancel()
            for task in running:
                task.cancel()
        await self._progress(record, tally, total, stop)
        return custom_ids, (stop[0] if stop else None)

    async def _progress(self, record: http.BatchRecord, tally: Tally, total: int, stop: list[Stop]) -> None:
        current = await self._store.update(record.account_id, record.batch.id,
                                           lambda r: apply_tally(r, tally, total))
        if current is None or stop:
            return
        if current.batch.status == "cancelling":
            stop.append("cancelled")
        elif time.time() >= current.batch.expires_at:
            stop.append("expired")

    async def _line(self, record: http.BatchRecord, line: Line, operation: str, tag: str, budget: Budget
                    ) -> LineResult:
        request_id = request_id_of(record.batch.id, line.index)
        problem = schema_error(record.batch.endpoint, line.body)
        if problem is not None:
            return refused(line, request_id, 400, errors.INVALID_REQUEST, problem)
        refusal = budget.refusal()
        if refusal is not None:
            return refused(line, request_id, 402, errors.BUDGET_EXCEEDED, refusal, code=http.CODE_BUDGET)
        outcome = await self._router.call(record.principal(), operation, line.model, line.body, tag,
                                          request_id=request_id, batch=True)
        budget.spent(outcome.cost_micros)
        return from_outcome(line, outcome)

