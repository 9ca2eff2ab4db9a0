"""Driving one generation (video, music, 3D) through the router: submit, poll, fetch.

Each delivery of the job's message on the `polls` consumer does one step and returns
`Later(seconds)` until the job is over, so a waiting job holds no worker slot. Every
step first claims the record at its revision (stage `submitting` / `fetching`), so a
cancel that won the race is seen before anything is submitted or fetched (fetching is
what bills), and a cancel arriving after the claim is refused: a cancelled job is
never billed, a completing one is never cancelled. A replica dying mid-step leaves the
claim behind; the redelivered message repeats the step (the router meters a fetch
with request id = job id, so a repeated fetch bills once).
"""

import time

import msgspec
import structlog

from libs.contracts import errors
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus import longrun
from libs.contracts.http import jobs as http
from libs.runtime.events import EventPublisher
from services.jobs.job_events import emit_outcome
from services.jobs.job_records import JobStore, Versioned
from services.jobs.longrun_client import LongRunClient, StepFailed
from services.jobs.worker import Later

log = structlog.get_logger()
_AGAIN = object()  # the record changed under the step: read it again
_STEPS_PER_DELIVERY = 6


class PollSettings(msgspec.Struct, frozen=True, kw_only=True):
    base_s: float = 1.0  # SWITCHBOARD_JOB_POLL_S: the first poll interval
    max_s: float = 10.0  # the interval grows to this
    deadline_s: float = 6 * 3600.0  # SWITCHBOARD_JOB_DEADLINE_S: a job still running then fails
    max_errors: int = 8  # consecutive transient router errors before the job fails

    def next_poll(self, polls: int, poll_after_s: float | None) -> float:
        if poll_after_s is not None and poll_after_s > 0:
            return min(poll_after_s, self.max_s * 6)  # the provider's hint, within reason
        return min(self.base_s * 1.5 ** polls, self.max_s)

    def retry(self, errors_in_row: int) -> float:
        return min(self.base_s * 2 ** errors_in_row, max(self.max_s * 3, self.base_s))


def _error_of(body: object, fallback: str) -> http.JobError:
    message = getattr(body, "message", None) or fallback
    code = getattr(body, "type", None) or errors.PROVIDER_ERROR
    return http.JobError(message, code)


