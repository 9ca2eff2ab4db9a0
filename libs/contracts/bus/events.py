"""Lifecycle events on the JetStream stream EVENTS, for the webhooks service.

The payload is the contract's WebhookEvent (id, type, occurred_at, data) plus
the account it belongs to; it is JSON because it is delivered as is.
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


class Event(msgspec.Struct, kw_only=True):
    id: str  # evt_...; also the JetStream message id, so a re-published event is stored once
    type: str
    occurred_at: int  # unix seconds
    account_id: str
    data: dict[str, Any]


encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder(Event).decode
