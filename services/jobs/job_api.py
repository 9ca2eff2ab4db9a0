"""The jobs service's answers to the edge about async jobs: create, get, list, cancel,
and (OpenAI's videos) delete. The edge has authenticated the key, admitted the spend
and rate limit and validated the body; the answer is the public JSON."""

import time
from collections.abc import Awaitable, Callable

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from libs.contracts import errors, subjects
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus import longrun
from libs.contracts.bus.inference import Failure, Reply
from libs.contracts.errors import ErrorBody
from libs.contracts.http import jobs as http
from libs.runtime.blobs import BlobStore
from services.jobs.job_records import JobStore, Versioned
from services.jobs.job_views import delivered, is_generation, job_view, page, video_view, visible
from services.jobs.longrun_client import LongRunClient, StepFailed

log = structlog.get_logger()
Answer = Reply | Failure
_SURFACE_MODALITY = {http.SURFACE_VIDEO: longrun.MODALITY_VIDEO, http.SURFACE_MUSIC: longrun.MODALITY_MUSIC}


def _bad(status: int, message: str, param: str | None = None) -> Failure:
    return Failure(ErrorBody(message, errors.INVALID_REQUEST, status, param))


def _not_found(query: http.JobQuery, id_: str | None) -> Failure:
    # Another tenant's id reads exactly like an unknown one.
    what = "video" if query.surface == http.SURFACE_VIDEO else "job"
    return _bad(404, f"No {what} with id '{id_}' for this key.", "id")