class GenerationPolls:
    def __init__(self, store: JobStore, router: LongRunClient, events: EventPublisher, settings: PollSettings) -> None:
        self._store = store
        self._router = router
        self._events = events
        self.settings = settings

    async def handle(self, data: bytes) -> Later | None:
        work = jobs_bus.decode_job_work(data)
        for _ in range(_STEPS_PER_DELIVERY):
            found = await self._store.get(work.account_id, work.job_id)
            if found is None:
                return None  # deleted (DELETE /v1/videos/{id}): nothing left to drive
            if found.record.status in http.TERMINAL:
                await emit_outcome(self._events, found.record)  # again, if a replica died before it could
                return None
            outcome = await self._step(found)
            if outcome is not _AGAIN:
                return outcome  # type: ignore[return-value]
        return Later(self.settings.base_s)

    async def give_up(self, data: bytes, why: str) -> None:
        work = jobs_bus.decode_job_work(data)
        found = await self._store.get(work.account_id, work.job_id)
        if found is not None and found.record.status not in http.TERMINAL:
            await self._fail(found, http.JobError(f"The job {why}.", errors.INTERNAL))

    async def _step(self, found: Versioned) -> object:
        record = found.record
        if time.time() - record.created_at > self.settings.deadline_s:
            if record.handle is not None:
                await self._cancel_upstream(record, record.handle)
            return await self._fail(found, http.JobError(
                f"The job did not finish within {self.settings.deadline_s:g}s.", "deadline_exceeded"))
        if record.status == "queued" and record.stage != "submitting":
            claimed = await self._store.put(found, msgspec.structs.replace(record, stage="submitting"))
            return _AGAIN if claimed is None else await self._submit(claimed)
        if record.stage == "submitting":
            return await self._submit(found)
        if record.stage == "fetching":
            return await self._fetch(found)
        return await self._poll(found)

    async def _submit(self, found: Versioned) -> object:
        record = found.record
        answer = await self._router.call(longrun.OP_SUBMIT, record.id, record.principal, modality=record.modality,
                                         model=record.model, body=record.body, tag=record.tag,
                                         traceparent=record.traceparent)
        if isinstance(answer, StepFailed):
            return await self._step_failed(found, answer)
        if answer.handle is None:
            return await self._fail(found, http.JobError("The router accepted the job without a handle.",
                                                         errors.PROVIDER_ERROR))
        moved = msgspec.structs.replace(record, handle=answer.handle, status="processing", stage="",
                                        progress=answer.progress, errors_in_row=0, polls=0,
                                        attempts=max(record.attempts, 1))
        if answer.state == "completed":
            moved.stage = "fetching"
        written = await self._store.put(found, moved)
        if written is None:
            return await self._lost_race(record, answer.handle)
        if answer.state == "failed":
            return await self._fail(written, _error_of(answer.error, "The provider refused the job."))
        if answer.state == "completed":
            return _AGAIN
        return Later(self.settings.next_poll(0, answer.poll_after_s))

    async def _poll(self, found: Versioned) -> object:
        record = found.record
        answer = await self._router.call(longrun.OP_POLL, record.id, record.principal, modality=record.modality,
                                         handle=record.handle, tag=record.tag)
        if isinstance(answer, StepFailed):
            return await self._step_failed(found, answer)
        if answer.state == "failed":
            return await self._fail(found, _error_of(answer.error, "The provider failed the job."))
        if answer.state == "cancelled":  # stopped at the provider, not by us
            return await self._fail(found, http.JobError("The provider cancelled the job.", "cancelled"))
        moved = msgspec.structs.replace(record, errors_in_row=0, polls=record.polls + 1,
                                        handle=answer.handle or record.handle)
        if answer.progress is not None:
            moved.progress = answer.progress
        if answer.state == "completed":
            moved.stage = "fetching"  # from here on a cancel is refused: the result is being paid for
        written = await self._store.put(found, moved)
        if written is None:
            return _AGAIN
        if answer.state == "completed":
            return await self._fetch(written)
        return Later(self.settings.next_poll(moved.polls, answer.poll_after_s))

    async def _fetch(self, found: Versioned) -> object:
        record = found.record
        answer = await self._router.call(longrun.OP_FETCH, record.id, record.principal, modality=record.modality,
                                         handle=record.handle, tag=record.tag)
        if isinstance(answer, StepFailed):
            return await self._step_failed(found, answer)
        if answer.state == "failed":
            return await self._fail(found, _error_of(answer.error, "The provider's result could not be fetched."))
        if answer.state != "completed":
            return Later(self.settings.next_poll(record.polls, answer.poll_after_s))
        now = int(time.time())
        done = msgspec.structs.replace(record, status="completed", stage="", progress=100.0, outputs=answer.outputs,
                                       completed_at=now, errors_in_row=0, duration_s=_seconds(record))
        meta = answer.meta
        if meta is not None:
            if meta.cost is not None:
                done.cost_micros = meta.cost.total_micros
            if meta.usage is not None:
                done.input_units, done.output_units = meta.usage.input_units, meta.usage.output_units
        written = await self._store.put(found, done)
        if written is None:
            return _AGAIN  # deleted meanwhile: the next read finds nothing
        log.info("job_completed", job_id=record.id, outputs=len(done.outputs), cost_micros=done.cost_micros)
        await emit_outcome(self._events, done)
        return None

    async def _step_failed(self, found: Versioned, failed: StepFailed) -> object:
        record = found.record
        if failed.transient and record.errors_in_row + 1 < self.settings.max_errors:
            retried = msgspec.structs.replace(record, errors_in_row=record.errors_in_row + 1,
                                              attempts=record.attempts + 1)
            written = await self._store.put(found, retried)
            if written is None:
                return _AGAIN
            log.warning("job_step_retry", job_id=record.id, code=failed.error.code, error=failed.error.message)
            return Later(self.settings.retry(retried.errors_in_row))
        return await self._fail(found, _error_of(failed.error, "The router failed the job."))

    async def _fail(self, found: Versioned, error: http.JobError) -> object:
        failed = msgspec.structs.replace(found.record, status="failed", stage="", error=error,
                                         completed_at=int(time.time()))
        written = await self._store.put(found, failed)
        if written is None:
            return _AGAIN
        log.info("job_failed", job_id=failed.id, code=error.code, error=error.message)
        await emit_outcome(self._events, failed)
        return None

    async def _lost_race(self, record: http.JobRecord, handle: longrun.LongRunHandle) -> object:
        """Submitted, but the record moved meanwhile: a cancel (or a delete) won, or another
        replica's delivery of the same message submitted too. Stop what nobody will poll."""
        current = await self._store.get(record.account_id, record.id)
        over = current is None or current.record.status in http.TERMINAL
        if over or (current is not None and current.record.handle != handle):
            await self._cancel_upstream(record, handle)
        return None if over else Later(self.settings.base_s)

    async def _cancel_upstream(self, record: http.JobRecord, handle: longrun.LongRunHandle) -> None:
        answer = await self._router.call(longrun.OP_CANCEL, record.id, record.principal, modality=record.modality,
                                         handle=handle, tag=record.tag)
        if isinstance(answer, StepFailed):
            log.warning("job_cancel_upstream_failed", job_id=record.id, error=answer.error.message)


def _seconds(record: http.JobRecord) -> float | None:
    raw = record.handle.extra.get("seconds") if record.handle is not None else None
    try:
        return float(raw) if raw else None
    except ValueError:
        return None
