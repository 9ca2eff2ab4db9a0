"""The ledger's usage stores: SQLite and ClickHouse (on chDB, in-process) must give identical answers.

Every store test runs against both. The ClickHouse store runs its production
SQL through clickhouse-connect's chDB backend; only the transport differs from
a server.
"""

import asyncio
import itertools
import os
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import msgspec
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from libs.contracts import subjects
from libs.contracts.bus import ledger as ledger_bus
from libs.contracts.bus.inference import Failure, Reply
from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import ReportQuery, ReportRow, UsageBatch, UsageEvent
from libs.contracts.bus.usage import encode as encode_usage
from services.ledger import queries
from services.ledger.ingest import Ingestor
from services.ledger.retention import SnapshotRetention
from services.ledger.stores import ClickHouseUsageStore, SqliteUsageStore, UsageStore, open_store
from services.ledger.stores.clickhouse import _server_client_args

KINDS = ["sqlite", "clickhouse"]
ACCOUNT = "acct_1"
WEIRD = "it's \"quoted\" \\ back\\slash \\N ünïcødé 🎉 ' OR 1=1 --"


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, milli: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000 + milli


def make_store(kind: str, tmp_path: Path) -> UsageStore:
    if kind == "sqlite":
        return SqliteUsageStore(tmp_path / "usage.db")
    return ClickHouseUsageStore.with_chdb(tmp_path / "chdb")


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UsageStore]:
    s = make_store(request.param, tmp_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def event(request_id: str, ts_ms: int, **overrides: object) -> UsageEvent:
    fields: dict[str, object] = {
        "request_id": request_id,
        "ts_ms": ts_ms,
        "account_id": ACCOUNT,
        "key_id": "key_1",
        "operation": "chat",
        "requested_model": "auto",
        "model": "gpt-4o",
        "provider": "openai",
        "status": 200,
    }
    fields.update(overrides)
    return msgspec.convert(fields, UsageEvent)


# i: (when, sub-account, tag, model/provider, status, total latency). Event i costs
# 1000*i micros with 10*i input and i output units, so sums are easy to do by hand.
GPT, CLAUDE = ("gpt-4o", "openai"), ("claude-3-5", "anthropic")
ROWS = {
    1: (ms(2024, 1, 15, 10), "sub_a", "alpha", GPT, 200, 120.0),
    2: (ms(2024, 1, 15, 10, 30), "sub_a", "alpha", GPT, 200, 35.5),
    3: (ms(2024, 1, 15, 11, 15), "sub_b", "beta", CLAUDE, 500, 900.0),
    4: (ms(2024, 1, 31, 22), None, None, GPT, 200, 60.0),
    5: (ms(2024, 1, 31, 23, 59, 59, 999), "sub_b", WEIRD, CLAUDE, 429, 250.25),
    6: (ms(2024, 2, 1), "sub_a", "alpha", GPT, 200, 15.0),
    7: (ms(2024, 2, 1, 0, 20), "sub_a", "beta", CLAUDE, 200, 480.0),
    8: (ms(2024, 2, 1, 0, 40), "sub_b", "alpha", GPT, 400, 75.0),
    9: (ms(2024, 2, 1, 1, 5), None, None, CLAUDE, 200, 33.0),
    10: (ms(2024, 2, 1, 1, 10), "sub_a", "alpha", GPT, 200, 210.0),
    11: (ms(2024, 2, 1, 1, 30), "sub_b", WEIRD, CLAUDE, 200, 95.0),
    12: (ms(2024, 2, 1, 1, 59), "sub_a", "beta", GPT, 502, 1500.0),
    13: (ms(2024, 2, 2, 9), "sub_a", "alpha", GPT, 200, 42.0),
    14: (ms(2024, 2, 2, 9, 30), None, "alpha", CLAUDE, 200, 310.0),
    15: (ms(2024, 2, 2, 10), "sub_b", None, GPT, 200, 88.0),
    16: (ms(2024, 2, 2, 12), "sub_a", "beta", CLAUDE, 200, 130.0),
    17: (ms(2024, 2, 2, 13), "sub_b", "alpha", GPT, 200, 55.0),
    18: (ms(2024, 2, 2, 14), "sub_a", WEIRD, CLAUDE, 200, 700.0),
    19: (ms(2024, 2, 29, 23), "sub_b", "beta", GPT, 200, 20.0),
    20: (ms(2024, 2, 29, 23, 59), None, "alpha", CLAUDE, 503, 405.0),
}
FROM_MS, TO_MS = ms(2024, 1, 15, 10), ms(2024, 3, 1)  # exactly events 1..20
FEB = ms(2024, 2, 1)

MAIN = [
    event(
        f"req_{i:02d}", ts, subaccount_id=sub, tag=tag, model=model, provider=provider, status=status,
        input_units=10 * i, output_units=i, cost_micros=1000 * i, total_latency_ms=latency,
    )
    for i, (ts, sub, tag, (model, provider), status, latency) in ROWS.items()
]
OUTSIDE = [
    event("req_early", FROM_MS - 1, subaccount_id="sub_a", tag="alpha", cost_micros=7_000_000),
    event("req_late", TO_MS, subaccount_id="sub_a", tag="alpha", cost_micros=5_000_000),
    event("req_other_account", FEB, account_id="acct_2", subaccount_id="sub_a", tag="alpha", cost_micros=9_000_000),
]
DATASET = MAIN + OUTSIDE


def nearest_rank(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[-(-len(ordered) * pct // 100) - 1]


def bucket_start(ts_ms: int, bucket: str | None) -> int | None:
    if bucket is None:
        return None
    t = datetime.fromtimestamp(ts_ms / 1000, UTC)
    if bucket == "hour":
        t = t.replace(minute=0, second=0, microsecond=0)
    elif bucket == "day":
        t = t.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        t = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(t.timestamp()) * 1000


def expected_report(events: list[UsageEvent], q: ReportQuery) -> list[ReportRow]:
    """The reference the SQL must match: the report, computed by scanning in Python."""
    group_attr = {"tag": "tag", "subaccount": "subaccount_id", "model": "model", "provider": "provider"}
    groups: dict[tuple[int | None, str | None], list[UsageEvent]] = defaultdict(list)
    for e in events:
        if e.account_id != q.account_id or not q.from_ms <= e.ts_ms < q.to_ms:
            continue
        wanted = {"subaccount_id": q.subaccount_id, "model": q.model, "provider": q.provider, "tag": q.tag}
        if any(v is not None and getattr(e, k) != v for k, v in wanted.items()):
            continue
        group = getattr(e, group_attr[q.group_by]) if q.group_by in group_attr else None
        groups[(bucket_start(e.ts_ms, q.bucket), group)].append(e)

    def order(key: tuple[int | None, str | None]) -> tuple[bool, int, bool, str]:
        return (key[0] is not None, key[0] or 0, key[1] is not None, key[1] or "")

    return [
        ReportRow(
            bucket_start_ms=b, group=g, requests=len(es), errors=sum(e.status >= 400 for e in es),
            input_units=sum(e.input_units for e in es), output_units=sum(e.output_units for e in es),
            cost_micros=sum(e.cost_micros for e in es),
            p50_latency_ms=nearest_rank([e.total_latency_ms for e in es], 50),
            p95_latency_ms=nearest_rank([e.total_latency_ms for e in es], 95),
        )
        for (b, g), es in sorted(groups.items(), key=lambda kv: order(kv[0]))
    ]


def report_query(**overrides: object) -> ReportQuery:
    return msgspec.convert({"account_id": ACCOUNT, "from_ms": FROM_MS, "to_ms": TO_MS, **overrides}, ReportQuery)


ALL_SHAPES = list(itertools.product(["tag", "subaccount", "model", "provider", "none"], [None, "hour", "day", "month"]))


async def test_open_twice_is_idempotent(tmp_path: Path) -> None:
    for kind in KINDS:
        first = make_store(kind, tmp_path / kind)
        await first.open()
        assert await first.insert(MAIN[:3]) == 3
        await first.close()
        again, alongside = make_store(kind, tmp_path / kind), make_store(kind, tmp_path / kind)
        await asyncio.gather(again.open(), alongside.open())  # as two replicas starting together
        try:
            rows = await again.report(report_query())
            assert (rows[0].requests, rows[0].cost_micros) == (3, 6000), kind
            assert await alongside.generation(ACCOUNT, "req_02", None) == MAIN[1]
        finally:
            await asyncio.gather(again.close(), alongside.close())


async def test_insert_and_generation_round_trip(store: UsageStore) -> None:
    full = UsageEvent(
        request_id="req_full", ts_ms=1_706_745_599_999, account_id=ACCOUNT, key_id="key_9",
        subaccount_id="sub_z", tag=WEIRD, operation="embeddings", requested_model="auto:cheap",
        model="text-embedding-3-small", provider="openai", status=429, error_type="rate_limited",
        stream=True, cache_hit=True, priced=False, input_units=123_456, output_units=7, cached_units=99,
        input_cost_micros=1_234_567, output_cost_micros=89, cached_cost_micros=12, markup_micros=3,
        cost_micros=1_234_671, upstream_latency_ms=123.456, total_latency_ms=0.1 + 0.2,
    )
    sparse = event("req_sparse", 1)  # every optional field at its default, None included
    assert await store.insert([full, sparse]) == 2
    assert await store.generation(ACCOUNT, "req_full", None) == full
    assert await store.generation(ACCOUNT, "req_full", "sub_z") == full
    assert await store.generation(ACCOUNT, "req_sparse", None) == sparse
    assert await store.generation(ACCOUNT, "req_missing", None) is None


async def test_generation_is_scoped_to_account_and_subaccount(store: UsageStore) -> None:
    await store.insert(DATASET)
    assert await store.generation("acct_2", "req_01", None) is None
    assert await store.generation(ACCOUNT, "req_01", "sub_b") is None
    assert await store.generation(ACCOUNT, "req_04", "sub_a") is None  # no sub-account is not any sub-account
    assert await store.generation(ACCOUNT, "req_01", "sub_a") == MAIN[0]
    assert await store.generation("acct_2", "req_other_account", "sub_a") == OUTSIDE[2]


async def test_duplicate_request_ids_keep_one_row(store: UsageStore) -> None:
    a, b, c = MAIN[0], MAIN[1], MAIN[2]
    assert await store.insert([a, a, b]) == 2
    retried = await store.insert([a, a, b])  # the same batch again, as after a lost ack
    again = await store.insert([a, c])
    assert (retried, again) == (0, 1)  # both dialects count only what they really stored
    [row] = await store.report(report_query())
    assert (row.requests, row.cost_micros, row.input_units) == (3, 6000, 60)
    assert await store.spend_since(ACCOUNT, 0, "subaccount") == {"sub_a": 3000, "sub_b": 3000}


async def test_clickhouse_retried_batch_adds_no_rows_before_any_merge(tmp_path: Path) -> None:
    store = ClickHouseUsageStore.with_chdb(tmp_path / "chdb")
    await store.open()
    try:
        await store.insert(MAIN[:5])
        await store.insert(list(reversed(MAIN[:5])))  # redelivered in another order
        await store.insert(MAIN[3:7])  # overlapping: only 6 and 7 are new
        raw = await store._conn().rows("SELECT count() FROM usage_events", {})  # no FINAL: physical rows
        assert raw[0][0] == 7
        summed = await store._conn().rows("SELECT sum(cost_micros) FROM spend_daily WHERE spend_by = 'tag'", {})
        assert summed[0][0] == sum(e.cost_micros for e in MAIN[:7])  # the view saw each event once
    finally:
        await store.close()


async def test_report_by_hand(store: UsageStore) -> None:
    await store.insert(DATASET)
    assert await store.report(report_query()) == [
        ReportRow(requests=20, errors=5, input_units=2100, output_units=210, cost_micros=210_000,
                  p50_latency_ms=95.0, p95_latency_ms=900.0),  # n=20: p95 is rank 19, not the maximum
    ]
    assert await store.report(report_query(bucket="month")) == [
        ReportRow(bucket_start_ms=ms(2024, 1, 1), requests=5, errors=2, input_units=150, output_units=15,
                  cost_micros=15_000, p50_latency_ms=120.0, p95_latency_ms=900.0),
        ReportRow(bucket_start_ms=FEB, requests=15, errors=3, input_units=1950, output_units=195,
                  cost_micros=195_000, p50_latency_ms=95.0, p95_latency_ms=1500.0),
    ]
    assert await store.report(report_query(group_by="provider")) == [
        ReportRow(group="anthropic", requests=9, errors=3, input_units=1030, output_units=103,
                  cost_micros=103_000, p50_latency_ms=310.0, p95_latency_ms=900.0),
        ReportRow(group="openai", requests=11, errors=2, input_units=1070, output_units=107,
                  cost_micros=107_000, p50_latency_ms=60.0, p95_latency_ms=1500.0),
    ]


@pytest.mark.parametrize(("group_by", "bucket"), ALL_SHAPES)
async def test_report_every_grouping_and_bucket(store: UsageStore, group_by: str, bucket: str | None) -> None:
    await store.insert(DATASET)
    q = report_query(group_by=group_by, bucket=bucket)
    rows = await store.report(q)
    assert rows == expected_report(DATASET, q)
    assert sum(r.requests for r in rows) == 20
    if group_by in ("tag", "subaccount") and bucket is None:
        assert rows[0].group is None  # the untagged / no-sub-account group sorts first


async def test_both_stores_return_identical_rows(tmp_path: Path) -> None:
    stores = [make_store(kind, tmp_path / kind) for kind in KINDS]
    for s in stores:
        await s.open()
        await s.insert(DATASET)
    try:
        for group_by, bucket in ALL_SHAPES:
            q = report_query(group_by=group_by, bucket=bucket)
            sqlite_rows, clickhouse_rows = [await s.report(q) for s in stores]
            assert sqlite_rows == clickhouse_rows, (group_by, bucket)
    finally:
        for s in stores:
            await s.close()


@pytest.mark.parametrize(
    "filters",
    [
        {"model": "claude-3-5"},
        {"provider": "openai", "group_by": "tag"},
        {"tag": WEIRD, "group_by": "subaccount", "bucket": "day"},
        {"subaccount_id": "sub_b", "group_by": "model", "bucket": "month"},
        {"subaccount_id": "sub_a", "tag": "alpha", "provider": "openai"},
        {"from_ms": ms(2024, 1, 31, 23, 59, 59, 999), "to_ms": ms(2024, 2, 1, 0, 40), "bucket": "hour"},
        {"tag": "nobody-uses-this"},
    ],
)
async def test_report_filters_and_bounds(store: UsageStore, filters: dict[str, object]) -> None:
    await store.insert(DATASET)
    q = report_query(**filters)
    assert await store.report(q) == expected_report(DATASET, q)


async def test_report_bounds_are_half_open(store: UsageStore) -> None:
    await store.insert(DATASET)
    [row] = await store.report(report_query(from_ms=ms(2024, 1, 31, 23, 59, 59, 999), to_ms=FEB))
    assert (row.requests, row.cost_micros, row.group) == (1, 5000, None)  # event 5 only, not event 6
    [row] = await store.report(report_query(group_by="tag", tag=WEIRD))
    assert (row.group, row.requests, row.cost_micros) == (WEIRD, 3, 34_000)


async def test_percentiles_are_nearest_rank_for_every_size(store: UsageStore) -> None:
    # One model per group size 1..41: covers n = 20 and 40, where ClickHouse's
    # quantileExact* take rank floor(0.95 n) + 1 instead of nearest-rank's 0.95 n.
    rnd = random.Random(7)
    events = []
    for n in range(1, 42):
        latencies = rnd.sample(range(1, 10_000), n)
        events += [
            event(f"req_{n}_{k}", FROM_MS + k, model=f"m{n:02d}", total_latency_ms=latency / 4)
            for k, latency in enumerate(latencies)
        ]
    await store.insert(events)
    q = report_query(group_by="model")
    rows = await store.report(q)
    assert len(rows) == 41
    assert rows == expected_report(events, q)


async def test_spend_since(store: UsageStore) -> None:
    await store.insert(DATASET)
    assert await store.spend_since(ACCOUNT, FEB, "subaccount") == {
        "sub_a": 82_000 + 5_000_000, "sub_b": 70_000, None: 43_000,
    }
    assert await store.spend_since(ACCOUNT, FEB, "tag") == {
        "alpha": 88_000 + 5_000_000, "beta": 54_000, WEIRD: 29_000, None: 24_000,
    }
    assert await store.spend_since("acct_2", 0, "tag") == {"alpha": 9_000_000}
    assert await store.spend_since("acct_nobody", 0, "tag") == {}


async def test_unknown_groupings_are_refused(store: UsageStore) -> None:
    with pytest.raises(ValueError, match="group_by"):
        await store.report(ReportQuery(account_id=ACCOUNT, from_ms=0, to_ms=1, group_by="key"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="spend"):
        await store.spend_since(ACCOUNT, 0, "model")  # type: ignore[arg-type]


def test_open_store_picks_the_dialect(tmp_path: Path) -> None:
    assert isinstance(open_store(None, tmp_path / "u.db"), SqliteUsageStore)
    assert isinstance(open_store("", tmp_path / "u.db"), SqliteUsageStore)
    assert isinstance(open_store("http://ch:8123/usage", tmp_path / "u.db"), ClickHouseUsageStore)
    with pytest.raises(ValueError, match="scheme"):
        ClickHouseUsageStore("tcp://ch:9000/usage")


def test_server_url_parsing() -> None:
    args, database = _server_client_args("https://led%40ger:p%2Fss@ch.internal/usage_db")
    assert database == "usage_db"
    assert args == dict(interface="https", host="ch.internal", port=8443, username="led@ger", password="p/ss")
    args, database = _server_client_args("http://ch:8124")
    assert (database, args["port"], "username" in args) == ("default", 8124, False)


@pytest.mark.skipif(
    os.environ.get("SWITCHBOARD_TEST_CONTAINERS") != "1",
    reason="needs a Docker engine; set SWITCHBOARD_TEST_CONTAINERS=1 to run against a real ClickHouse server",
)
async def test_clickhouse_server_via_testcontainers() -> None:
    from testcontainers.community.clickhouse import ClickHouseContainer

    container = ClickHouseContainer(os.environ.get("SWITCHBOARD_CLICKHOUSE_IMAGE", "clickhouse/clickhouse-server:24.8"))
    await asyncio.to_thread(container.start)
    try:
        host, port = container.get_container_host_ip(), container.get_exposed_port(8123)
        url = f"http://{container.username}:{container.password}@{host}:{port}/switchboard"
        first = ClickHouseUsageStore(url)
        await first.open()
        await first.close()
        store = ClickHouseUsageStore(url)
        await store.open()  # the schema already exists: opening again must not fail
        try:
            await store.insert(DATASET)
            await store.insert(DATASET[:7])  # retried batch: dropped by its dedup token
            await store.insert(DATASET[3:9])  # overlapping batch: collapsed by FINAL
            assert await store.generation(ACCOUNT, "req_05", "sub_b") == MAIN[4]
            for group_by, bucket in ALL_SHAPES:
                q = report_query(group_by=group_by, bucket=bucket)
                assert await store.report(q) == expected_report(DATASET, q), (group_by, bucket)
            assert await store.spend_since(ACCOUNT, FEB, "tag") == {
                "alpha": 5_088_000, "beta": 54_000, WEIRD: 29_000, None: 24_000,
            }
        finally:
            await store.close()
    finally:
        await asyncio.to_thread(container.stop)


# Snapshots are dated from now: ClickHouse's 30-day TTL drops older rows, even as they are inserted.
NOW_MS = int(time.time() * 1000)
DAY_MS = 86_400_000
BINARY = bytes(range(256)) + b"\xc3\x28 not utf-8 \xff\xfe \\N \x00"


def snap(request_id: str, age_days: float = 0.0, **overrides: object) -> Snapshot:
    fields: dict[str, object] = {
        "request_id": request_id, "ts_ms": NOW_MS - int(age_days * DAY_MS), "account_id": ACCOUNT,
        "operation": "chat", "model": "gpt-4o", "request_body": b'{"messages":[]}',
        "response_body": b'{"object":"chat.completion"}',
    }
    fields.update(overrides)
    return msgspec.convert(fields, Snapshot)


SNAPS = [
    snap("req_s1", subaccount_id="sub_a", request_body=BINARY, response_body=WEIRD.encode(), streamed=True),
    snap("req_s2", subaccount_id="sub_b", operation="messages", model="claude-3-5", truncated=True,
         request_body=b"", response_body=b""),
    snap("req_s3"),  # no sub-account
    snap("req_s4", account_id="acct_2", subaccount_id="sub_a"),
]


async def test_snapshots_round_trip_exactly_and_idempotently(store: UsageStore) -> None:
    first = await store.insert_snapshots([SNAPS[0], SNAPS[1], SNAPS[0]])
    retried = await store.insert_snapshots([SNAPS[1], SNAPS[0]])  # redelivered, in another order
    again = await store.insert_snapshots(SNAPS)
    if isinstance(store, SqliteUsageStore):
        assert (first, retried, again) == (2, 0, 2)
    else:  # distinct ids of the batch, as for usage events
        assert (first, retried, again) == (2, 2, 4)
        raw = await store._conn().rows("SELECT count() FROM snapshots", {})  # no FINAL: physical rows
        assert raw[0][0] == 6  # the retry was dropped by its token; `again` is collapsed by FINAL
    assert await store.insert_snapshots([]) == 0
    for expected in SNAPS:
        assert await store.snapshot(expected.account_id, expected.request_id, None) == expected
    got = await store.snapshot(ACCOUNT, "req_s1", "sub_a")
    assert got is not None and got.request_body == BINARY and got.response_body == WEIRD.encode()
    assert await store.snapshot(ACCOUNT, "req_unknown", None) is None


async def test_snapshot_is_scoped_to_account_and_subaccount(store: UsageStore) -> None:
    await store.insert_snapshots(SNAPS)
    assert await store.snapshot("acct_2", "req_s1", None) is None  # another tenant's id: as if unknown
    assert await store.snapshot(ACCOUNT, "req_s4", None) is None
    assert await store.snapshot(ACCOUNT, "req_s4", "sub_a") is None
    assert await store.snapshot(ACCOUNT, "req_s1", "sub_b") is None
    assert await store.snapshot(ACCOUNT, "req_s3", "sub_a") is None  # no sub-account is not any sub-account
    assert await store.snapshot(ACCOUNT, "req_s2", "sub_b") == SNAPS[1]
    assert await store.snapshot("acct_2", "req_s4", "sub_a") == SNAPS[3]


async def test_retention_prunes_old_snapshots(store: UsageStore) -> None:
    old, edge, fresh = snap("req_old", age_days=40), snap("req_edge", age_days=29.9), snap("req_new", age_days=1)
    await store.insert_snapshots([old, edge, fresh])
    await SnapshotRetention(store, days=30).run_once(NOW_MS)
    if not isinstance(store, SqliteUsageStore):
        # ClickHouse expires by TTL in its background merges, whenever they run: run that merge now.
        await store._conn().command("OPTIMIZE TABLE snapshots FINAL")
    assert await store.snapshot(ACCOUNT, "req_old", None) is None
    assert await store.snapshot(ACCOUNT, "req_edge", None) == edge
    assert await store.snapshot(ACCOUNT, "req_new", None) == fresh
    await store.prune_snapshots(NOW_MS)
    if isinstance(store, SqliteUsageStore):
        assert await store.snapshot(ACCOUNT, "req_new", None) is None
    else:  # the TTL is the retention: prune is a no-op, and the 40-day-old row never landed
        assert await store.snapshot(ACCOUNT, "req_new", None) == fresh
        raw = await store._conn().rows("SELECT count() FROM snapshots WHERE request_id = 'req_old'", {})
        assert raw[0][0] == 0


class FakeMsg:
    """The part of a JetStream message that Ingestor._store_batch uses."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.subject = subjects.USAGE_EVENTS
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


async def test_ingest_stores_snapshots_and_events(store: UsageStore) -> None:
    events = [event("req_s1", NOW_MS, subaccount_id="sub_a"), event("req_s3", NOW_MS)]
    msgs = [
        FakeMsg(encode_usage(UsageBatch(events, [SNAPS[0], SNAPS[2]]))),
        FakeMsg(encode_usage(UsageBatch([event("req_plain", NOW_MS)]))),  # no snapshots: opted out
        FakeMsg(encode_usage(MAIN[0])),  # a bare event, still accepted
        FakeMsg(b"\xc1 not msgpack"),  # logged and acknowledged, never redelivered forever
    ]
    ingestor = Ingestor(cast(JetStreamContext, None), store)  # _store_batch never touches JetStream
    await ingestor._store_batch(cast(list[Msg], msgs))
    await ingestor._store_batch(cast(list[Msg], msgs[:1]))  # redelivered after a lost ack
    assert all(msg.acked for msg in msgs)
    assert await store.snapshot(ACCOUNT, "req_s1", "sub_a") == SNAPS[0]
    assert await store.snapshot(ACCOUNT, "req_s3", None) == SNAPS[2]
    assert await store.snapshot(ACCOUNT, "req_plain", None) is None
    assert await store.generation(ACCOUNT, "req_s1", "sub_a") == events[0]
    assert await store.generation(ACCOUNT, "req_01", None) == MAIN[0]


async def test_snapshot_query_answers(store: UsageStore) -> None:
    await store.insert_snapshots(SNAPS)
    usage = event("req_s1", NOW_MS, subaccount_id="sub_a")
    await store.insert([usage])
    reply = await queries.snapshot(store, ledger_bus.SnapshotQuery(ACCOUNT, "req_s1", "sub_a"))
    assert isinstance(reply, Reply) and reply.status == 200
    assert ledger_bus.decode_snapshot_answer(reply.body) == ledger_bus.SnapshotAnswer(SNAPS[0], usage)
    reply = await queries.snapshot(store, ledger_bus.SnapshotQuery(ACCOUNT, "req_s3"))  # no usage row yet
    assert isinstance(reply, Reply)
    assert ledger_bus.decode_snapshot_answer(reply.body) == ledger_bus.SnapshotAnswer(SNAPS[2], None)
    for account, request_id, sub in [("acct_2", "req_s1", None), (ACCOUNT, "req_s1", "sub_b"),
                                      (ACCOUNT, "req_nope", None)]:
        failure = await queries.snapshot(store, ledger_bus.SnapshotQuery(account, request_id, sub))
        assert isinstance(failure, Failure)
        assert (failure.error.code, failure.error.param) == (404, "source_request_id")
        assert request_id in failure.error.message and "retention" in failure.error.message
