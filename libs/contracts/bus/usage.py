"""Usage events (router -> JetStream USAGE -> ledger) and the ledger's report queries.

Money is integer micro-dollars (1 USD = 1_000_000). An event is published once
per upstream call, success or failure, with the request id as the JetStream
message id so duplicates are dropped by the stream and by the store.
"""

from typing import Literal

import msgspec

from libs.contracts.bus.snapshots import Snapshot


class UsageEvent(msgspec.Struct, kw_only=True):
    request_id: str
    ts_ms: int  # unix milliseconds when the request finished
    account_id: str
    key_id: str
    subaccount_id: str | None = None
    tag: str | None = None
    operation: str  # chat | embeddings | ...
    requested_model: str
    model: str  # the slug that actually served
    provider: str
    status: int  # HTTP status the client got
    error_type: str | None = None
    stream: bool = False
    cache_hit: bool = False
    priced: bool = True
    input_units: int = 0
    output_units: int = 0
    cached_units: int = 0
    input_cost_micros: int = 0
    output_cost_micros: int = 0
    cached_cost_micros: int = 0
    markup_micros: int = 0
    cost_micros: int = 0  # the total charged: the sum of the four lines above
    upstream_latency_ms: float = 0.0
    total_latency_ms: float = 0.0


GroupBy = Literal["tag", "subaccount", "model", "provider", "none"]
Bucket = Literal["hour", "day", "month"]


class ReportQuery(msgspec.Struct, kw_only=True):
    account_id: str
    from_ms: int  # inclusive
    to_ms: int  # exclusive
    group_by: GroupBy = "none"
    bucket: Bucket | None = None
    subaccount_id: str | None = None  # restrict to one sub-account
    model: str | None = None
    provider: str | None = None
    tag: str | None = None


class ReportRow(msgspec.Struct, kw_only=True):
    bucket_start_ms: int | None = None  # set when the query has a bucket
    group: str | None = None  # the tag / sub-account / model / provider; None for group_by "none"
    requests: int
    errors: int  # status >= 400
    input_units: int
    output_units: int
    cost_micros: int
    p50_latency_ms: float
    p95_latency_ms: float


class UsageBatch(msgspec.Struct):
    """What the router publishes: the events of a few milliseconds in one stream message,
    so metering costs one JetStream write per batch rather than per request. The
    message id is derived from the request ids, so a re-published batch is dropped.
    `snapshots` are the request snapshots of the same requests (bus/snapshots.py)."""

    events: list[UsageEvent]
    snapshots: list[Snapshot] = []


encode = msgspec.msgpack.Encoder().encode
decode_event = msgspec.msgpack.Decoder(UsageEvent).decode
_decode_batch = msgspec.msgpack.Decoder(UsageBatch).decode


def decode_batch(payload: bytes) -> UsageBatch:
    """A stream message: a UsageBatch, or a single UsageEvent (also accepted)."""
    try:
        return _decode_batch(payload)
    except msgspec.ValidationError:
        return UsageBatch([decode_event(payload)])
