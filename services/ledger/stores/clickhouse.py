"""Production usage store on ClickHouse (clickhouse-connect).

Twin: services/ledger/stores/sqlite.py holds the same queries, under the same
names, in SQLite SQL. Change one, change the other; the tests run both on the
same data and require identical answers.

Duplicates. The table is a ReplacingMergeTree keyed by (account_id, request_id),
so background merges collapse a replayed event into one row, but only
eventually. Every read says FINAL, which applies that collapse at query time:
it is exact, it keeps each query the same shape as its SQLite twin (argMax per
column or a LIMIT 1 BY subquery would not), and it is cheap here because
duplicates are rare (redeliveries only) and every query pins account_id, the
sort key's prefix. Inserts also carry an insert_deduplication_token made from
the batch's request ids, so a retried batch is dropped whole by the server
before it ever becomes a part to merge.

The spend aggregate (base.py) is a SummingMergeTree fed by a materialized view.
A view sees every block inserted into usage_events, a duplicate included: the
raw table's replacing happens later, in merges the view never sees, and a
block dropped by its dedup token still reaches the view on current servers.
So the insert path itself keeps duplicates out: insert() first asks which of
the batch's request ids are already stored (primary-key lookups, no FINAL:
any physical row counts) and inserts only the others. That covers every
redelivery this service produces, since one replica inserts its batches one
at a time. It leaves one race: two replicas inserting the same new id at the
same moment, which needs a batch redelivered to a second replica while the
first is still inside its insert (longer than ingest.ACK_WAIT_S). The raw rows
still collapse under FINAL; the aggregate would count that event twice. The
aggregate is read with sum() ... GROUP BY, so parts not yet summed by a merge
add up exactly, with no FINAL. A second view keeps spend_by_time, the costed
events ordered by time, for the part of a day the aggregate cannot split.

Percentiles are nearest-rank (base.py) and picked from the sorted latencies.
quantileExactLow(0.5) agrees with nearest-rank, but no quantileExact* variant
does at 0.95: they take rank floor(q * n) + 1, one too high whenever 0.95 * n
is a whole number (n = 20, 40, ...). The sorted array holds the same values
quantileExact would, so it costs the same memory.

Snapshot bodies are arbitrary bytes, which neither JSON nor the driver's str
results carry as-is (it renders non-UTF-8 String values as hex). So they travel
as base64 both ways: inserts fill EPHEMERAL *_b64 columns that the stored
columns decode by DEFAULT, and reads select base64Encode(...).
"""

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import clickhouse_connect
import msgspec
from clickhouse_connect.driver.binding import quote_identifier
from clickhouse_connect.driver.exceptions import DatabaseError

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
_BODIES: tuple[str, ...] = ("request_body", "response_body")

