"""The running spend aggregate (`spend_daily`) of both usage stores: spend_since, which
caps, budgets and wallets read, must equal the sum over the stored usage rows after any
mix of inserts, duplicates, redeliveries and month boundaries, and a migration must
backfill it from rows stored before it existed."""

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from libs.contracts.bus.usage import UsageEvent
from services.ledger.stores import ClickHouseUsageStore, SqliteUsageStore, UsageStore
from services.ledger.stores import sqlite as sqlite_store
from services.ledger.stores.base import DAY_MS, SpendBy
from tests.unit.test_usage_stores import ACCOUNT, DATASET, KINDS, WEIRD, event, make_store, ms

ACCOUNTS = [ACCOUNT, "acct_2", "acct_nobody"]
BYS: list[SpendBy] = ["subaccount", "tag"]
FAR_FUTURE = 2**62
BOUNDARIES = [ms(2024, 1, 31, 23, 59, 59, 999), ms(2024, 2, 1), ms(2024, 2, 29, 23, 59, 59, 999), ms(2024, 3, 1)]
SINCES = [-DAY_MS, -1, 0, 1, *BOUNDARIES, ms(2024, 2, 1, 0, 0, 0, 1), ms(2024, 2, 14, 13, 37, 0, 250),
          ms(2024, 2, 15), ms(2024, 1, 30, 5), FAR_FUTURE]


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UsageStore]:
    s = make_store(request.param, tmp_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def mixed_events(count: int, seed: int = 11) -> list[UsageEvent]:
    """Events around the Jan/Feb and Feb/Mar boundaries, at times near 0 too, with NULL, '' and odd
    sub-accounts and tags, zero costs, and two accounts."""
    rnd = random.Random(seed)
    times = [*BOUNDARIES, -1, 0, 1, ms(2024, 2, 14, 13, 37, 0, 250), ms(2024, 2, 14, 13, 37, 0, 249)]
    out = []
    for i in range(count):
        ts = rnd.choice(times) if i % 5 == 0 else rnd.randrange(ms(2024, 1, 29), ms(2024, 3, 3))
        out.append(event(f"mix_{i}", ts, account_id=rnd.choice([ACCOUNT, ACCOUNT, "acct_2"]),
                         subaccount_id=rnd.choice([None, "sub_a", "sub_b", WEIRD]),
                         tag=rnd.choice([None, "", "alpha", WEIRD]),
                         cost_micros=rnd.choice([0, 1, 75, 1_000_003, rnd.randrange(10_000)])))
    return out


def reference(events: list[UsageEvent], account_id: str, since_ms: int, by: SpendBy) -> dict[str | None, int]:
    """What the ledger must answer: the stored events (first of each request id) summed in Python."""
    seen: dict[str, UsageEvent] = {}
    for e in events:
        seen.setdefault(e.request_id, e)
    totals: dict[str | None, int] = {}
    for e in seen.values():
        if e.account_id == account_id and e.ts_ms >= since_ms:
            key = e.tag if by == "tag" else e.subaccount_id
            totals[key] = totals.get(key, 0) + e.cost_micros
    return {k: v for k, v in totals.items() if v}


async def assert_totals(store: UsageStore, events: list[UsageEvent]) -> None:
    for account_id in ACCOUNTS:
        for since in SINCES:
            for by in BYS:
                expected = reference(events, account_id, since, by)
                assert await store.spend_since(account_id, since, by) == expected, (account_id, since, by)
                assert await store.spend_from_events(account_id, since, FAR_FUTURE, by) == expected


async def test_totals_equal_the_sum_over_rows_through_duplicates_and_redeliveries(store: UsageStore) -> None:
    events = mixed_events(600)
    batches = [events[i:i + 50] for i in range(0, len(events), 50)]
    sent: list[UsageEvent] = []
    for n, batch in enumerate(batches):
        if n % 3 == 0:
            batch = batch + batch[:7]  # duplicates inside one batch
        await store.insert(batch)
        sent += batch
        if n % 4 == 1:
            redelivered = list(reversed(batch))  # a lost ack: the same batch again, in another order
            assert await store.insert(redelivered) == 0
            sent += redelivered
        if n == 6:
            overlap = events[340:360] + events[:30]  # stored and new ids mixed
            assert await store.insert(overlap) == 10  # 350..359 are new (and come again in the next batch)
            sent += overlap
        if n in (2, 9):
            await assert_totals(store, sent)  # correct at any point, not only at the end
    await assert_totals(store, sent)
    assert await store.spend_since(ACCOUNT, 0, "subaccount") != {}


async def test_the_aggregate_does_not_grow_with_volume(store: UsageStore) -> None:
    day = ms(2024, 2, 14)
    batch = [event(f"same_{i}", day + i * 1000, subaccount_id="sub_a", tag="alpha", cost_micros=3)
             for i in range(400)]
    await store.insert(batch[:250])
    await store.insert(batch[200:])
    await store.insert(batch)  # redelivered whole: adds nothing
    rows_sql = "SELECT spend_by, spend_key, day_ms, cost_micros FROM spend_daily ORDER BY spend_by"
    if isinstance(store, ClickHouseUsageStore):
        await store._conn().command("OPTIMIZE TABLE spend_daily FINAL")  # sum the parts, as merges will
        rows = [tuple(r) for r in await store._conn().rows(rows_sql, {})]
    else:
        async with store._conn().execute(rows_sql) as cur:
            rows = [tuple(r) for r in await cur.fetchall()]
    assert rows == [("subaccount", "sub_a", day, 1200), ("tag", "alpha", day, 1200)]  # one row per key and day


def _old_sqlite_database(path: Path, events: list[UsageEvent]) -> None:
    """A database as the ledger left it before the aggregate existed: schema steps 1 and 2 only."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for step in sqlite_store.SCHEMA[:2]:
            for statement in step:
                db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.executemany(sqlite_store.multi_row(sqlite_store.INSERT, len(sqlite_store.COLUMNS), 1),
                       [msgspec.structs.astuple(e) for e in events])
    finally:
        db.close()


async def test_sqlite_migration_backfills_the_aggregate(tmp_path: Path) -> None:
    old = DATASET + mixed_events(300)
    _old_sqlite_database(tmp_path / "usage.db", old)
    first, second = SqliteUsageStore(tmp_path / "usage.db"), SqliteUsageStore(tmp_path / "usage.db")
    await asyncio.gather(first.open(), second.open())  # two ledgers upgrading at once: one backfill
    try:
        await assert_totals(first, old)
        later = mixed_events(200, seed=12)
        later = [msgspec.structs.replace(e, request_id=f"later_{e.request_id}") for e in later]
        await first.insert(later + old[:40])  # new rows, and old ones redelivered
        await assert_totals(second, old + later)
        async with first._conn().execute("PRAGMA user_version") as cur:
            assert (await cur.fetchone()) == (len(sqlite_store.SCHEMA),)
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_clickhouse_migration_backfills_the_aggregate_once(tmp_path: Path) -> None:
    old = DATASET + mixed_events(300)
    setup = ClickHouseUsageStore.with_chdb(tmp_path / "chdb")
    await setup.open()
    try:
        conn = setup._conn()
        # As before the upgrade: no aggregate, and rows written as the old ledger wrote them,
        # unchecked, so a redelivery left a physical duplicate that only FINAL collapses.
        for view, table in (("spend_daily_feed", "spend_daily"), ("spend_by_time_feed", "spend_by_time")):
            await conn.command(f"DROP VIEW {view}")
            await conn.command(f"DROP TABLE {table}")
        for rows in (old, old[:60]):
            await conn.command(f"INSERT INTO usage_events ({', '.join(UsageEvent.__struct_fields__)}) "
                               "FORMAT JSONEachRow", data=msgspec.json.Encoder().encode_lines(rows))
        assert (await conn.rows("SELECT count() FROM usage_events", {}))[0][0] == len(old) + 60
    finally:
        await setup.close()
    first, second = ClickHouseUsageStore.with_chdb(tmp_path / "chdb"), ClickHouseUsageStore.with_chdb(tmp_path / "chdb")
    await asyncio.gather(first.open(), second.open())  # both start together: one wins the claim and backfills
    try:
        await assert_totals(first, old)
        later = [msgspec.structs.replace(e, request_id=f"later_{e.request_id}") for e in mixed_events(200, seed=12)]
        assert await second.insert(later + old[:40]) == len(later)  # the pre-insert check sees old rows too
        await assert_totals(first, old + later)
    finally:
        await asyncio.gather(first.close(), second.close())
