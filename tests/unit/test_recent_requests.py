"""The ledger's RECENT query (GET /v1/usage/recent): SQLite and ClickHouse (chDB) give the same
newest-first page, bounded by time, scoped to the account and sub-account."""

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from libs.contracts.bus import ledger as ledger_bus
from libs.contracts.bus.ledger import RecentQuery
from libs.contracts.http.usage import GenerationList
from services.ledger import queries
from services.ledger.stores import UsageStore
from tests.unit.test_usage_stores import ACCOUNT, KINDS, WEIRD, event, make_store, ms

T0 = ms(2026, 3, 10, 12)


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UsageStore]:
    s = make_store(request.param, tmp_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def recent_query(**overrides: object) -> RecentQuery:
    fields: dict[str, object] = {"account_id": ACCOUNT, "from_ms": ms(2026, 3, 1), "to_ms": ms(2026, 4, 1),
                                 "limit": 100}
    fields.update(overrides)
    return RecentQuery(**fields)  # type: ignore[arg-type]


async def _fill(store: UsageStore) -> None:
    await store.insert([
        event("r1", T0 + 1000, cost_micros=10),
        event("r2", T0 + 3000, cost_micros=20, subaccount_id="sub_a", tag=WEIRD),
        event("r3", T0 + 2000, cost_micros=30, subaccount_id="sub_b"),
        event("r4", T0 + 3000, cost_micros=40, subaccount_id="sub_a"),  # same instant as r2
        event("r5", ms(2026, 2, 28, 23, 59), cost_micros=50),  # the month before
        event("r6", T0 + 5000, account_id="acct_other", cost_micros=60),
    ])
    await store.insert([event("r1", T0 + 1000, cost_micros=10)])  # a redelivery: still one row


async def test_newest_first_within_the_range(store: UsageStore) -> None:
    await _fill(store)
    found = await store.recent(recent_query())
    assert [e.request_id for e in found] == ["r4", "r2", "r3", "r1"]
    assert [e.cost_micros for e in found] == [40, 20, 30, 10]
    assert found[1].tag == WEIRD


async def test_limit_and_bounds(store: UsageStore) -> None:
    await _fill(store)
    assert [e.request_id for e in await store.recent(recent_query(limit=2))] == ["r4", "r2"]
    # Half-open: from is inclusive, to exclusive.
    found = await store.recent(recent_query(from_ms=T0 + 2000, to_ms=T0 + 3000))
    assert [e.request_id for e in found] == ["r3"]
    found = await store.recent(recent_query(from_ms=ms(2026, 2, 1)))
    assert [e.request_id for e in found][-1] == "r5"


async def test_scoped_to_account_and_sub_account(store: UsageStore) -> None:
    await _fill(store)
    assert [e.request_id for e in await store.recent(recent_query(subaccount_id="sub_a"))] == ["r4", "r2"]
    assert await store.recent(recent_query(subaccount_id="sub_unknown")) == []
    assert [e.request_id for e in await store.recent(recent_query(account_id="acct_other"))] == ["r6"]
    assert await store.recent(recent_query(account_id="nobody")) == []


async def test_answer_is_the_public_generation_list(store: UsageStore) -> None:
    await _fill(store)
    reply = await queries.recent(store, recent_query(limit=1))
    body = msgspec.json.decode(reply.body, type=GenerationList)
    assert reply.status == 200 and body.object == "list"
    assert [(g.id, g.cost.total_micros, g.sub_account_id) for g in body.data] == [("r4", 40, "sub_a")]


@pytest.mark.parametrize("limit", [0, -1, ledger_bus.RECENT_MAX + 1])
def test_limit_out_of_bounds_is_refused_at_decode(limit: int) -> None:
    # The ledger answers an undecodable query with a 400 (service._serve catches DecodeError).
    raw = ledger_bus.encode([ACCOUNT, 0, 1, limit, None])
    with pytest.raises(msgspec.ValidationError):
        ledger_bus.decode_recent_query(raw)