# Every statement is idempotent, so the whole list runs at every start. A schema
# change is a statement appended here (ALTER TABLE ... ADD COLUMN IF NOT EXISTS).
SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS usage_events (
        request_id String,
        ts_ms Int64,
        account_id String,
        key_id String,
        subaccount_id Nullable(String),
        tag Nullable(String),
        operation LowCardinality(String),
        requested_model String,
        model LowCardinality(String),
        provider LowCardinality(String),
        status Int32,
        error_type Nullable(String),
        stream Bool,
        cache_hit Bool,
        priced Bool,
        input_units Int64,
        output_units Int64,
        cached_units Int64,
        input_cost_micros Int64,
        output_cost_micros Int64,
        cached_cost_micros Int64,
        markup_micros Int64,
        cost_micros Int64,
        upstream_latency_ms Float64,
        total_latency_ms Float64
    )
    ENGINE = ReplacingMergeTree
    -- Monthly parts let a report skip months outside [from, to). A replayed event
    -- has the same ts_ms, hence the same partition, so replacing still sees both.
    PARTITION BY toYYYYMM(toDateTime(intDiv(ts_ms, 1000), 'UTC'))
    ORDER BY (account_id, request_id)
    -- Without this, insert_deduplication_token only works on Replicated tables.
    SETTINGS non_replicated_deduplication_window = 1000
    """,
    """
    CREATE TABLE IF NOT EXISTS snapshots (
        request_id String,
        ts_ms Int64,
        account_id String,
        subaccount_id Nullable(String),
        operation LowCardinality(String),
        model LowCardinality(String),
        request_body_b64 String EPHEMERAL '',
        response_body_b64 String EPHEMERAL '',
        request_body String DEFAULT base64Decode(request_body_b64) CODEC(ZSTD(3)),
        response_body String DEFAULT base64Decode(response_body_b64) CODEC(ZSTD(3)),
        streamed Bool,
        truncated Bool
    )
    ENGINE = ReplacingMergeTree
    -- Daily parts expire whole: with ttl_only_drop_parts the TTL drops a day's part
    -- once all of it is past retention instead of rewriting parts full of bodies.
    -- So a snapshot may outlive the TTL by up to a day.
    PARTITION BY toYYYYMMDD(toDateTime(intDiv(ts_ms, 1000), 'UTC'))
    ORDER BY (account_id, request_id)
    -- Retention; prune_snapshots relies on it. Also drops expired rows at insert.
    TTL toDateTime(intDiv(ts_ms, 1000), 'UTC') + INTERVAL 30 DAY
    SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1
    """,
)

# The running spend aggregate, the twin of SPEND_DAILY in sqlite.py. The sort key is
# the key columns (a merge sums rows with equal keys); allow_nullable_key lets NULL,
# no sub-account or untagged, be a key of its own. Created without IF NOT EXISTS:
# the one ledger whose CREATE succeeds backfills it (see ClickHouseUsageStore.open).
SPEND_DAILY = """
CREATE TABLE spend_daily (
    account_id String,
    spend_by LowCardinality(String),
    spend_key Nullable(String),
    day_ms Int64,
    cost_micros Int64
)
ENGINE = SummingMergeTree(cost_micros)
ORDER BY (account_id, spend_by, day_ms, spend_key)
SETTINGS allow_nullable_key = 1
"""

# One aggregate row per grouping for each event: ARRAY JOIN makes the sub-account
# row and the tag row, as the two VALUES rows of the SQLite trigger do; GROUP BY
# pre-sums the block. The view fills columns by name, so the sum keeps the column's
# name, and HAVING (not WHERE, where that alias would be an aggregate) leaves zeros out.
_SPEND_ROWS = f"""
SELECT account_id, spend_by, if(spend_by = 'tag', tag, subaccount_id) AS spend_key,
       {day_start_sql("ts_ms")} AS day_ms, sum(cost_micros) AS cost_micros
FROM {{source}}
ARRAY JOIN ['subaccount', 'tag'] AS spend_by
GROUP BY account_id, spend_by, spend_key, day_ms
HAVING cost_micros != 0
"""

SPEND_DAILY_FEED = (
    "CREATE MATERIALIZED VIEW IF NOT EXISTS spend_daily_feed TO spend_daily AS "
    + _SPEND_ROWS.format(source="usage_events")
)

# FINAL: rows stored before the aggregate existed may still hold unmerged duplicates.
SPEND_DAILY_BACKFILL = (
    "INSERT INTO spend_daily (account_id, spend_by, spend_key, day_ms, cost_micros) "
    + _SPEND_ROWS.format(source="usage_events FINAL")
)

# The costed events in time order, for the part of a day the aggregate cannot split (a
# wallet's first day). usage_events is ordered by request id, so a time range there reads
# the account's whole month; SQLite has an index on (account_id, ts_ms) for this instead.
# Fed like the aggregate, so it too holds each event once (see above), and no FINAL.
SPEND_BY_TIME = """
CREATE TABLE spend_by_time (
    account_id String,
    ts_ms Int64,
    subaccount_id Nullable(String),
    tag Nullable(String),
    cost_micros Int64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(intDiv(ts_ms, 1000), 'UTC'))
