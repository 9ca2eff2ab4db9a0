"""Batches (OpenAI's Batch API and Anthropic's Message Batches) as a kind of job.

A batch's run, pulled from JOBS_WORK_BATCH: validate the whole input file (a bad one
fails the batch, listing its bad lines), run the lines (batch_runner.py), then write
the results (batch_output.py), record the terminal state and emit `batch.completed`.
Every step can be redone: a run redelivered after its replica died validates again,
skips the lines already stored, and writes the results again.

Status: validating -> in_progress -> finalizing -> completed; failed (bad input);
expired (the completion window ended first); cancelling -> cancelled.
"""

import time
from collections.abc import Mapping

import msgspec
import structlog

from libs.contracts import subjects
from libs.contracts.bus import events
from libs.contracts.http import batches as http
from libs.runtime.env import env_int
from libs.runtime.files import FileStore
from services.jobs import batch_input
from services.jobs.batch_api import BatchApi
from services.jobs.batch_output import Outputs, count_unfinished
from services.jobs.batch_runner import Runner, Stop, Tally, apply_tally
from services.jobs.batch_store import BatchStore, LineStore
from services.jobs.caps import Caps
from services.jobs.kinds import ApiOp, JobsContext
from services.jobs.message_batches import MessageBatches, message_batch
from services.jobs.worker import GiveUp, Handler

log = structlog.get_logger()
_STOPPED: dict[Stop | None, http.Status] = {None: "completed", "cancelled": "cancelled", "expired": "expired"}


