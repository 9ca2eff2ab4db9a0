"""Public bodies of GET /v1/generations and the /v1/usage/* reports."""

import msgspec

from libs.contracts.http.meta import MetaCost, MetaUsage


class GenerationTiming(msgspec.Struct):
    upstream_latency_ms: float
    total_latency_ms: float


class Generation(msgspec.Struct):
    id: str
    created: float  # unix seconds
    operation: str
    requested_model: str
    model: str
    provider: str
    status: int
    error_type: str | None
    stream: bool
    cache_hit: bool
    tag: str | None
    sub_account_id: str | None
    usage: MetaUsage
    cost: MetaCost
    timing: GenerationTiming
    object: str = "generation"


class UsageRow(msgspec.Struct):
    group: str | None
    bucket_start: str | None  # ISO 8601 UTC, when the report is bucketed
    requests: int
    errors: int
    input_units: int
    output_units: int
    cost_micros: int
    cost_cents: float
    p50_latency_ms: float
    p95_latency_ms: float


class UsageTotals(msgspec.Struct):
    requests: int
    errors: int
    input_units: int
    output_units: int
    cost_micros: int
    cost_cents: float


class UsageReport(msgspec.Struct):
    group_by: str
    start: str  # ISO 8601 UTC, inclusive
    end: str  # exclusive
    bucket: str | None
    data: list[UsageRow]
    total: UsageTotals
    object: str = "usage_report"
