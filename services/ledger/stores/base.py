"""The usage store interface, shared by the SQLite and ClickHouse dialects.

Percentiles, in both dialects, are nearest-rank: for n latencies sorted
ascending, the q-th percentile is the value at 1-based rank ceil(q * n / 100).
The rank is computed in integer arithmetic, ``(q * n + 99) // 100``, so neither
dialect's floating point can move it. It is always a latency that really
occurred, never an interpolation.

Spend totals (caps, budgets, wallets) come from running aggregates, not from
the usage rows: each dialect keeps `spend_daily`, one row per (account,
grouping, key, UTC day) holding the day's cost, maintained as rows are
inserted (SQLite: a trigger in the insert's transaction; ClickHouse: a
materialized view into a SummingMergeTree). A month-to-date total then reads
at most 31 rows per key, however many requests the month had. A `since` that
is not a day start (a wallet's first top-up) takes its whole days from the
aggregate and the rest of its first day from the usage rows.
"""

from typing import Any, Literal, Protocol, get_args

import msgspec

from libs.contracts.bus.ledger import RecentQuery
from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import Bucket, GroupBy, ReportQuery, ReportRow, UsageEvent

SpendBy = Literal["subaccount", "tag"]

_GROUP_BYS: frozenset[str] = frozenset(get_args(GroupBy))
_BUCKETS: frozenset[str] = frozenset(get_args(Bucket))
_SPEND_BYS: frozenset[str] = frozenset(get_args(SpendBy))
DAY_MS = 86_400_000


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

    async def recent(self, query: RecentQuery) -> list[UsageEvent]:
        """The newest `limit` requests in [from_ms, to_ms), newest first (ties: request id, descending)."""
        ...

    async def spend_since(self, account_id: str, since_ms: int, by: SpendBy) -> dict[str | None, int]:
        """Cost per sub-account or tag of events at or after `since_ms`, from the running aggregates;
        keys whose total is 0 are left out."""
        ...

    async def spend_from_events(self, account_id: str, from_ms: int, to_ms: int,
                                by: SpendBy) -> dict[str | None, int]:
        """The same totals for [from_ms, to_ms), summed over the usage rows themselves: the part of a
        day the aggregates cannot split, and the reference they must equal (tests, bench)."""
        ...

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


def recent_params(query: RecentQuery) -> dict[str, Any]:
    """The bound parameters of RECENT, in both dialects."""
    return msgspec.structs.asdict(query)


def spend_params(account_id: str, from_ms: int, to_ms: int, by: SpendBy) -> dict[str, Any]:
    """The bound parameters of SPEND_DAYS and SPEND_EVENTS, in both dialects."""
    if by not in _SPEND_BYS:
        raise ValueError(f"unknown spend grouping {by!r}")
    return {"account_id": account_id, "from_ms": from_ms, "to_ms": to_ms, "by": by}


def day_start_sql(ts: str) -> str:
    """SQL for the UTC day start of the unix-ms expression `ts`, the same text in both dialects.

    Both take `%` with the dividend's sign, so this floors negative times too
    (plain `ts - ts % DAY` would move them up a day, past a `since` of 0)."""
    return f"{ts} - ({ts} % {DAY_MS} + {DAY_MS}) % {DAY_MS}"


def first_whole_day(since_ms: int) -> int:
    """The start of the first UTC day that lies wholly at or after `since_ms`."""
    return -(-since_ms // DAY_MS) * DAY_MS


def spend_totals(*parts: Any) -> dict[str | None, int]:
    """(key, cost) rows from one or more queries, added up by key; zero totals are dropped, as
    SummingMergeTree drops all-zero rows when it merges, so both dialects answer alike."""
    totals: dict[str | None, int] = {}
    for rows in parts:
        for key, spent in rows:
            totals[key] = totals.get(key, 0) + int(spent)
    return {key: spent for key, spent in totals.items() if spent}


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
