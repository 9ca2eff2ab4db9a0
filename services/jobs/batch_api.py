"""The jobs service's answers about OpenAI batches: create, list, get, cancel.

Creating a batch checks the input file is the caller's own with purpose `batch`,
records the batch (validating) and queues its run; the lines are validated by the run,
so a 200 MB file never holds up the create call.
"""

import secrets
import time

from nats.js import JetStreamContext

from libs.contracts import errors, subjects
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus.inference import Failure, Principal, Reply
from libs.contracts.errors import ErrorBody
from libs.contracts.http import batches as http
from libs.runtime.env import env_int
from libs.runtime.files import FileStore
from services.jobs.batch_store import BatchStore


def not_found(kind: str, id_: str | None) -> Failure:
    # Another tenant's id reads exactly like an unknown one.
    return Failure(ErrorBody(f"No {kind} with id '{id_}' for this key.", errors.INVALID_REQUEST, 404, "id"))


def bad(message: str, param: str | None = None, status: int = 400) -> Failure:
    return Failure(ErrorBody(message, errors.INVALID_REQUEST, status, param))


def visible(record: http.BatchRecord, principal: Principal) -> bool:
    """A sub-account key sees its own batches; the account's other keys see all of them."""
    return principal.subaccount_id is None or record.subaccount_id == principal.subaccount_id


def window_s() -> int:
    return env_int("SWITCHBOARD_BATCH_WINDOW_S", http.WINDOW_S)


def new_record(request: jobs_bus.JobsRequest, batch_id: str, endpoint: str, input_file_id: str,
               input_object: str, surface: str, metadata: dict[str, str] | None = None,
               output_expires_s: int | None = None) -> http.BatchRecord:
    now = int(time.time())
    principal = request.principal
    batch = http.Batch(id=batch_id, endpoint=endpoint, input_file_id=input_file_id, completion_window="24h",
                       status="validating", created_at=now, expires_at=now + window_s(), metadata=metadata)
    return http.BatchRecord(batch=batch, account_id=principal.account_id, subaccount_id=principal.subaccount_id,
                            key_id=principal.key_id, tag=request.tag, surface=surface,  # type: ignore[arg-type]
                            input_object=input_object, output_expires_s=output_expires_s)


async def submit(js: JetStreamContext, store: BatchStore, record: http.BatchRecord) -> None:
    await store.create(record)
    work = http.BatchWork(record.batch.id, record.account_id)
    # The batch id as message id: a create retried inside the dedup window queues one run.
    await js.publish(subjects.JOBS_WORK_BATCH, http.encode_work(work), headers={"Nats-Msg-Id": record.batch.id})


def page(records: list[http.BatchRecord], query: http.ListQuery) -> tuple[list[http.BatchRecord], bool]:
    """Newest first; `after` / `before` are ids of the previous page's last / first item."""
    ordered = sorted(records, key=lambda r: (-r.batch.created_at, r.batch.id))
    ids = [r.batch.id for r in ordered]
    if query.after is not None:
        ordered = ordered[ids.index(query.after) + 1:] if query.after in ids else []
        return ordered[:query.limit], len(ordered) > query.limit
    if query.before is not None:
        ordered = ordered[:ids.index(query.before)] if query.before in ids else []
        return ordered[-query.limit:], len(ordered) > query.limit
    return ordered[:query.limit], len(ordered) > query.limit


class BatchApi:
    def __init__(self, js: JetStreamContext, store: BatchStore, files: FileStore) -> None:
        self._js = js
        self._store = store
        self._files = files

    async def create(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        spec = http.decode_create(request.body)
        if spec.metadata is not None and len(spec.metadata) > http.MAX_METADATA:
            return bad(f"metadata holds at most {http.MAX_METADATA} pairs.", "metadata")
        source = await self._files.find(request.principal, spec.input_file_id)
        if source is None:
            return Failure(ErrorBody(f"No file with id '{spec.input_file_id}' for this key.",
                                     errors.INVALID_REQUEST, 404, "input_file_id"))
        if source.purpose != "batch":
            return bad(f"File {source.id} has purpose '{source.purpose}'; a batch's input file needs purpose "
                       "'batch'.", "input_file_id")
        record = new_record(request, f"{http.BATCH_ID_PREFIX}{secrets.token_hex(12)}", spec.endpoint, source.id,
                            source.object_name, "openai", spec.metadata,
                            spec.output_expires_after.seconds if spec.output_expires_after else None)
        await submit(self._js, self._store, record)
        return Reply(200, http.encode(record.batch))

    async def _mine(self, request: jobs_bus.JobsRequest) -> http.BatchRecord | None:
        record = await self._store.get(request.principal.account_id, request.target_id or "")
        if record is None or record.surface != "openai" or not visible(record, request.principal):
            return None
        return record

    async def list(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        query = http.decode_query(request.body or b"{}")
        records = [r for r in await self._store.list(request.principal.account_id)
                   if r.surface == "openai" and visible(r, request.principal)]
        found, more = page(records, query)
        data = [r.batch for r in found]
        return Reply(200, http.encode(http.BatchList(data=data, first_id=data[0].id if data else None,
                                                     last_id=data[-1].id if data else None, has_more=more)))

    async def get(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        record = await self._mine(request)
        if record is None:
            return not_found("batch", request.target_id)
        return Reply(200, http.encode(record.batch))

    async def cancel(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        record = await self._mine(request)
        if record is None:
            return not_found("batch", request.target_id)
        current = await cancel(self._store, record)
        if current is None:
            return not_found("batch", request.target_id)
        if current.batch.status not in ("cancelling", "cancelled"):
            return bad(f"Batch {current.batch.id} is {current.batch.status}; only an unfinished batch can be "
                       "cancelled.", status=409)
        return Reply(200, http.encode(current.batch))


async def cancel(store: BatchStore, record: http.BatchRecord) -> http.BatchRecord | None:
    """Ask the runner to stop: status cancelling (it finishes the lines in flight, then cancelled)."""
    def change(r: http.BatchRecord) -> bool:
        if r.batch.status in http.TERMINAL or r.batch.status == "cancelling":
            return False
        r.batch.status, r.batch.cancelling_at = "cancelling", int(time.time())
        return True

    return await store.update(record.account_id, record.batch.id, change)