class Batches:
    def __init__(self, ctx: JobsContext, caps: Caps) -> None:
        self._ctx = ctx
        self._caps = caps
        self._ops: dict[str, ApiOp] = {}
        self.ops: Mapping[str, ApiOp] = self._ops  # filled by start()
        self.runs: Mapping[str, Handler] = {subjects.JOBS_WORK_BATCH: self.run}
        self.polls: Mapping[str, Handler] = {}
        self.give_up: Mapping[str, GiveUp] = {subjects.JOBS_WORK_BATCH: self._give_up}
        self._store: BatchStore | None = None
        self._lines: LineStore | None = None
        self._runner: Runner | None = None
        self._outputs: Outputs | None = None

    async def start(self) -> None:
        js, blobs = self._ctx.js, self._ctx.blobs
        self._store = store = await BatchStore.open(js)
        self._lines = lines = await LineStore.open(js)
        files = await FileStore.open(js, blobs)
        self._runner = Runner(self._ctx.router, store, lines, env_int("SWITCHBOARD_BATCH_CONCURRENCY", 8))
        self._outputs = Outputs(files, blobs, lines)
        openai = BatchApi(js, store, files)
        anthropic = MessageBatches(js, store, lines, blobs)
        self._ops.update({
            http.OP_BATCH_CREATE: openai.create, http.OP_BATCH_LIST: openai.list, http.OP_BATCH_GET: openai.get,
            http.OP_BATCH_CANCEL: openai.cancel,
            http.OP_MESSAGE_BATCH_CREATE: anthropic.create, http.OP_MESSAGE_BATCH_LIST: anthropic.list,
            http.OP_MESSAGE_BATCH_GET: anthropic.get, http.OP_MESSAGE_BATCH_CANCEL: anthropic.cancel,
            http.OP_MESSAGE_BATCH_RESULTS: anthropic.results, http.OP_MESSAGE_BATCH_DELETE: anthropic.delete,
        })

    async def stop(self) -> None:
        return None

    @property
    def store(self) -> BatchStore:
        assert self._store is not None, "Batches used before start()"
        return self._store

    async def run(self, data: bytes) -> None:
        assert self._runner is not None and self._lines is not None
        work = http.decode_work(data)
        record = await self.store.get(work.account_id, work.batch_id)
        if record is None or record.batch.status in http.TERMINAL:
            return  # deleted, or a redelivery after the end was recorded
        structlog.contextvars.bind_contextvars(batch_id=record.batch.id)
        endpoint = record.batch.endpoint
        if record.batch.in_progress_at is None:
            try:
                checked = await batch_input.check(await self._ctx.blobs.chunks(record.input_object), endpoint)
            except LookupError:
                await self._fail(record, [http.BatchError(code=http.CODE_FILE_UNREADABLE,
                                                          message="The input file was deleted before the batch ran.",
                                                          param="input_file_id")])
                return
            if checked.errors:
                await self._fail(record, checked.errors)
                return
            record = await self._started(record, checked)
            if record is None:
                return
        tally = await self._runner.resume(record.batch.id)
        source = batch_input.lines(await self._ctx.blobs.chunks(record.input_object), endpoint)
        custom_ids, stop = await self._runner.run(record, source, tally, self._caps.budget(record.principal()))
        await self._finish(record, custom_ids, tally, stop)

    async def _started(self, record: http.BatchRecord, checked: batch_input.Checked) -> http.BatchRecord | None:
        def change(r: http.BatchRecord) -> bool:
            batch = r.batch
            if batch.status == "validating":
                batch.status = "in_progress"
            batch.in_progress_at = int(time.time())
            batch.request_counts = http.RequestCounts(total=len(checked.custom_ids),
                                                      processing=len(checked.custom_ids))
            batch.model = next(iter(checked.models)) if len(checked.models) == 1 else None
            return True

        return await self.store.update(record.account_id, record.batch.id, change)

    async def _finish(self, record: http.BatchRecord, custom_ids: list[str], tally: Tally, stop: Stop | None) -> None:
        assert self._outputs is not None and self._lines is not None
        batch_id = record.batch.id
        if stop is None:
            def finalizing(r: http.BatchRecord) -> bool:
                if r.batch.status != "in_progress":
                    return False
                r.batch.status, r.batch.finalizing_at = "finalizing", int(time.time())
                return True

            await self.store.update(record.account_id, batch_id, finalizing)
        count_unfinished(tally, custom_ids, stop)
        output_id = error_id = results = None
        if record.surface == "openai":
            output, error = await self._outputs.openai_files(record, custom_ids, tally, stop)
            output_id, error_id = (output.id if output else None), (error.id if error else None)
        else:
            results = await self._outputs.anthropic_results(record, custom_ids, tally, stop)
        status = _STOPPED[stop]

        def ended(r: http.BatchRecord) -> bool:
            apply_tally(r, tally, len(custom_ids))
            batch, now = r.batch, int(time.time())
            batch.request_counts.processing = 0
            batch.status = status
            setattr(batch, f"{status}_at", now)
            batch.output_file_id, batch.error_file_id, r.results_object = output_id, error_id, results
            return True

        final = await self.store.update(record.account_id, batch_id, ended)
        if final is not None:
            await self._announce(final)
        await self._lines.purge(batch_id)
        log.info("batch_ended", status=status, lines=len(custom_ids), succeeded=tally.counts.succeeded)

    async def _fail(self, record: http.BatchRecord, problems: list[http.BatchError]) -> None:
        def failed(r: http.BatchRecord) -> bool:
            if r.batch.status in http.TERMINAL:
                return False
            r.batch.status, r.batch.failed_at = "failed", int(time.time())
            r.batch.errors = http.BatchErrors(data=problems)
            r.batch.request_counts.processing = 0
            return True

        final = await self.store.update(record.account_id, record.batch.id, failed)
        if final is not None and final.batch.status == "failed":
            await self._announce(final)

    async def _announce(self, record: http.BatchRecord) -> None:
        view = record.batch if record.surface == "openai" else message_batch(record)
        await self._ctx.events.emit(events.BATCH_COMPLETED, record.account_id, msgspec.to_builtins(view),
                                    event_id=f"evt_{record.batch.id}", subaccount_id=record.subaccount_id)

    async def _give_up(self, data: bytes, why: str) -> None:
        work = http.decode_work(data)
        record = await self.store.get(work.account_id, work.batch_id)
        if record is not None:
            await self._fail(record, [http.BatchError(code=http.CODE_BATCH_FAILED, message=f"The batch run {why}.")])