ORDER BY (account_id, ts_ms)
"""
_BY_TIME_ROWS = "SELECT account_id, ts_ms, subaccount_id, tag, cost_micros FROM {source} WHERE cost_micros != 0"
SPEND_BY_TIME_FEED = (
    "CREATE MATERIALIZED VIEW IF NOT EXISTS spend_by_time_feed TO spend_by_time AS "
    + _BY_TIME_ROWS.format(source="usage_events")
)
SPEND_BY_TIME_BACKFILL = (
    "INSERT INTO spend_by_time (account_id, ts_ms, subaccount_id, tag, cost_micros) "
    + _BY_TIME_ROWS.format(source="usage_events FINAL")
)


class Derived(NamedTuple):
    """A table that a materialized view keeps from usage_events, added by ClickHouseUsageStore._add_derived."""

    table: str
    create: str
    view: str
    feed: str
    backfill: str


# In the order they are added; SQLite adds its aggregate in schema step 3.
DERIVED: tuple[Derived, ...] = (
    Derived("spend_daily", SPEND_DAILY, "spend_daily_feed", SPEND_DAILY_FEED, SPEND_DAILY_BACKFILL),
    Derived("spend_by_time", SPEND_BY_TIME, "spend_by_time_feed", SPEND_BY_TIME_FEED, SPEND_BY_TIME_BACKFILL),
)

# Which of a batch's events are already stored: the dedup before the insert (see above).
STORED_IDS = """
SELECT DISTINCT account_id, request_id
FROM usage_events
WHERE account_id IN {account_ids:Array(String)} AND request_id IN {request_ids:Array(String)}
"""

# JSONEachRow matches fields by name, and ClickHouse's JSON parser does the
# escaping, so no value is ever spliced into SQL text.
INSERT = f"INSERT INTO usage_events ({', '.join(COLUMNS)}) FORMAT JSONEachRow"

GENERATION = f"""
SELECT {", ".join(COLUMNS)}
FROM usage_events FINAL
WHERE account_id = {{account_id:String}}
  AND request_id = {{request_id:String}}
  AND ({{subaccount_id:Nullable(String)}} IS NULL OR subaccount_id = {{subaccount_id:Nullable(String)}})
LIMIT 1
"""

# Bucket starts are UTC because the DateTime they come from is declared 'UTC',
# whatever the server's own time zone.
REPORT = """
SELECT
    CASE {bucket:Nullable(String)}
        WHEN 'hour' THEN toInt64(toUnixTimestamp(toStartOfHour(toDateTime(intDiv(ts_ms, 1000), 'UTC')))) * 1000
        WHEN 'day' THEN toInt64(toUnixTimestamp(toStartOfDay(toDateTime(intDiv(ts_ms, 1000), 'UTC')))) * 1000
        WHEN 'month' THEN
            toInt64(toUnixTimestamp(toDateTime(toStartOfMonth(toDateTime(intDiv(ts_ms, 1000), 'UTC')), 'UTC'))) * 1000
    END AS bucket_start_ms,
    CASE {group_by:String}
        WHEN 'tag' THEN tag
        WHEN 'subaccount' THEN subaccount_id
        WHEN 'model' THEN model
        WHEN 'provider' THEN provider
    END AS grp,
    count() AS request_count,
    countIf(status >= 400) AS error_count,
    sum(input_units) AS total_input_units,
    sum(output_units) AS total_output_units,
    sum(cost_micros) AS total_cost_micros,
    arraySort(groupArray(total_latency_ms))[intDiv(count() * 50 + 99, 100)] AS p50,
    arraySort(groupArray(total_latency_ms))[intDiv(count() * 95 + 99, 100)] AS p95
FROM usage_events FINAL
WHERE account_id = {account_id:String}
  AND ts_ms >= {from_ms:Int64} AND ts_ms < {to_ms:Int64}
  AND ({subaccount_id:Nullable(String)} IS NULL OR subaccount_id = {subaccount_id:Nullable(String)})
  AND ({model:Nullable(String)} IS NULL OR model = {model:Nullable(String)})
  AND ({provider:Nullable(String)} IS NULL OR provider = {provider:Nullable(String)})
  AND ({tag:Nullable(String)} IS NULL OR tag = {tag:Nullable(String)})
