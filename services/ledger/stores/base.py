"""The usage store interface, shared by the SQLite and ClickHouse dialects.

Percentiles, in both dialects, are nearest-rank: for n latencies sorted
ascending, the q-th percentile is the value at 1-based rank ceil(q * n / 100).
The rank is computed in integer arithmetic, ``(q * n + 99) // 100``, so neither
dialect's floating point can move it. It is always a latency that really
occurred, never an interpolation.
"""

from typing import Any, Literal, Protocol, get_args

import msgspec

from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import Bucket, GroupBy, ReportQuery, ReportRow, UsageEvent

SpendBy = Literal["subaccount", "tag"]

_GROUP_BYS: frozenset[str] = frozenset(get_args(GroupBy))
_BUCKETS: frozenset[str] = frozenset(get_args(Bucket))
_SPEND_BYS: frozenset[str] = frozenset(get_args(SpendBy))


class UsageStore(Protocol):
    async def open(self) -> None:
        """Connect and bring the schema up to date; idempotent, safe from several processes at once."""
        ...

    async def close(self) -> None: ...

    async def insert(self, events: list[UsageEvent]) -> int:
        """Store a batch, idempotent on request_id; returns how many were new where the dialect can tell."""
        ...

    async def generation(self, account_id: str, request_id: str, subaccount_id: str | None) -> UsageEvent | None:
        """One past request, only if it belongs to the account (and to the sub-account, when one is given)."""
        ...

    async def report(self, query: ReportQuery) -> list[ReportRow]: ...

    async def spend_since(self, account_id: str, since_ms: int, by: SpendBy) -> dict[str | None, int]: ...

    async def insert_snapshots(self, snapshots: list[Snapshot]) -> int:
        """Store request snapshots, idempotent on request_id; returns how many were new where the dialect can tell."""
        ...

    async def snapshot(self, account_id: str, request_id: str, subaccount_id: str | None) -> Snapshot | None:
        """One request's snapshot, only if it belongs to the account (and sub-account, when given)."""
        ...

    async def prune_snapshots(self, before_ms: int) -> None:
        """Drop snapshots taken before `before_ms` (retention)."""
        ...


def report_params(query: ReportQuery) -> dict[str, Any]:
    """The bound parameters of the REPORT query: the ReportQuery fields, by name, in both dialects.

    The queries switch on group_by/bucket with CASE, where an unknown value would
    silently mean "none", so a value that bypassed msgspec validation is refused here.
    """
    if query.group_by not in _GROUP_BYS:
        raise ValueError(f"unknown group_by {query.group_by!r}")
    if query.bucket is not None and query.bucket not in _BUCKETS:
        raise ValueError(f"unknown bucket {query.bucket!r}")
    return msgspec.structs.asdict(query)


def spend_params(account_id: str, since_ms: int, by: SpendBy) -> dict[str, Any]:
    if by not in _SPEND_BYS:
        raise ValueError(f"unknown spend grouping {by!r}")
    return {"account_id": account_id, "since_ms": since_ms, "by": by}


def to_report_rows(rows: Any) -> list[ReportRow]:
    # Positional, not by column name: ClickHouse's older analyzer mishandles an
    # alias equal to a column name (sum(cost_micros) AS cost_micros), so the SQL
    # aliases differ from the field names and the SELECT order is the contract.
    return [ReportRow(**dict(zip(ReportRow.__struct_fields__, row, strict=True))) for row in rows]


def to_event(columns: tuple[str, ...], row: Any) -> UsageEvent:
    # strict=False lets SQLite's 0/1 integers become the struct's bools.
    return msgspec.convert(dict(zip(columns, row, strict=True)), UsageEvent, strict=False)


def to_snapshot(columns: tuple[str, ...], row: Any) -> Snapshot:
    # strict=False: SQLite's 0/1 become bools, and ClickHouse's base64 text (its
    # driver would turn non-UTF-8 bytes into hex) becomes the bodies' bytes.
    return msgspec.convert(dict(zip(columns, row, strict=True)), Snapshot, strict=False)