class JobApi:
    def __init__(self, js: JetStreamContext, store: JobStore, statuses: KeyValue, blobs: BlobStore,
                 router: LongRunClient) -> None:
        self._js = js
        self._store = store
        self._statuses = statuses
        self._blobs = blobs
        self._router = router

    @property
    def ops(self) -> dict[str, Callable[[jobs_bus.JobsRequest], Awaitable[Answer]]]:
        return {jobs_bus.OP_JOB_CREATE: self.create, jobs_bus.OP_JOB_GET: self.get, jobs_bus.OP_JOB_LIST: self.list,
                jobs_bus.OP_JOB_CANCEL: self.cancel, jobs_bus.OP_JOB_DELETE: self.delete}

    async def create(self, request: jobs_bus.JobsRequest) -> Answer:
        spec = http.decode_create(request.body)
        if spec.modality not in (*longrun.MODALITIES, http.MODALITY_CHAT) or spec.surface not in http.SURFACES:
            return _bad(400, f"Unknown job modality '{spec.modality}'.", "modality")
        principal = request.principal
        now = int(time.time())
        record = http.JobRecord(
            id=http.new_job_id(), account_id=principal.account_id, subaccount_id=principal.subaccount_id,
            principal=principal, modality=spec.modality, surface=spec.surface, model=spec.model, body=spec.body,
            webhook_url=spec.webhook_url, base_url=spec.base_url, tag=request.tag, traceparent=request.traceparent,
            created_at=now, updated_at=now)
        await self._store.create(record)
        subject = subjects.JOBS_WORK_CHAT if spec.modality == http.MODALITY_CHAT else subjects.JOBS_WORK_GENERATION
        try:
            await self._js.publish(subject, jobs_bus.encode(jobs_bus.JobWork(record.id, record.account_id)),
                                   headers={"Nats-Msg-Id": record.id}, timeout=5)
        except Exception as exc:  # never leave a queued record that no message will drive
            log.error("job_enqueue_failed", job_id=record.id, error=repr(exc))
            found = await self._store.get(record.account_id, record.id)
            if found is not None:
                await self._store.delete(found)
            return Failure(ErrorBody("The job could not be queued; retry shortly.", errors.UNAVAILABLE, 503))
        log.info("job_created", job_id=record.id, modality=record.modality, model=record.model)
        if spec.surface == http.SURFACE_VIDEO:
            return Reply(200, http.encode(video_view(record)))
        return Reply(202, http.encode(http.JobAccepted(record.id)))

    async def _find(self, request: jobs_bus.JobsRequest, query: http.JobQuery) -> Versioned | None:
        found = await self._store.get(request.principal.account_id, request.target_id or "")
        if found is None or not visible(found.record, request.principal.subaccount_id):
            return None
        wanted = _SURFACE_MODALITY.get(query.surface)
        if wanted is not None and found.record.modality != wanted:
            return None  # /v1/videos/{id} of a music job: not a video
        return found

    async def _view(self, record: http.JobRecord, query: http.JobQuery) -> msgspec.Struct:
        if query.surface == http.SURFACE_VIDEO:
            return video_view(record)
        return job_view(record, query.base_url, await delivered(self._statuses, record))

    async def get(self, request: jobs_bus.JobsRequest) -> Answer:
        query = http.decode_query(request.body)
        found = await self._find(request, query)
        if found is None:
            return _not_found(query, request.target_id)
        return Reply(200, http.encode(await self._view(found.record, query)))

    async def list(self, request: jobs_bus.JobsRequest) -> Answer:
        query = http.decode_query(request.body)
        modality = _SURFACE_MODALITY.get(query.surface, query.modality)
        records = [r for r in await self._store.list(request.principal.account_id)
                   if visible(r, request.principal.subaccount_id) and (modality is None or r.modality == modality)]
        chosen, more = page(records, query)
        views = [await self._view(r, query) for r in chosen]
        listed = http.CursorList(data=views, first_id=chosen[0].id if chosen else None,
                                 last_id=chosen[-1].id if chosen else None, has_more=more)
        return Reply(200, http.encode(listed))

    async def cancel(self, request: jobs_bus.JobsRequest) -> Answer:
        query = http.decode_query(request.body)
        found = await self._find(request, query)
        if found is None:
            return _not_found(query, request.target_id)
        cancelled = await self._cancel(found)
        if isinstance(cancelled, Failure):
            return cancelled
        return Reply(200, http.encode(await self._view(cancelled.record, query)))

    async def delete(self, request: jobs_bus.JobsRequest) -> Answer:
        """OpenAI's DELETE /v1/videos/{id}: stop it if it runs, then drop the record and its files."""
        query = http.decode_query(request.body)
        found = await self._find(request, query)
        if found is None:
            return _not_found(query, request.target_id)
        if found.record.status not in http.TERMINAL:
            cancelled = await self._cancel(found)
            if isinstance(cancelled, Failure):
                return cancelled
            found = cancelled
        if not await self._store.delete(found):
            return _bad(409, f"Job '{found.record.id}' changed while being deleted; retry.", "id")
        for output in found.record.outputs:
            await self._blobs.delete(output.object_name)
        return Reply(200, http.encode(http.VideoDeleted(found.record.id)))

    async def _cancel(self, found: Versioned) -> Versioned | Failure:
        """Cancelled at its revision, or why not. A job that is completing (its result being
        fetched, or a chat completion running) cannot be stopped without paying for it: 409."""
        for _ in range(8):
            record = found.record
            if record.status in http.TERMINAL:
                return _bad(409, f"Job '{record.id}' is already {record.status}; there is nothing to cancel.", "id")
            if record.stage == "fetching" or (record.modality == http.MODALITY_CHAT and record.status == "processing"):
                return _bad(409, f"Job '{record.id}' is completing and can no longer be cancelled.", "id")
            now = int(time.time())
            stopped = msgspec.structs.replace(record, status="cancelled", stage="", completed_at=now,
                                              error=http.JobError("The job was cancelled.", "cancelled"))
            written = await self._store.put(found, stopped)
            if written is not None:
                if record.handle is not None and is_generation(record.modality):
                    await self._stop_upstream(record)
                log.info("job_cancelled", job_id=record.id, was=record.status)
                return written
            again = await self._store.get(record.account_id, record.id)
            if again is None:
                return _bad(404, f"No job with id '{record.id}' for this key.", "id")
            found = again
        return _bad(409, f"Job '{found.record.id}' kept changing; retry the cancel.", "id")

    async def _stop_upstream(self, record: http.JobRecord) -> None:
        answer = await self._router.call(longrun.OP_CANCEL, record.id, record.principal, modality=record.modality,
                                         handle=record.handle, tag=record.tag)
        if isinstance(answer, StepFailed):  # the job is cancelled for us either way; it is never fetched
            log.warning("job_cancel_upstream_failed", job_id=record.id, error=answer.error.message)

