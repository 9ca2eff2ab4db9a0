"""The bodies the webhooks service delivers, one Struct per event type: the contract's
WebhookEvent (`id`, `type`, `occurred_at`, `data`, bus/events.py WebhookPayload) with the
`data` each publisher sends. The OpenAPI document's `webhooks` are built from these.

Publishers build `data` as dicts (ledger, jobs, webhooks services); the field names here
are theirs: services/ledger/{accounts,spend,leases,budgets,wallets,daily}.py,
services/jobs/{job_events,batches}.py, services/webhooks/api.py.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal

import msgspec

from libs.contracts.bus import events
from libs.contracts.http.batches import Batch
from libs.contracts.http.jobs import Job
from libs.contracts.http.message_batches import MessageBatch


class BalanceData(msgspec.Struct):
    balance_cents: float
    low_balance_cents: int


class BudgetThresholdData(msgspec.Struct):
    budget_id: str
    tag: str
    threshold_percent: int
    month: str  # YYYY-MM
    spent_cents: float
    cap_cents: int


class TagSpend(msgspec.Struct):
    tag: str | None
    cost_cents: float
    requests: int


class DailySummaryData(msgspec.Struct):
    date: str  # YYYY-MM-DD, UTC
    requests: int
    errors: int
    input_units: int
    output_units: int
    cost_cents: float
    top_tags: list[TagSpend]


class SubAccountCreatedData(msgspec.Struct):
    sub_account_id: str
    name: str
    external_ref: str | None
    spend_cap_cents: int


class SpendExceededData(msgspec.Struct):
    sub_account_id: str
    month: str
    spent_cents: float
    spend_cap_cents: int


class SubAccountKeyRotated(msgspec.Struct):
    """A sub-account's key was rotated (POST /v1/sub-accounts/{id}/rotate-key)."""

    sub_account_id: str
    key_id: str


class WebhookSecretRotated(msgspec.Struct):
    """The account's webhook signing secret was rotated (POST /v1/webhook-secret/rotate)."""

    kind: Literal["webhook_secret"]
    created_at: int
    previous_expires_at: int | None


class JobCompletedEvent(msgspec.Struct):
    id: str
    type: Literal["job.completed"]
    occurred_at: int
    data: Job


class JobFailedEvent(msgspec.Struct):
    id: str
    type: Literal["job.failed"]
    occurred_at: int
    data: Job


class BatchCompletedEvent(msgspec.Struct):
    """Any terminal state of a batch made with POST /v1/batches."""

    id: str
    type: Literal["batch.completed"]
    occurred_at: int
    data: Batch


class MessageBatchEndedEvent(msgspec.Struct):
    """batch.completed for a batch made with POST /v1/messages/batches: `data` is its MessageBatch."""

    id: str
    type: Literal["batch.completed"]
    occurred_at: int
    data: MessageBatch


class BalanceLowEvent(msgspec.Struct):
    id: str
    type: Literal["balance.low"]
    occurred_at: int
    data: BalanceData


class BalanceExhaustedEvent(msgspec.Struct):
    id: str
    type: Literal["balance.exhausted"]
    occurred_at: int
    data: BalanceData


class UsageThresholdEvent(msgspec.Struct):
    id: str
    type: Literal["usage.threshold.exceeded"]
    occurred_at: int
    data: BudgetThresholdData


class UsageDailySummaryEvent(msgspec.Struct):
    id: str
    type: Literal["usage.daily.summary"]
    occurred_at: int
    data: DailySummaryData


class SubAccountCreatedEvent(msgspec.Struct):
    id: str
    type: Literal["subaccount.created"]
    occurred_at: int
    data: SubAccountCreatedData


class SpendExceededEvent(msgspec.Struct):
    id: str
    type: Literal["subaccount.spend.exceeded"]
    occurred_at: int
    data: SpendExceededData


class KeyRotatedEvent(msgspec.Struct):
    id: str
    type: Literal["key.rotated"]
    occurred_at: int
    data: SubAccountKeyRotated


class SecretRotatedEvent(msgspec.Struct):
    """key.rotated for the webhook signing secret."""

    id: str
    type: Literal["key.rotated"]
    occurred_at: int
    data: WebhookSecretRotated


# Event type -> the bodies delivered for it. model.added / model.deprecated are in the contract's
# vocabulary (events.EVENT_TYPES) but no service publishes them yet, so nothing is delivered for them.
DELIVERED: Final[Mapping[str, tuple[type[msgspec.Struct], ...]]] = MappingProxyType({
    events.JOB_COMPLETED: (JobCompletedEvent,),
    events.JOB_FAILED: (JobFailedEvent,),
    events.BATCH_COMPLETED: (BatchCompletedEvent, MessageBatchEndedEvent),
    events.BALANCE_LOW: (BalanceLowEvent,),
    events.BALANCE_EXHAUSTED: (BalanceExhaustedEvent,),
    events.USAGE_THRESHOLD_EXCEEDED: (UsageThresholdEvent,),
    events.USAGE_DAILY_SUMMARY: (UsageDailySummaryEvent,),
    events.SUBACCOUNT_CREATED: (SubAccountCreatedEvent,),
    events.SUBACCOUNT_SPEND_EXCEEDED: (SpendExceededEvent,),
    events.KEY_ROTATED: (KeyRotatedEvent, SecretRotatedEvent),
})
NOT_PUBLISHED: Final = tuple(t for t in events.EVENT_TYPES if t not in DELIVERED)
