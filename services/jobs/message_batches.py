"""The jobs service's answers about Anthropic Message Batches: create, list, get, cancel,
results, delete. A Message Batch is a batch of `/v1/messages` lines (its requests are
stored as an input file in OpenAI's line format) run by the same machinery; only its
view (MessageBatch) and its results (one JSONL object) differ.
"""

import secrets

import msgspec
from nats.js import JetStreamContext

from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus.inference import Failure, Reply
from libs.contracts.files import job_object_name
from libs.contracts.http import batches as http
from libs.contracts.http import message_batches as anthropic
from libs.runtime.blobs import BlobStore
from services.jobs.batch_api import bad, cancel, new_record, not_found, page, submit, visible
from services.jobs.batch_output import JSONL
from services.jobs.batch_store import BatchStore, LineStore

INPUT_FILENAME = "input.jsonl"


def message_batch(record: http.BatchRecord) -> anthropic.MessageBatch:
    batch, counts = record.batch, record.counts
    if batch.status in http.TERMINAL:
        status = "ended"
    elif batch.status == "cancelling":
        status = "canceling"
    else:
        status = "in_progress"
    total = batch.request_counts.total
    ended_at = batch.completed_at or batch.cancelled_at or batch.expired_at or batch.failed_at
    return anthropic.MessageBatch(
        id=batch.id, processing_status=status,  # type: ignore[arg-type]
        request_counts=anthropic.MessageBatchCounts(
            processing=0 if status == "ended" else max(total - counts.done, 0), succeeded=counts.succeeded,
            errored=counts.errored, canceled=counts.canceled, expired=counts.expired),
        created_at=anthropic.rfc3339(batch.created_at) or "", expires_at=anthropic.rfc3339(batch.expires_at) or "",
        ended_at=anthropic.rfc3339(ended_at) if status == "ended" else None,
        cancel_initiated_at=anthropic.rfc3339(batch.cancelling_at),
        # Relative: the edge makes it absolute with the origin the client called.
        results_url=f"/v1/messages/batches/{batch.id}/results" if record.results_object else None)


def check(spec: anthropic.MessageBatchCreate) -> Failure | None:
    seen: set[str] = set()
    for index, item in enumerate(spec.requests):
        param = f"requests[{index}]"
        if anthropic.CUSTOM_ID.fullmatch(item.custom_id) is None:
            return bad(f"{param}.custom_id must be 1 to 64 letters, digits, '_' or '-'.", f"{param}.custom_id")
        if item.custom_id in seen:
            return bad(f"{param}.custom_id '{item.custom_id}' is used by another request.", f"{param}.custom_id")
        seen.add(item.custom_id)
        model = item.params.get("model")
        if not isinstance(model, str) or not model:
            return bad(f"{param}.params.model must be a non-empty string.", f"{param}.params.model")
    return None


def input_lines(spec: anthropic.MessageBatchCreate) -> bytes:
    return b"".join(msgspec.json.encode({"custom_id": item.custom_id, "method": "POST",
                                         "url": http.MESSAGES_ENDPOINT, "body": item.params}) + b"\n"
                    for item in spec.requests)


class MessageBatches:
    def __init__(self, js: JetStreamContext, store: BatchStore, lines: LineStore, blobs: BlobStore) -> None:
        self._js = js
        self._store = store
        self._lines = lines
        self._blobs = blobs

    async def create(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        spec = anthropic.decode_create(request.body)
        problem = check(spec)
        if problem is not None:
            return problem
        batch_id = f"{anthropic.MESSAGE_BATCH_ID_PREFIX}{secrets.token_hex(12)}"
        name = job_object_name(request.principal.account_id, batch_id, INPUT_FILENAME)
        await self._blobs.put_bytes(name, input_lines(spec), JSONL)
        record = new_record(request, batch_id, http.MESSAGES_ENDPOINT, "", name, "anthropic")
        record.batch.request_counts.total = record.batch.request_counts.processing = len(spec.requests)
        await submit(self._js, self._store, record)
        return Reply(200, anthropic.encode(message_batch(record)))

    async def _mine(self, request: jobs_bus.JobsRequest) -> http.BatchRecord | None:
        record = await self._store.get(request.principal.account_id, request.target_id or "")
        if record is None or record.surface != "anthropic" or not visible(record, request.principal):
            return None
        return record

    async def list(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        query = http.decode_query(request.body or b"{}")
        records = [r for r in await self._store.list(request.principal.account_id)
                   if r.surface == "anthropic" and visible(r, request.principal)]
        found, more = page(records, query)
        data = [message_batch(r) for r in found]
        return Reply(200, anthropic.encode(anthropic.MessageBatchList(
            data=data, has_more=more, first_id=data[0].id if data else None, last_id=data[-1].id if data else None)))

    async def get(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        record = await self._mine(request)
        if record is None:
            return not_found("message batch", request.target_id)
        return Reply(200, anthropic.encode(message_batch(record)))

    async def cancel(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        record = await self._mine(request)
        current = await cancel(self._store, record) if record is not None else None
        if current is None:
            return not_found("message batch", request.target_id)
        return Reply(200, anthropic.encode(message_batch(current)))  # an ended batch answers as it is

    async def results(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        record = await self._mine(request)
        if record is None:
            return not_found("message batch", request.target_id)
        if record.results_object is None:
            return bad(f"Message batch {record.batch.id} has not ended yet; its results are not ready.")
        return Reply(200, anthropic.encode(anthropic.ResultsLocation(object_name=record.results_object)))

    async def delete(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        record = await self._mine(request)
        if record is None:
            return not_found("message batch", request.target_id)
        if record.batch.status not in http.TERMINAL:
            return bad(f"Message batch {record.batch.id} is still processing; cancel it and wait for it to end "
                       "before deleting it.")
        await self._store.delete(record.account_id, record.batch.id)
        for name in (record.input_object, record.results_object):
            if name:
                await self._blobs.delete(name)
        await self._lines.purge(record.batch.id)
        return Reply(200, anthropic.encode(anthropic.DeletedMessageBatch(id=record.batch.id)))
