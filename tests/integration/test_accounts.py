"""Sub-accounts, management keys, isolation between tenants, spend caps."""

import asyncio
import concurrent.futures
import time
from typing import Any

import nats
import openai
import pytest

from libs.contracts import subjects
from libs.contracts.bus import events
from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster, eventually

USER = [{"role": "user", "content": "hi"}]


def _chat(gateway: Cluster, key: str, model: str = "sim/gpt-sim", **kwargs: object) -> Any:
    return gateway.client(key=key).chat.completions.create(model=model, messages=USER, **kwargs)


def _refused(gateway: Cluster, key: str) -> bool:
    try:
        _chat(gateway, key)
    except openai.AuthenticationError:
        return True
    return False


def test_sub_account_lifecycle(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, name="Acme", external_ref="crm-42", spend_cap_cents=500,
                             rate_limit_rpm=600, default_tag="acme-app", metadata={"plan": "pro"})
    assert sub["key"].startswith("sk-aig-") and sub["id"].startswith("sa_")
    assert (sub["external_ref"], sub["default_tag"], sub["metadata"]) == ("crm-42", "acme-app", {"plan": "pro"})
    raw = gateway.client(key=sub["key"]).chat.completions.with_raw_response.create(model="sim/gpt-sim",
                                                                                    messages=USER)
    record = generation(gateway, raw.headers["X-Request-Id"], key=sub["key"])
    assert record["tag"] == "acme-app" and record["sub_account_id"] == sub["id"]  # default tag applied

    fetched = call(gateway, "GET", f"/sub-accounts/{sub['id']}").json()
    assert fetched["key"] is None and fetched["name"] == "Acme"
    assert sub["id"] in [s["id"] for s in call(gateway, "GET", "/sub-accounts").json()["data"]]

    patched = call(gateway, "PATCH", f"/sub-accounts/{sub['id']}",
                   json={"spend_cap_cents": 900, "default_tag": None, "rate_limit_tpm": 10000}).json()
    assert (patched["spend_cap_cents"], patched["default_tag"], patched["rate_limit_tpm"]) == (900, None, 10000)
    assert patched["name"] == "Acme" and patched["external_ref"] == "crm-42"  # untouched fields kept

    rotated = call(gateway, "POST", f"/sub-accounts/{sub['id']}/rotate-key").json()
    assert rotated["key"] != sub["key"] and _chat(gateway, rotated["key"]).choices
    assert eventually(lambda: _refused(gateway, sub["key"]), 1)

    deleted = call(gateway, "DELETE", f"/sub-accounts/{sub['id']}").json()
    assert deleted == {"id": sub["id"], "object": "sub_account", "deleted": True}
    started = time.monotonic()
    eventually(lambda: _refused(gateway, rotated["key"]), 1)
    assert time.monotonic() - started < 1.0
    assert call(gateway, "GET", f"/sub-accounts/{sub['id']}").status_code == 404


@pytest.mark.parametrize(("body", "param"), [
    ({"spend_cap_cents": 10}, "name"),
    ({"name": "x"}, "spend_cap_cents"),
    ({"name": "x", "spend_cap_cents": -1}, "spend_cap_cents"),
    ({"name": "x", "spend_cap_cents": 1, "rate_limit_rpm": 0}, "rate_limit_rpm"),
    ({"name": "x", "spend_cap_cents": 1, "surprise": True}, None),
])
def test_sub_account_bodies_are_validated(gateway: Cluster, body: dict, param: str | None) -> None:
    response = call(gateway, "POST", "/sub-accounts", json=body)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    if param:
        assert response.json()["error"]["param"] == param


async def _read_events(nats_url: str, type_: str) -> list[events.Event]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"{subjects.EVENTS_PREFIX}.{type_}", ordered_consumer=True)
        found: list[events.Event] = []
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                return found
            found.append(events.decode(msg.data))
    finally:
        await nc.close()


def test_sub_account_created_event(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, name="evented")
    created = asyncio.run(_read_events(gateway.nats.url, events.SUBACCOUNT_CREATED))
    (mine,) = [e for e in created if e.data["sub_account_id"] == sub["id"]]
    assert mine.account_id == "root" and mine.id.startswith("evt_")


