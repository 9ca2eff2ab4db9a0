"""A job record as the client sees it: the contract's Job, OpenAI's Video, and the
cursor lists of either. Result URLs point at the edge that was asked
(`/v1/files/jobs/{id}/{filename}`); webhook_delivered comes from the webhooks
service's outcome in KV `sb_webhook_status`."""

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from libs.contracts.bus import longrun
from libs.contracts.bus import webhooks as webhooks_bus
from libs.contracts.http import jobs as http
from libs.contracts.money import cents
from libs.runtime.files import retention_s

_VIDEO_STATUS = {"queued": "queued", "processing": "in_progress", "completed": "completed",
                 "failed": "failed", "cancelled": "failed"}  # OpenAI's Video has no "cancelled"
_decode_video_body = msgspec.json.Decoder(http.VideoCreate).decode
_decode_job_body = msgspec.json.Decoder(http.AsyncJobRequest).decode


def file_url(base_url: str, job_id: str, filename: str) -> str:
    return f"{base_url.rstrip('/')}/files/jobs/{job_id}/{filename}"


def visible(record: http.JobRecord, subaccount_id: str | None) -> bool:
    # A sub-account key sees its own jobs only; the account's other keys see all of them.
    return subaccount_id is None or record.subaccount_id == subaccount_id


def result_url(record: http.JobRecord, base_url: str) -> str | None:
    if record.status != "completed":
        return None
    if record.modality == http.MODALITY_CHAT:
        return file_url(base_url, record.id, http.RESULT_JSON)
    return file_url(base_url, record.id, record.outputs[0].filename) if record.outputs else None


def _result(record: http.JobRecord, base_url: str) -> object:
    if record.status != "completed":
        return None
    if record.modality == http.MODALITY_CHAT:
        return record.result
    files = [http.ResultFile(o.filename, file_url(base_url, record.id, o.filename), o.content_type, o.bytes)
             for o in record.outputs]
    return http.GenerationResult(files=files, duration=record.duration_s, cost_micros=record.cost_micros,
                                 cost_cents=cents(record.cost_micros),
                                 usage={"input_units": record.input_units, "output_units": record.output_units})


def job_view(record: http.JobRecord, base_url: str, delivered: bool | None = None) -> http.Job:
    base = base_url or record.base_url
    return http.Job(
        id=record.id, status=record.status, modality=record.modality,
        model=record.handle.model if record.handle is not None else record.model,
        created_at=record.created_at, updated_at=record.updated_at,
        progress=100.0 if record.status == "completed" else record.progress,
        result_url=result_url(record, base), result=_result(record, base), error=record.error,
        attempts=record.attempts, webhook_url=record.webhook_url, webhook_delivered=delivered,
        tag=record.tag, sub_account_id=record.subaccount_id)


def video_view(record: http.JobRecord) -> http.Video:
    seconds, size, prompt = "4", "720x1280", None  # OpenAI's defaults
    try:
        if record.surface == http.SURFACE_VIDEO:
            asked = _decode_video_body(record.body)
            seconds, size, prompt = asked.seconds or seconds, asked.size or size, asked.prompt
        else:
            spec = _decode_job_body(record.body)
            seconds = f"{spec.duration:g}" if spec.duration else seconds
            size, prompt = spec.resolution or size, spec.prompt
    except msgspec.DecodeError:
        pass
    if record.handle is not None and "seconds" in record.handle.extra:
        seconds = record.handle.extra["seconds"]  # what the router asked the provider for
    error = record.error
    if record.status == "cancelled" and error is None:
        error = http.JobError("The job was cancelled.", "cancelled")
    return http.Video(
        id=record.id, status=_VIDEO_STATUS[record.status],  # type: ignore[arg-type]
        progress=100 if record.status == "completed" else int(record.progress or 0),
        model=record.handle.model if record.handle is not None else (record.model or "auto"),
        prompt=prompt, seconds=seconds, size=size, created_at=record.created_at, completed_at=record.completed_at,
        expires_at=record.completed_at + retention_s() if record.completed_at is not None else None, error=error)


async def delivered(statuses: KeyValue, record: http.JobRecord) -> bool | None:
    """Whether the job's own webhook_url got its event; None while pending or without one."""
    if record.webhook_url is None or record.status not in http.TERMINAL:
        return None
    try:
        entry = await statuses.get(f"{record.account_id}.{record.id}")
    except KeyNotFoundError:
        return None
    if not entry.value:
        return None
    try:
        return webhooks_bus.decode_status(entry.value).delivered
    except msgspec.DecodeError:
        return None


def page(records: list[http.JobRecord], query: http.JobQuery) -> tuple[list[http.JobRecord], bool]:
    """One cursor page: newest first by default, `after` = the last id of the previous page."""
    ordered = sorted(records, key=lambda r: (r.created_at, r.id), reverse=query.order == "desc")
    if query.after is not None:
        ids = [r.id for r in ordered]
        ordered = ordered[ids.index(query.after) + 1:] if query.after in ids else []
    limit = max(1, min(query.limit, http.MAX_LIST))
    return ordered[:limit], len(ordered) > limit


def is_generation(modality: str) -> bool:
    return modality in longrun.MODALITIES
