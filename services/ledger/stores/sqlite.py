"""Embedded usage store on SQLite (aiosqlite), the default when no ClickHouse URL is configured.

Twin: services/ledger/stores/clickhouse.py holds the same queries, under the same
names, in ClickHouse SQL. Change one, change the other; the tests run both on
the same data and require identical answers.
"""

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from libs.contracts.bus.ledger import RecentQuery
from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import ReportQuery, ReportRow, UsageEvent
from services.ledger.stores.base import (
    SpendBy,
    day_start_sql,
    first_whole_day,
    recent_params,
    report_params,
    spend_params,
    spend_totals,
    to_event,
    to_report_rows,
    to_snapshot,
)

COLUMNS: tuple[str, ...] = UsageEvent.__struct_fields__
SNAPSHOT_COLUMNS: tuple[str, ...] = Snapshot.__struct_fields__

# The running spend aggregate (base.py): one row per (account, grouping, key, UTC day).
# A NULL key (no sub-account, untagged) is a key like any other, but NULLs are distinct
# in a UNIQUE index, so the index keys on (key IS NULL, ifnull(key, '')) instead: NULL
# and '' stay apart, and each has one row. ClickHouse: SPEND_DAILY in clickhouse.py.
SPEND_DAILY = """
CREATE TABLE IF NOT EXISTS spend_daily (
    account_id TEXT NOT NULL,
    spend_by TEXT NOT NULL,
    spend_key TEXT,
    day_ms INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL
)
"""
_SPEND_DAILY_KEY = "account_id, spend_by, day_ms, spend_key IS NULL, ifnull(spend_key, '')"
SPEND_DAILY_INDEX = f"CREATE UNIQUE INDEX IF NOT EXISTS spend_daily_key ON spend_daily ({_SPEND_DAILY_KEY})"

# Existing rows, summed once when the step that creates the aggregate runs (inside
# open()'s IMMEDIATE transaction, so no insert falls between it and the trigger).
SPEND_DAILY_BACKFILL = f"""
INSERT INTO spend_daily (account_id, spend_by, spend_key, day_ms, cost_micros)
SELECT account_id, spend_by, spend_key, day_ms, SUM(cost_micros)
FROM (
    SELECT account_id, 'subaccount' AS spend_by, subaccount_id AS spend_key, {day_start_sql("ts_ms")} AS day_ms,
           cost_micros
    FROM usage_events WHERE cost_micros <> 0
    UNION ALL
    SELECT account_id, 'tag', tag, {day_start_sql("ts_ms")}, cost_micros
    FROM usage_events WHERE cost_micros <> 0
)
GROUP BY account_id, spend_by, spend_key, day_ms
"""

# Fed in the insert's own transaction. INSERT OR IGNORE fires AFTER INSERT only for rows
# it really inserts, so a redelivered event (ignored by the primary key) adds nothing.
SPEND_DAILY_FEED = f"""
CREATE TRIGGER IF NOT EXISTS spend_daily_feed AFTER INSERT ON usage_events
WHEN NEW.cost_micros <> 0
BEGIN
    INSERT INTO spend_daily (account_id, spend_by, spend_key, day_ms, cost_micros)
    VALUES (NEW.account_id, 'subaccount', NEW.subaccount_id, {day_start_sql("NEW.ts_ms")}, NEW.cost_micros),
           (NEW.account_id, 'tag', NEW.tag, {day_start_sql("NEW.ts_ms")}, NEW.cost_micros)
    ON CONFLICT ({_SPEND_DAILY_KEY}) DO UPDATE SET cost_micros = cost_micros + excluded.cost_micros;
END
"""