def test_tenants_cannot_see_each_other(gateway: Cluster) -> None:
    alice = create_sub_account(gateway, name="alice")
    bob = create_sub_account(gateway, name="bob")
    raw = gateway.client(key=alice["key"]).chat.completions.with_raw_response.create(
        model="sim/gpt-sim", messages=USER, extra_headers={"x-aig-tag": "alice-secret"})
    alice_request = raw.headers["X-Request-Id"]
    generation(gateway, alice_request, key=alice["key"])
    # Management is admin-only.
    for method, path in [("GET", "/sub-accounts"), ("POST", "/sub-accounts"), ("GET", f"/sub-accounts/{alice['id']}"),
                         ("DELETE", f"/sub-accounts/{alice['id']}"), ("GET", "/management/keys"),
                         ("POST", "/management/keys")]:
        response = call(gateway, method, path, bob["key"], json={"name": "x", "spend_cap_cents": 1})
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["type"] == "permission_error"
    # Reads: another tenant's ids look exactly like unknown ones.
    assert call(gateway, "GET", "/generations", bob["key"], params={"id": alice_request}).status_code == 404
    assert call(gateway, "GET", f"/sub-accounts/{alice['id']}/usage", bob["key"]).status_code == 404
    assert call(gateway, "GET", f"/sub-accounts/{bob['id']}/usage", bob["key"]).status_code == 200
    for path in ("/usage/by-tag", "/usage/by-sub-account"):
        rows = call(gateway, "GET", path, bob["key"]).json()["data"]
        assert all(r["group"] not in ("alice-secret", alice["id"]) for r in rows), path
    assert call(gateway, "GET", "/generations", alice["key"], params={"id": alice_request}).status_code == 200


def test_management_keys(gateway: Cluster) -> None:
    created = call(gateway, "POST", "/management/keys", json={"name": "reporting", "scopes": ["read-usage"]}).json()
    key, key_id = created["key"], created["id"]
    assert created["scopes"] == ["read-usage"]
    eventually(lambda: call(gateway, "GET", "/usage/by-tag", key).status_code == 200, 2)
    with pytest.raises(openai.PermissionDeniedError):
        _chat(gateway, key)
    assert call(gateway, "GET", "/sub-accounts", key).status_code == 403
    assert key_id in [k["id"] for k in call(gateway, "GET", "/management/keys").json()["data"]]
    assert call(gateway, "GET", f"/management/keys/{key_id}").json()["name"] == "reporting"
    call(gateway, "PATCH", f"/management/keys/{key_id}", json={"scopes": ["inference"]})
    eventually(lambda: _chat(gateway, key).choices, 2)
    call(gateway, "PATCH", f"/management/keys/{key_id}", json={"disabled": True})
    eventually(lambda: _refused(gateway, key), 1)
    assert call(gateway, "DELETE", f"/management/keys/{key_id}").json()["deleted"] is True
    assert call(gateway, "GET", f"/management/keys/{key_id}").status_code == 404
    assert call(gateway, "PATCH", "/management/keys/key_admin", json={"disabled": True}).status_code == 400


def test_spend_cap_stops_a_sub_account_with_402(gateway: Cluster) -> None:
    # sim/pricey: $1000/M input, $2000/M output: 1 input + 2 output tokens -> ~0.5 cent per request.
    sub = create_sub_account(gateway, name="capped", spend_cap_cents=5)
    key = sub["key"]
    spent_seen = 0
    blocked = 0

    def one(_: int) -> int:
        try:
            raw = gateway.client(key=key).chat.completions.with_raw_response.create(model="sim/pricey",
                                                                                   messages=USER, max_tokens=2)
        except openai.APIStatusError as exc:
            assert exc.status_code == 402 and exc.body["type"] == "budget_exceeded", exc
            assert f"/v1/sub-accounts/{sub['id']}" in exc.body["message"]
            return -1
        return round(float(raw.headers["X-Cost-Cents"]) * 10_000)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(20):
            results = list(pool.map(one, range(4)))
            spent_seen += sum(r for r in results if r > 0)
            blocked += results.count(-1)
            if blocked:
                break
            time.sleep(0.05)
    assert blocked, "the cap never stopped the sub-account"
    cap_micros = 5 * 10_000
    # Each request reserves its worst case (~2.5 cents with max_tokens=2) before it is sent
    # (services/edge/spend_leases.py): the cap is never overshot, and it is spent to within a reservation.
    assert cap_micros - 26_000 < spent_seen <= cap_micros, spent_seen
    crossings = asyncio.run(_read_events(gateway.nats.url, events.SUBACCOUNT_SPEND_EXCEEDED))
    assert len([e for e in crossings if e.data["sub_account_id"] == sub["id"]]) == 1
    # Raising the cap lets the sub-account spend again.
    call(gateway, "PATCH", f"/sub-accounts/{sub['id']}", json={"spend_cap_cents": 1000})
    assert eventually(lambda: _chat(gateway, key, model="sim/pricey").choices, 3)
