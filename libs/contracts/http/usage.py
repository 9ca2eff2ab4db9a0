"""Public bodies of GET /v1/generations and the /v1/usage/* reports."""

import msgspec

from libs.contracts.bus.usage import UsageEvent
from libs.contracts.http.meta import MetaCost, MetaUsage
from libs.contracts.money import cents


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


def generation_of(event: UsageEvent) -> Generation:
    """The public view of one finished request (GET /v1/generations, GET /v1/requests/tail)."""
    return Generation(
        id=event.request_id, created=event.ts_ms / 1000, operation=event.operation,
        requested_model=event.requested_model, model=event.model, provider=event.provider, status=event.status,
        error_type=event.error_type, stream=event.stream, cache_hit=event.cache_hit, tag=event.tag,
        sub_account_id=event.subaccount_id,
        usage=MetaUsage(event.input_units, event.output_units, event.cached_units),
        cost=MetaCost(priced=event.priced, input_micros=event.input_cost_micros,
                      output_micros=event.output_cost_micros, cached_micros=event.cached_cost_micros,
                      markup_micros=event.markup_micros, total_micros=event.cost_micros,
                      total_cents=cents(event.cost_micros)),
        timing=GenerationTiming(event.upstream_latency_ms, event.total_latency_ms),
    )


class GenerationList(msgspec.Struct):
    """GET /v1/usage/recent: the newest requests first, each with its cost."""

    data: list[Generation]
    object: str = "list"