# Migration steps, applied in order once each and tracked by PRAGMA user_version.
# A released step is never edited: a schema change is a new step appended here.
SCHEMA: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE IF NOT EXISTS usage_events (
            request_id TEXT PRIMARY KEY,
            ts_ms INTEGER NOT NULL,
            account_id TEXT NOT NULL,
            key_id TEXT NOT NULL,
            subaccount_id TEXT,
            tag TEXT,
            operation TEXT NOT NULL,
            requested_model TEXT NOT NULL,
            model TEXT NOT NULL,
            provider TEXT NOT NULL,
            status INTEGER NOT NULL,
            error_type TEXT,
            stream INTEGER NOT NULL,
            cache_hit INTEGER NOT NULL,
            priced INTEGER NOT NULL,
            input_units INTEGER NOT NULL,
            output_units INTEGER NOT NULL,
            cached_units INTEGER NOT NULL,
            input_cost_micros INTEGER NOT NULL,
            output_cost_micros INTEGER NOT NULL,
            cached_cost_micros INTEGER NOT NULL,
            markup_micros INTEGER NOT NULL,
            cost_micros INTEGER NOT NULL,
            upstream_latency_ms REAL NOT NULL,
            total_latency_ms REAL NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS usage_events_account_ts ON usage_events (account_id, ts_ms)",
        "CREATE INDEX IF NOT EXISTS usage_events_account_sub_ts ON usage_events (account_id, subaccount_id, ts_ms)",
    ),
    (
        # A rowid table, not WITHOUT ROWID: rows carry bodies up to MAX_SNAPSHOT_BYTES,
        # which SQLite advises against in a clustered index.
        """
        CREATE TABLE IF NOT EXISTS snapshots (
            request_id TEXT PRIMARY KEY,
            ts_ms INTEGER NOT NULL,
            account_id TEXT NOT NULL,
            subaccount_id TEXT,
            operation TEXT NOT NULL,
            model TEXT NOT NULL,
            request_body BLOB NOT NULL,
            response_body BLOB NOT NULL,
            streamed INTEGER NOT NULL,
            truncated INTEGER NOT NULL
        )
        """,
        # Retention deletes by age across every account.
        "CREATE INDEX IF NOT EXISTS snapshots_ts ON snapshots (ts_ms)",
    ),
    (SPEND_DAILY, SPEND_DAILY_INDEX, SPEND_DAILY_BACKFILL, SPEND_DAILY_FEED),
)

# The primary key is the dedup: a replayed event is ignored, not an error.
# A batch is one multi-row statement: `_insert_rows` appends a "(?, ...)" per row.
INSERT = f"INSERT OR IGNORE INTO usage_events ({', '.join(COLUMNS)}) VALUES "
# Rows per statement: far below SQLite's bound on bound parameters (32,766 in older builds).
_ROWS_PER_STATEMENT = 500

GENERATION = f"""
SELECT {", ".join(COLUMNS)}
FROM usage_events
WHERE request_id = :request_id
  AND account_id = :account_id
  AND (:subaccount_id IS NULL OR subaccount_id = :subaccount_id)
"""

# SQLite has no percentile aggregate, so each row is ranked inside its
# (bucket, group) with window functions and the nearest-rank row is picked
# (see base.py). Bucket starts are UTC: SQLite date functions never apply a
# local zone unless asked to.
REPORT = """
WITH filtered AS (
    SELECT
        CASE :bucket
            WHEN 'hour' THEN (ts_ms / 3600000) * 3600000
            WHEN 'day' THEN (ts_ms / 86400000) * 86400000
            WHEN 'month' THEN CAST(strftime('%s', ts_ms / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000
        END AS bucket_start_ms,
        CASE :group_by
            WHEN 'tag' THEN tag
            WHEN 'subaccount' THEN subaccount_id
            WHEN 'model' THEN model
            WHEN 'provider' THEN provider
        END AS grp,
        status, input_units, output_units, cost_micros, total_latency_ms
    FROM usage_events
    WHERE account_id = :account_id
      AND ts_ms >= :from_ms AND ts_ms < :to_ms
      AND (:subaccount_id IS NULL OR subaccount_id = :subaccount_id)
      AND (:model IS NULL OR model = :model)
      AND (:provider IS NULL OR provider = :provider)
      AND (:tag IS NULL OR tag = :tag)
),
ranked AS (
    SELECT
        *,
        ROW_NUMBER() OVER (PARTITION BY bucket_start_ms, grp ORDER BY total_latency_ms) AS latency_rank,
        COUNT(*) OVER (PARTITION BY bucket_start_ms, grp) AS n
    FROM filtered
)
SELECT
    bucket_start_ms,
    grp,
    COUNT(*) AS request_count,
    SUM(status >= 400) AS error_count,
    SUM(input_units) AS total_input_units,
    SUM(output_units) AS total_output_units,
    SUM(cost_micros) AS total_cost_micros,
    MAX(CASE WHEN latency_rank = (n * 50 + 99) / 100 THEN total_latency_ms END) AS p50,
    MAX(CASE WHEN latency_rank = (n * 95 + 99) / 100 THEN total_latency_ms END) AS p95
FROM ranked
GROUP BY bucket_start_ms, grp
ORDER BY bucket_start_ms ASC NULLS FIRST, grp ASC NULLS FIRST
"""

