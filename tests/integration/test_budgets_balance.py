"""Budgets per tag (alerts) and the prepaid balance (402 when exhausted)."""

import asyncio
import secrets
import time

import openai

from libs.contracts.bus import events
from libs.contracts.bus.usage import UsageBatch, UsageEvent, encode
from tests.integration.api import call, create_sub_account
from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster
from tests.integration.test_accounts import _read_events
from tests.integration.test_metering import _publish_raw

USER = [{"role": "user", "content": "hi"}]


def _pricey(gateway: Cluster, key: str | None = None, tag: str | None = None, max_tokens: int | None = None) -> int:
    try:
        gateway.client(key=key).chat.completions.create(
            model="sim/pricey", messages=USER, extra_headers={"x-aig-tag": tag} if tag else None,
            max_tokens=max_tokens if max_tokens is not None else openai.omit)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def test_budget_alerts_once_per_threshold(gateway: Cluster) -> None:
    tag = f"budget-{secrets.token_hex(4)}"
    created = call(gateway, "POST", "/budgets", json={"tag": tag, "cap_cents": 2, "alert_thresholds": [50, 100]})
    assert created.status_code == 200, created.text
    budget = created.json()
    assert (budget["tag"], budget["cap_cents"], budget["alert_thresholds"]) == (tag, 2, [50, 100])
    for _ in range(6):  # ~0.53 cent each: crosses 1 cent (50 %) and 2 cents (100 %)
        assert _pricey(gateway, tag=tag) == 200

    def alerts() -> list[events.Event] | None:
        found = [e for e in asyncio.run(_read_events(gateway.nats.url, events.USAGE_THRESHOLD_EXCEEDED))
                 if e.data["tag"] == tag]
        return found if len(found) >= 2 else None

    found = eventually(alerts, 10)
    assert sorted(e.data["threshold_percent"] for e in found) == [50, 100]
    listed = call(gateway, "GET", "/budgets").json()["data"]
    (mine,) = [b for b in listed if b["tag"] == tag]
    assert mine["spent_cents_this_month"] > 2
    again = call(gateway, "POST", "/budgets", json={"tag": tag, "cap_cents": 50}).json()
    assert again["id"] == budget["id"] and again["cap_cents"] == 50  # one budget per tag
    assert call(gateway, "DELETE", f"/budgets/{budget['id']}").json()["deleted"] is True
    assert call(gateway, "DELETE", f"/budgets/{budget['id']}").status_code == 404
    assert call(gateway, "POST", "/budgets", json={"tag": tag, "cap_cents": 0}).status_code == 400


def test_prepaid_balance_stops_the_account_when_exhausted(private_gateway: Cluster) -> None:
    gw = private_gateway
    assert call(gw, "GET", "/balance").json()["exhausted"] is False  # no wallet: not enforced
    topped = call(gw, "POST", "/balance/top-up", json={"cents": 3, "low_balance_cents": 3}).json()
    assert (topped["cents"], topped["usd"], topped["credited_cents"]) == (3, 0.03, 3)
    statuses = []
    for _ in range(20):
        statuses.append(_pricey(gw, max_tokens=1))
        if statuses[-1] == 402:
            break
        time.sleep(0.1)
    assert statuses[-1] == 402, statuses
    # Each request reserves its worst case (~2.4 cents with max_tokens=1) before it is sent: 3 cents
    # admit two or three requests of 0.315 cents, and the balance is never overdrawn.
    admitted = statuses.count(200)
    assert admitted >= 2, statuses

    def settled() -> dict | None:
        balance = call(gw, "GET", "/balance").json()
        return balance if round(balance["usd"] * 1_000_000) <= 30_000 - admitted * 3_150 else None

    balance = eventually(settled, 5)
    assert 0 <= round(balance["usd"] * 1_000_000) < 26_000, balance  # less than one more reservation left
    for type_ in (events.BALANCE_LOW, events.BALANCE_EXHAUSTED):
        assert len(asyncio.run(_read_events(gw.nats.url, type_))) == 1, type_
    sub = create_sub_account(gw, name="under-the-wallet")
    assert _pricey(gw, key=sub["key"]) == 402  # the whole account is out of money
    assert call(gw, "GET", "/balance", sub["key"]).status_code == 403
    call(gw, "POST", "/balance/top-up", json={"cents": 100})
    assert eventually(lambda: _pricey(gw, max_tokens=1) == 200, 3)
    assert call(gw, "GET", "/balance").json()["exhausted"] is False


def test_daily_summary_for_yesterday() -> None:
    gw = start_cluster(extra_env={"SWITCHBOARD_DAILY_SUMMARY_INTERVAL_S": "0.5"})
    try:
        noon_yesterday = (int(time.time()) // 86400 - 1) * 86400 + 43200
        batch = [UsageEvent(request_id=f"y-{i}-{secrets.token_hex(4)}", ts_ms=noon_yesterday * 1000 + i,
                            account_id="root", key_id="key_admin", tag=tag, operation="chat",
                            requested_model="sim/gpt-sim", model="sim/gpt-sim", provider="sim", status=200,
                            input_units=10, output_units=5, cost_micros=cost)
                 for i, (tag, cost) in enumerate([("a", 100), ("b", 300), ("b", 50)])]
        # One stream message, so the summary cannot run between the three events.
        asyncio.run(_publish_raw(gw.nats.url, encode(UsageBatch(batch)), 1))

        def summaries() -> list[events.Event] | None:
            return asyncio.run(_read_events(gw.nats.url, events.USAGE_DAILY_SUMMARY)) or None

        (summary,) = eventually(summaries, 10)
        assert summary.account_id == "root"
        assert summary.data["requests"] == 3 and summary.data["cost_cents"] == 0.045
        assert summary.data["top_tags"][0] == {"tag": "b", "cost_cents": 0.035, "requests": 2}
        time.sleep(1.5)  # later rounds do not announce the same day again
        assert len(asyncio.run(_read_events(gw.nats.url, events.USAGE_DAILY_SUMMARY))) == 1
    finally:
        cleanup(gw)
