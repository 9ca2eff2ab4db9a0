"""job.completed / job.failed on EVENTS, for the webhooks service to deliver (to the
account's endpoints and to the job's own webhook_url).

The event id is derived from the job, so the emission after a redelivered message,
or a replica that died between recording the outcome and emitting it, stores one
event, not two."""

import msgspec

from libs.contracts.bus import events
from libs.contracts.http import jobs as http
from libs.runtime.events import EventPublisher
from services.jobs.job_views import job_view


def event_id(job_id: str, type_: str) -> str:
    # An id safe as a KV key / subject token for the webhooks service: no `.` from the type.
    return f"evt_{job_id}_{type_.replace('.', '_')}"


async def emit_outcome(publisher: EventPublisher, record: http.JobRecord) -> None:
    """The event of a finished job; nothing for a cancelled one (the client asked for it)."""
    if record.status == "completed":
        type_ = events.JOB_COMPLETED
    elif record.status == "failed":
        type_ = events.JOB_FAILED
    else:
        return
    data = msgspec.json.decode(http.encode(job_view(record, record.base_url)))
    await publisher.emit(type_, record.account_id, data, event_id(record.id, type_),
                         subaccount_id=record.subaccount_id, webhook_url=record.webhook_url, job_id=record.id,
                         traceparent=record.traceparent)