# The newest requests: the usage_events_account_ts index, read backwards from `to_ms`.
RECENT = f"""
SELECT {", ".join(COLUMNS)}
FROM usage_events
WHERE account_id = :account_id
  AND ts_ms >= :from_ms AND ts_ms < :to_ms
  AND (:subaccount_id IS NULL OR subaccount_id = :subaccount_id)
ORDER BY ts_ms DESC, request_id DESC
LIMIT :limit
"""

# Whole days of spend from the aggregate: reads days x keys rows, not the month's events.
SPEND_DAYS = """
SELECT spend_key, SUM(cost_micros) AS spent
FROM spend_daily
WHERE account_id = :account_id AND spend_by = :by AND day_ms >= :from_ms
GROUP BY spend_key
"""

# The same sums over the usage rows: the aggregate's reference (tests, bench).
SPEND_EVENTS = """
SELECT CASE :by WHEN 'tag' THEN tag ELSE subaccount_id END AS spend_key, SUM(cost_micros) AS spent
FROM usage_events
WHERE account_id = :account_id AND ts_ms >= :from_ms AND ts_ms < :to_ms
GROUP BY spend_key
"""

# Part of a day: the usage_events_account_ts index reads just that time range, so the
# rows themselves serve (ClickHouse reads a time-ordered copy, spend_by_time).
SPEND_PART_DAY = SPEND_EVENTS

# As for usage events, the primary key makes a redelivered snapshot a no-op.
INSERT_SNAPSHOT = f"INSERT OR IGNORE INTO snapshots ({', '.join(SNAPSHOT_COLUMNS)}) VALUES "

SNAPSHOT = f"""
SELECT {", ".join(SNAPSHOT_COLUMNS)}
FROM snapshots
WHERE request_id = :request_id
  AND account_id = :account_id
  AND (:subaccount_id IS NULL OR subaccount_id = :subaccount_id)
"""

PRUNE_SNAPSHOTS = "DELETE FROM snapshots WHERE ts_ms < ?"


def multi_row(head: str, width: int, rows: int) -> str:
    """`head` (an INSERT ... VALUES) with `rows` groups of `width` placeholders."""
    return head + ",".join(["(" + ",".join("?" * width) + ")"] * rows)


class SqliteUsageStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None
        # One connection is shared by every caller; overlapping BEGINs on it would fail.
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        if self._db is not None:
            return
        await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit below, never implicit.
        # The timeout is the busy wait while another process holds the write lock.
        db = await aiosqlite.connect(self._path, timeout=30.0, isolation_level=None)
        try:
            await _enter_wal(db)
            # NORMAL in WAL can lose the last commits on power loss, never corrupt;
            # JetStream redelivers unacked usage, and inserts are idempotent.
            await db.execute("PRAGMA synchronous=NORMAL")
            # IMMEDIATE takes the write lock before reading user_version, so two
            # processes starting together apply each step exactly once.
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute("PRAGMA user_version") as cur:
                    row = await cur.fetchone()
                version = int(row[0]) if row else 0
                for step in SCHEMA[version:]:
                    for statement in step:
                        await db.execute(statement)
                if version < len(SCHEMA):
                    await db.execute(f"PRAGMA user_version = {len(SCHEMA)}")
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteUsageStore is not open")
        return self._db

    async def _write(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Runs `sql` once per row in one transaction (one WAL commit, not one per row); returns rows changed."""
        db = self._conn()
        async with self._write_lock:
            await db.execute("BEGIN")
            try:
                async with db.executemany(sql, rows) as cur:
                    changed = cur.rowcount  # ignored duplicates do not count
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        return max(changed, 0)

    async def _insert_rows(self, head: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Multi-row INSERTs, each atomic on its own (autocommit): one trip to aiosqlite's thread per
        chunk, where BEGIN, executemany, its cursor's close and COMMIT took four. Returns rows added."""
        if not rows:
            return 0
        db = self._conn()
        changed = 0
        async with self._write_lock:  # never inside another caller's BEGIN on this shared connection
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                chunk = rows[start:start + _ROWS_PER_STATEMENT]
                cursor = await db.execute(multi_row(head, len(rows[0]), len(chunk)),
                                          [value for row in chunk for value in row])
                changed += max(cursor.rowcount, 0)  # ignored duplicates do not count
        return changed

    async def insert(self, events: list[UsageEvent]) -> int:
        return await self._insert_rows(INSERT, [msgspec.structs.astuple(event) for event in events])

    async def generation(self, account_id: str, request_id: str, subaccount_id: str | None) -> UsageEvent | None:
        params = {"account_id": account_id, "request_id": request_id, "subaccount_id": subaccount_id}
        async with self._conn().execute(GENERATION, params) as cur:
            row = await cur.fetchone()
        return None if row is None else to_event(COLUMNS, row)

    async def report(self, query: ReportQuery) -> list[ReportRow]:
        async with self._conn().execute(REPORT, report_params(query)) as cur:
            rows = await cur.fetchall()
        return to_report_rows(rows)

    async def recent(self, query: RecentQuery) -> list[UsageEvent]:
        return [to_event(COLUMNS, row) for row in await self._rows(RECENT, recent_params(query))]

    async def _rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        async with self._conn().execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def spend_since(self, account_id: str, since_ms: int, by: SpendBy) -> dict[str | None, int]:
        day = first_whole_day(since_ms)
        days = await self._rows(SPEND_DAYS, spend_params(account_id, day, day, by))
        if since_ms == day:  # a month start: the aggregate alone
            return spend_totals(days)
        return spend_totals(days, await self._rows(SPEND_PART_DAY, spend_params(account_id, since_ms, day, by)))

    async def spend_from_events(self, account_id: str, from_ms: int, to_ms: int,
                                by: SpendBy) -> dict[str | None, int]:
        return spend_totals(await self._rows(SPEND_EVENTS, spend_params(account_id, from_ms, to_ms, by)))

    async def insert_snapshots(self, snapshots: list[Snapshot]) -> int:
        return await self._insert_rows(INSERT_SNAPSHOT, [msgspec.structs.astuple(snapshot) for snapshot in snapshots])

    async def snapshot(self, account_id: str, request_id: str, subaccount_id: str | None) -> Snapshot | None:
        params = {"account_id": account_id, "request_id": request_id, "subaccount_id": subaccount_id}
        async with self._conn().execute(SNAPSHOT, params) as cur:
            row = await cur.fetchone()
        return None if row is None else to_snapshot(SNAPSHOT_COLUMNS, row)

    async def prune_snapshots(self, before_ms: int) -> None:
        await self._write(PRUNE_SNAPSHOTS, [(before_ms,)])


async def _enter_wal(db: aiosqlite.Connection, attempts: int = 100) -> None:
    """Switch to WAL, waiting out a ledger that is mid-migration: the switch upgrades a shared
    lock, and SQLite refuses such an upgrade at once (no busy wait) while another connection
    holds the write lock."""
    for attempt in range(attempts):
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05)
