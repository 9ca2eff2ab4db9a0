"""Lifecycle events on the JetStream stream EVENTS, for the webhooks service.

The payload is the contract's WebhookEvent (id, type, occurred_at, data) plus
who it belongs to and, for a job's own events, the job's `webhook_url`; the
webhooks service delivers `{id, type, occurred_at, data}` exactly.

Publishers: the ledger (balance.*, usage.*, subaccount.*), the jobs service
(job.*, batch.*), the webhooks service (key.rotated), the router (model.*).
Subject: `sb.events.<type>`; the JetStream message id is the event id, so an
event published twice is stored once.
"""

from typing import Any, Final

import msgspec

SUBACCOUNT_CREATED: Final = "subaccount.created"
SUBACCOUNT_SPEND_EXCEEDED: Final = "subaccount.spend.exceeded"
KEY_ROTATED: Final = "key.rotated"
USAGE_THRESHOLD_EXCEEDED: Final = "usage.threshold.exceeded"
USAGE_DAILY_SUMMARY: Final = "usage.daily.summary"
BALANCE_LOW: Final = "balance.low"
BALANCE_EXHAUSTED: Final = "balance.exhausted"
JOB_COMPLETED: Final = "job.completed"
JOB_FAILED: Final = "job.failed"
BATCH_COMPLETED: Final = "batch.completed"  # any terminal batch state: completed, failed, expired, cancelled
MODEL_ADDED: Final = "model.added"
MODEL_DEPRECATED: Final = "model.deprecated"
EVENT_TYPES: Final = (JOB_COMPLETED, JOB_FAILED, BALANCE_LOW, BALANCE_EXHAUSTED, USAGE_THRESHOLD_EXCEEDED,
                      USAGE_DAILY_SUMMARY, SUBACCOUNT_CREATED, SUBACCOUNT_SPEND_EXCEEDED, MODEL_ADDED,
                      MODEL_DEPRECATED, KEY_ROTATED, BATCH_COMPLETED)


class Event(msgspec.Struct, kw_only=True):
    id: str  # evt_...; also the JetStream message id, so a re-published event is stored once
    type: str
    occurred_at: int  # unix seconds
    account_id: str
    data: dict[str, Any]
    subaccount_id: str | None = None
    # A job's (or batch's) own callback: delivered there in addition to the account's endpoints.
    webhook_url: str | None = None
    job_id: str | None = None  # the job whose webhook_delivered this delivery decides
    traceparent: str | None = None  # the trace of the request that caused it: deliveries continue it


class WebhookPayload(msgspec.Struct):
    """What a receiver gets: the contract's WebhookEvent."""

    id: str
    type: str
    occurred_at: int
    data: dict[str, Any]


encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder(Event).decode
