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
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import clickhouse_connect
import msgspec
from clickhouse_connect.driver.binding import quote_identifier

from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import ReportQuery, ReportRow, UsageEvent
from services.ledger.stores.base import (
    SpendBy,
    report_params,
    spend_params,
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

SPEND_SINCE = """
SELECT CASE {by:String} WHEN 'tag' THEN tag ELSE subaccount_id END AS spend_key, sum(cost_micros) AS spent
FROM usage_events FINAL
WHERE account_id = {account_id:String} AND ts_ms >= {since_ms:Int64}
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
        except BaseException:
            await client.close()
            raise
        self._insert_settings = {name: value for name, value in _INSERT_SETTINGS if client.knows_setting(name)}
        self._dedup_token = client.knows_setting("insert_deduplication_token")
        self._client = client

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
        """Returns the batch's distinct request ids: whether one was already stored
        is only known after a merge or a FINAL read, which an insert should not pay for."""
        unique: dict[str, UsageEvent] = {}
        for event in events:
            unique.setdefault(event.request_id, event)
        if not unique:
            return 0
        body = msgspec.json.Encoder().encode_lines(list(unique.values()))
        await self._conn().command(INSERT, data=body, settings=self._settings_for(list(unique)))
        return len(unique)

    async def generation(self, account_id: str, request_id: str, subaccount_id: str | None) -> UsageEvent | None:
        params = {"account_id": account_id, "request_id": request_id, "subaccount_id": subaccount_id}
        rows = await self._conn().rows(GENERATION, params)
        return to_event(COLUMNS, rows[0]) if rows else None

    async def report(self, query: ReportQuery) -> list[ReportRow]:
        return to_report_rows(await self._conn().rows(REPORT, report_params(query)))

    async def spend_since(self, account_id: str, since_ms: int, by: SpendBy) -> dict[str | None, int]:
        rows = await self._conn().rows(SPEND_SINCE, spend_params(account_id, since_ms, by))
        return {key: int(spent) for key, spent in rows}

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