GROUP BY bucket_start_ms, grp
ORDER BY bucket_start_ms ASC NULLS FIRST, grp ASC NULLS FIRST
"""

# The newest requests. The month partitions outside [from, to) are skipped; within them the
# sort key is (account_id, request_id), so this reads the account's rows of those months.
RECENT = f"""
SELECT {", ".join(COLUMNS)}
FROM usage_events FINAL
WHERE account_id = {{account_id:String}}
  AND ts_ms >= {{from_ms:Int64}} AND ts_ms < {{to_ms:Int64}}
  AND ({{subaccount_id:Nullable(String)}} IS NULL OR subaccount_id = {{subaccount_id:Nullable(String)}})
ORDER BY ts_ms DESC, request_id DESC
LIMIT {{limit:UInt32}}
"""

# Whole days of spend from the aggregate: reads days x keys rows, not the month's events.
SPEND_DAYS = """
SELECT spend_key, sum(cost_micros) AS spent
FROM spend_daily
WHERE account_id = {account_id:String} AND spend_by = {by:String} AND day_ms >= {from_ms:Int64}
GROUP BY spend_key
"""

# The same sums over the usage rows: the aggregate's reference (tests, bench).
SPEND_EVENTS = """
SELECT CASE {by:String} WHEN 'tag' THEN tag ELSE subaccount_id END AS spend_key, sum(cost_micros) AS spent
FROM usage_events FINAL
WHERE account_id = {account_id:String} AND ts_ms >= {from_ms:Int64} AND ts_ms < {to_ms:Int64}
GROUP BY spend_key
"""

# Part of a day, read in time order (SPEND_BY_TIME); in SQLite the same text as SPEND_EVENTS.
SPEND_PART_DAY = """
SELECT CASE {by:String} WHEN 'tag' THEN tag ELSE subaccount_id END AS spend_key, sum(cost_micros) AS spent
FROM spend_by_time
WHERE account_id = {account_id:String} AND ts_ms >= {from_ms:Int64} AND ts_ms < {to_ms:Int64}
GROUP BY spend_key
"""

INSERT_SNAPSHOT = (
    f"INSERT INTO snapshots ({', '.join(f'{c}_b64' if c in _BODIES else c for c in SNAPSHOT_COLUMNS)})"
    " FORMAT JSONEachRow"
)

# Positional, like to_event: to_snapshot zips the row with SNAPSHOT_COLUMNS.
SNAPSHOT = f"""
SELECT {", ".join(f"base64Encode({c})" if c in _BODIES else c for c in SNAPSHOT_COLUMNS)}
FROM snapshots FINAL
WHERE account_id = {{account_id:String}}
  AND request_id = {{request_id:String}}
  AND ({{subaccount_id:Nullable(String)}} IS NULL OR subaccount_id = {{subaccount_id:Nullable(String)}})
