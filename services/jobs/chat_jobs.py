"""Chat completions with `webhook_url`: run once on the `runs` consumer, the completion
kept as the job's result (in the record, and as `result.json` in the Object Store so
`result_url` serves it), then job.completed / job.failed.

The router is called with request id = job id: a replica killed mid-run has the
message redelivered and the request made again, and the ledger, keyed by request id,
bills it once.
"""

import time

import msgspec
import structlog

from libs.contracts import errors, files
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus.inference import DispatchMeta
from libs.contracts.bus.longrun import JobOutput
from libs.contracts.http import jobs as http
from libs.runtime.blobs import BlobStore
from libs.runtime.events import EventPublisher
from services.jobs.inference import RouterClient
from services.jobs.job_events import emit_outcome
from services.jobs.job_records import JobStore
from services.jobs.longrun_client import TRANSIENT_CODES
from services.jobs.worker import MAX_DELIVER, Later

log = structlog.get_logger()
_TRIES = 4


class ChatJobs:
    def __init__(self, store: JobStore, router: RouterClient, blobs: BlobStore, events: EventPublisher,
                 retry_s: float) -> None:
        self._store = store
        self._router = router
        self._blobs = blobs
        self._events = events
        self._retry_s = retry_s

    async def run(self, data: bytes) -> Later | None:
        work = jobs_bus.decode_job_work(data)
        for _ in range(_TRIES):
            found = await self._store.get(work.account_id, work.job_id)
            if found is None:
                return None
            if found.record.status in http.TERMINAL:
                await emit_outcome(self._events, found.record)  # again, if a replica died before it could
                return None
            # Claimed at its revision: a cancel that won is seen here, and one that comes later is refused.
            record = msgspec.structs.replace(found.record, status="processing", attempts=found.record.attempts + 1)
            claimed = await self._store.put(found, record)
            if claimed is None:
                continue
            outcome = await self._router.chat(record.principal, record.model, record.body, record.tag,
                                              traceparent=record.traceparent, request_id=record.id)
            if outcome.status == 200:
                done = msgspec.structs.replace(record, status="completed", progress=100.0,
                                               result=_completion(outcome.body), completed_at=int(time.time()),
                                               outputs=[await self._keep(record, outcome.body)])
                _meter(done, outcome.meta)
                if await self._store.put(claimed, done) is not None:
                    await emit_outcome(self._events, done)
                return None
            # A worker's run is delivered at most MAX_DELIVER times, Later included: retry within that.
            if outcome.status in TRANSIENT_CODES and record.attempts < MAX_DELIVER:
                log.warning("chat_job_retry", job_id=record.id, status=outcome.status, error=outcome.error)
                return Later(self._retry_s * 2 ** record.attempts)
            failed = msgspec.structs.replace(record, status="failed", completed_at=int(time.time()),
                                             error=http.JobError(outcome.error or f"HTTP {outcome.status}",
                                                                 outcome.error_type or errors.PROVIDER_ERROR))
            _meter(failed, outcome.meta)
            if await self._store.put(claimed, failed) is not None:
                await emit_outcome(self._events, failed)
            return None
        return Later(self._retry_s)

    async def give_up(self, data: bytes, why: str) -> None:
        work = jobs_bus.decode_job_work(data)

        def fail(record: http.JobRecord) -> http.JobRecord | None:
            if record.status in http.TERMINAL:
                return None
            record.status, record.completed_at = "failed", int(time.time())
            record.error = http.JobError(f"The chat job {why}.", errors.INTERNAL)
            return record

        written = await self._store.change(work.account_id, work.job_id, fail)
        if written is not None and written.record.status == "failed":
            await emit_outcome(self._events, written.record)

    async def _keep(self, record: http.JobRecord, body: bytes) -> JobOutput:
        name = files.job_object_name(record.account_id, record.id, http.RESULT_JSON)
        info = await self._blobs.put_bytes(name, body, "application/json")
        return JobOutput(http.RESULT_JSON, "application/json", info.size, name)


def _meter(record: http.JobRecord, meta: DispatchMeta | None) -> None:
    if meta is None:
        return
    if meta.cost is not None:
        record.cost_micros = meta.cost.total_micros
    if meta.usage is not None:
        record.input_units, record.output_units = meta.usage.input_units, meta.usage.output_units
    record.model = meta.model or record.model


def _completion(body: bytes) -> dict[str, object] | None:
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None
