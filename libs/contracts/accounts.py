"""Account state kept in NATS KV: sub-accounts and their month-to-date spend.

Every replica of every service reads these through a KV mirror
(libs/runtime/kv_mirror.py); writes go through the ledger and use the KV
revision for optimistic concurrency.
"""

import msgspec


class SubAccountRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    account_id: str
    name: str
    spend_cap_cents: int
    external_ref: str | None = None
    rate_limit_rpm: int | None = None
    rate_limit_tpm: int | None = None
    default_tag: str | None = None
    metadata: dict[str, str] = {}
    created_at: int = 0
    key_id: str | None = None  # the sub-account's current key


class SpendStatus(msgspec.Struct, kw_only=True):
    """Month-to-date spend of one sub-account, published by the ledger, enforced by the edge."""

    subaccount_id: str
    month: str  # YYYY-MM (UTC) the figures belong to
    spent_micros: int
    cap_micros: int
    exceeded: bool


encode = msgspec.json.Encoder().encode
decode_subaccount = msgspec.json.Decoder(SubAccountRecord).decode
decode_spend = msgspec.json.Decoder(SpendStatus).decode