LIMIT 1
"""

# Sent with every insert when the server knows them. Older servers parse floats
# fast but not exactly; a stored latency must read back as the float written.
_INSERT_SETTINGS: tuple[tuple[str, int], ...] = (("precise_float_parsing", 1),)


class _Client:
    """The one seam between the SQL above and what runs it.

    Both sides are clickhouse-connect clients, so binding, settings checks and
    result decoding are the library's own on both: the AsyncClient against a
    server, or the synchronous chDB-backed Client (in-process ClickHouse, for
    tests and single-machine use), which the library has only in sync form, run
    in a worker thread so it never blocks the event loop.
    """

    def __init__(self, client: Any, threaded: bool) -> None:
        self._client = client
        self._threaded = threaded

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._threaded:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return await fn(*args, **kwargs)

    def knows_setting(self, name: str) -> bool:
        return name in self._client.server_settings

    def use_database(self, database: str) -> None:
        self._client.database = database

    async def command(self, sql: str, **kwargs: Any) -> None:
        await self._call(self._client.command, sql, **kwargs)

    async def rows(self, sql: str, parameters: dict[str, Any]) -> Sequence[Sequence[Any]]:
        result = await self._call(self._client.query, sql, parameters=parameters)
        return result.result_rows

    async def close(self) -> None:
        await self._call(self._client.close)


def _server_client_args(url: str) -> tuple[dict[str, Any], str]:
    """`http(s)://user:pass@host:8123/dbname` -> get_async_client kwargs, and the database."""
    parts = urlsplit(url)
    args: dict[str, Any] = {
        "interface": parts.scheme,
        "host": parts.hostname or "localhost",
        "port": parts.port or (8443 if parts.scheme == "https" else 8123),
        "password": unquote(parts.password or ""),
    }
    if parts.username:
        args["username"] = unquote(parts.username)
    return args, unquote(parts.path.strip("/")) or "default"


def _open_chdb(path: Path) -> Any:
    path.mkdir(parents=True, exist_ok=True)
    return clickhouse_connect.get_client(interface="chdb", path=str(path))


def batch_token(request_ids: Sequence[str]) -> str:
    # Order-free: a redelivered batch may come back in another order.
    return hashlib.sha256("\n".join(sorted(request_ids)).encode()).hexdigest()


def snapshot_row(snapshot: Snapshot) -> dict[str, Any]:
    """A JSONEachRow object for INSERT_SNAPSHOT: the bodies, base64 (to_builtins' rendering of bytes),
    under their EPHEMERAL *_b64 names."""
    row: dict[str, Any] = msgspec.to_builtins(snapshot)
    for body in _BODIES:
        row[f"{body}_b64"] = row.pop(body)
    return row


class ClickHouseUsageStore:
    """`http(s)://user:pass@host:8123/dbname` for a server, or `chdb:///abs/dir?database=name`
    for chDB's in-process engine (tests, single machine); chDB allows one engine directory per process."""

    def __init__(self, url: str) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https", "chdb"):
            raise ValueError(f"ClickHouse URL must be http(s):// or chdb://, got scheme {scheme!r}")
        self._url = url
        self._client: _Client | None = None
        self._insert_settings: dict[str, Any] = {}
        self._dedup_token = False

    @classmethod
    def with_chdb(cls, path: Path, database: str = "switchboard") -> "ClickHouseUsageStore":
        return cls(f"chdb://{quote(str(path.resolve()))}?{urlencode({'database': database})}")

    async def _connect(self) -> tuple[_Client, str]:
        parts = urlsplit(self._url)
        if parts.scheme == "chdb":
            database = parse_qs(parts.query).get("database", ["default"])[0]
            sync_client = await asyncio.to_thread(_open_chdb, Path(unquote(parts.path)))
            return _Client(sync_client, threaded=True), database
        args, database = _server_client_args(self._url)
        # No database yet: it may not exist until open() creates it.
        return _Client(await clickhouse_connect.get_async_client(**args), threaded=False), database

    async def open(self) -> None:
        if self._client is not None:
            return
        client, database = await self._connect()
        try:
            await client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}", use_database=False)
            client.use_database(database)
            for statement in SCHEMA:
                await client.command(statement)
            for derived in DERIVED:
                await self._add_derived(client, derived)
        except BaseException:
            await client.close()
            raise
        self._insert_settings = {name: value for name, value in _INSERT_SETTINGS if client.knows_setting(name)}
        self._dedup_token = client.knows_setting("insert_deduplication_token")
        self._client = client

    @staticmethod
    async def _add_derived(client: _Client, derived: "Derived") -> None:
        """Create a table fed by a view from usage_events and backfill it from the rows already stored, once.

        The plain CREATE is the claim: of several ledgers starting together exactly
        one creates the table, and only that one backfills. The view exists before the
        backfill's SELECT takes its snapshot, so no row is left out; a row that another,
        older ledger inserts in the milliseconds between them is counted twice, so an
        upgrade that must be exact to the micro-dollar pauses ingestion (scale ledgers to
        one) while the first upgraded ledger starts. A failed backfill drops both again,
        so the next start redoes it; only a ledger killed in the middle of one leaves the
        table short (DROP the view and the table, and the next start redoes it).
        """
        if int((await client.rows(f"EXISTS TABLE {derived.table}", {}))[0][0]):
            await client.command(derived.feed)  # a no-op unless a claimant died before creating it
            return
        try:
            await client.command(derived.create)
        except DatabaseError as exc:
            if "TABLE_ALREADY_EXISTS" not in str(exc):
                raise
            await client.command(derived.feed)
            return  # another ledger won the claim and backfills
        try:
            await client.command(derived.feed)
            await client.command(derived.backfill)
        except BaseException:
            await client.command(f"DROP VIEW IF EXISTS {derived.view}")
            await client.command(f"DROP TABLE IF EXISTS {derived.table}")
            raise

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    def _conn(self) -> _Client:
        if self._client is None:
            raise RuntimeError("ClickHouseUsageStore is not open")
        return self._client

    def _settings_for(self, request_ids: Sequence[str]) -> dict[str, Any]:
        settings = dict(self._insert_settings)
        if self._dedup_token:
            settings["insert_deduplication_token"] = batch_token(request_ids)
        return settings

    async def insert(self, events: list[UsageEvent]) -> int:
        """Inserts only the events not stored yet (the spend aggregate's view must not see a
        duplicate) and returns how many that was, as the SQLite store does."""
        unique: dict[str, UsageEvent] = {}
        for event in events:
            unique.setdefault(event.request_id, event)
        if not unique:
            return 0
        stored = await self._conn().rows(STORED_IDS, {
            "account_ids": sorted({event.account_id for event in unique.values()}), "request_ids": list(unique)})
        held = {(account_id, request_id) for account_id, request_id in stored}
        new = [event for event in unique.values() if (event.account_id, event.request_id) not in held]
        if not new:
            return 0
        body = msgspec.json.Encoder().encode_lines(new)
        # The token still drops a retry of an insert whose first attempt the check did not see.
        await self._conn().command(INSERT, data=body, settings=self._settings_for([e.request_id for e in new]))
        return len(new)

    async def generation(self, account_id: str, request_id: str, subaccount_id: str | None) -> UsageEvent | None:
        params = {"account_id": account_id, "request_id": request_id, "subaccount_id": subaccount_id}
        rows = await self._conn().rows(GENERATION, params)
        return to_event(COLUMNS, rows[0]) if rows else None

    async def report(self, query: ReportQuery) -> list[ReportRow]:
        return to_report_rows(await self._conn().rows(REPORT, report_params(query)))

    async def recent(self, query: RecentQuery) -> list[UsageEvent]:
        return [to_event(COLUMNS, row) for row in await self._conn().rows(RECENT, recent_params(query))]

    async def spend_since(self, account_id: str, since_ms: int, by: SpendBy) -> dict[str | None, int]:
        day = first_whole_day(since_ms)
        days = await self._conn().rows(SPEND_DAYS, spend_params(account_id, day, day, by))
        if since_ms == day:  # a month start: the aggregate alone
            return spend_totals(days)
        return spend_totals(days, await self._conn().rows(SPEND_PART_DAY, spend_params(account_id, since_ms, day, by)))

    async def spend_from_events(self, account_id: str, from_ms: int, to_ms: int,
                                by: SpendBy) -> dict[str | None, int]:
        return spend_totals(await self._conn().rows(SPEND_EVENTS, spend_params(account_id, from_ms, to_ms, by)))

    async def insert_snapshots(self, snapshots: list[Snapshot]) -> int:
        """Like insert: counts the batch's distinct request ids, stored before or not."""
        unique: dict[str, Snapshot] = {}
        for snapshot in snapshots:
            unique.setdefault(snapshot.request_id, snapshot)
        if not unique:
            return 0
        # Often the same token as the batch's usage insert: tokens are per table, so that is no clash.
        body = msgspec.json.Encoder().encode_lines([snapshot_row(snapshot) for snapshot in unique.values()])
        await self._conn().command(INSERT_SNAPSHOT, data=body, settings=self._settings_for(list(unique)))
        return len(unique)

    async def snapshot(self, account_id: str, request_id: str, subaccount_id: str | None) -> Snapshot | None:
        params = {"account_id": account_id, "request_id": request_id, "subaccount_id": subaccount_id}
        rows = await self._conn().rows(SNAPSHOT, params)
        return to_snapshot(SNAPSHOT_COLUMNS, rows[0]) if rows else None

    async def prune_snapshots(self, before_ms: int) -> None:
        """A no-op: the table's 30-day TTL expires snapshots in background merges,
        which costs nothing per call, where a DELETE here would be a mutation an hour
        per replica. A retention configured below 30 days therefore applies to SQLite only."""
