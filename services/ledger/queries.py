"""The ledger's answers to the edge (one generation, usage reports) and to jobs (a request's snapshot)."""

from datetime import UTC, datetime

import msgspec

from libs.contracts import errors
from libs.contracts.bus import ledger as ledger_bus
from libs.contracts.bus.inference import Failure, Reply
from libs.contracts.bus.ledger import GenerationQuery, RecentQuery, SnapshotAnswer, SnapshotQuery
from libs.contracts.bus.usage import ReportQuery, ReportRow, UsageEvent
from libs.contracts.errors import ErrorBody
from libs.contracts.http.usage import (
    GenerationList,
    UsageReport,
    UsageRow,
    UsageTotals,
    generation_of,
)
from libs.contracts.money import cents
from services.ledger.stores.base import UsageStore

_encode = msgspec.json.Encoder().encode


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def generation_body(event: UsageEvent) -> bytes:
    return _encode(generation_of(event))


async def generation(store: UsageStore, query: GenerationQuery) -> Reply | Failure:
    event = await store.generation(query.account_id, query.request_id, query.subaccount_id)
    if event is None:
        # Another tenant's id looks exactly like an unknown one: no existence leak.
        return Failure(ErrorBody(f"No generation with id '{query.request_id}' for this key. Usage is recorded "
                                 "within a second or two of the response.", errors.INVALID_REQUEST, 404, "id"))
    return Reply(200, generation_body(event))


async def snapshot(store: UsageStore, query: SnapshotQuery) -> Reply | Failure:
    """The snapshot and its usage row, msgpack-encoded: the caller is the jobs service, not a client."""
    found = await store.snapshot(query.account_id, query.request_id, query.subaccount_id)
    if found is None:
        # Another tenant's id looks exactly like an unknown one: no existence leak.
        return Failure(ErrorBody(
            f"No snapshot of request '{query.request_id}' exists for this key. It may not be recorded yet "
            "(a second or two after the response), may be older than the snapshot retention, or snapshots "
            "were turned off for it.", errors.INVALID_REQUEST, 404, "source_request_id"))
    event = await store.generation(query.account_id, query.request_id, query.subaccount_id)
    return Reply(200, ledger_bus.encode(SnapshotAnswer(found, event)), content_type="application/msgpack")


async def recent(store: UsageStore, query: RecentQuery) -> Reply:
    events = await store.recent(query)
    return Reply(200, _encode(GenerationList(data=[generation_of(event) for event in events])))


def _row(row: ReportRow) -> UsageRow:
    return UsageRow(group=row.group, bucket_start=_iso(row.bucket_start_ms) if row.bucket_start_ms is not None
                    else None, requests=row.requests, errors=row.errors, input_units=row.input_units,
                    output_units=row.output_units, cost_micros=row.cost_micros, cost_cents=cents(row.cost_micros),
                    p50_latency_ms=row.p50_latency_ms, p95_latency_ms=row.p95_latency_ms)


async def report(store: UsageStore, query: ReportQuery) -> Reply:
    rows = await store.report(query)
    total = UsageTotals(
        requests=sum(r.requests for r in rows), errors=sum(r.errors for r in rows),
        input_units=sum(r.input_units for r in rows), output_units=sum(r.output_units for r in rows),
        cost_micros=sum(r.cost_micros for r in rows), cost_cents=cents(sum(r.cost_micros for r in rows)))
    body = UsageReport(group_by=query.group_by, start=_iso(query.from_ms), end=_iso(query.to_ms),
                       bucket=query.bucket, data=[_row(r) for r in rows], total=total)
    return Reply(200, _encode(body))
