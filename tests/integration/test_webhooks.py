"""Webhooks end to end: events users cause (sub-accounts, secret rotation, jobs) reach a
real HTTP receiver, signed in both schemes, exactly once per target."""

import json
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook

from libs.contracts.bus import events
from tests.integration.api import call
from tests.integration.cluster import Cluster, eventually
from tests.integration.webhooks_support import (
    Receiver,
    Step,
    deliveries,
    delivery,
    emit,
    endpoint,
    new_tenant,
    webhook_status,
)
from tools.webhook_verify import verify, verify_standard


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _fail(status: int, headers: dict[str, str] | None = None) -> Step:
    return Step(status=status, headers=headers or {})


def _create_sub(gateway: Cluster, key: str, name: str = "customer") -> dict[str, object]:
    response = call(gateway, "POST", "/sub-accounts", key, json={"name": name, "spend_cap_cents": 0})
    assert response.status_code == 200, response.text
    return response.json()


def test_subaccount_created_is_delivered_signed(gateway: Cluster, hooks: Receiver) -> None:
    _, key = new_tenant(gateway)
    secret = call(gateway, "GET", "/webhook-secret", key).json()
    assert secret["secret"].startswith("whsec_") and "previous_expires_at" not in secret
    assert call(gateway, "GET", "/webhook-secret", key).json() == secret  # created once, then kept
    made = endpoint(gateway, key, hooks.url("/in"), event_types=[events.SUBACCOUNT_CREATED], description="crm")
    assert made["id"].startswith("we_") and made["event_types"] == [events.SUBACCOUNT_CREATED]
    sub = _create_sub(gateway, key)
    (got,) = hooks.wait("/in", 1)
    body = json.loads(got.body)
    assert set(body) == {"id", "type", "occurred_at", "data"}
    assert body["type"] == events.SUBACCOUNT_CREATED and body["data"]["sub_account_id"] == sub["id"]
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert headers["x-aig-event-type"] == events.SUBACCOUNT_CREATED and headers["x-aig-attempt"] == "1"
    assert headers["x-aig-delivery-id"] == headers["webhook-id"] and headers["webhook-id"].startswith("dlv_")
    assert verify(secret["secret"], got.body, headers["x-aig-signature"])
    assert verify_standard(secret["secret"], headers["webhook-id"], headers["webhook-timestamp"], got.body,
                           headers["webhook-signature"])
    assert Webhook(secret["secret"]).verify(got.body, headers) == body  # the standardwebhooks package, unchanged
    assert not verify(secret["secret"], got.body + b" ", headers["x-aig-signature"])
    record = delivery(gateway, key, headers["webhook-id"], "delivered")
    assert record["attempts"] == 1 and record["last_status_code"] == 200 and record["endpoint_id"] == made["id"]
    assert record["event_id"] == body["id"] and record["url"] == hooks.url("/in")


def test_event_type_filter_and_rotation(gateway: Cluster, hooks: Receiver) -> None:
    _, key = new_tenant(gateway)
    old = call(gateway, "GET", "/webhook-secret", key).json()["secret"]
    endpoint(gateway, key, hooks.url("/keys"), event_types=[events.KEY_ROTATED])
    endpoint(gateway, key, hooks.url("/subs"), event_types=[events.SUBACCOUNT_CREATED])
    endpoint(gateway, key, hooks.url("/all"))
    _create_sub(gateway, key)
    hooks.wait("/subs", 1)
    rotated = call(gateway, "POST", "/webhook-secret/rotate", key)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["secret"] != old and new["previous_expires_at"] > new["created_at"]
    assert call(gateway, "GET", "/webhook-secret", key).json() == new
    (got,) = hooks.wait("/keys", 1)
    assert json.loads(got.body)["type"] == events.KEY_ROTATED
    assert json.loads(got.body)["data"]["kind"] == "webhook_secret"
    headers = {k.lower(): v for k, v in got.headers.items()}
    # During the grace window both secrets sign: two v1 entries, two Standard Webhooks signatures.
    assert headers["x-aig-signature"].count("v1=") == 2 and len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new["secret"]):
        assert verify(secret, got.body, headers["x-aig-signature"])
        assert Webhook(secret).verify(got.body, headers)["type"] == events.KEY_ROTATED
    types = sorted(json.loads(r.body)["type"] for r in hooks.wait("/all", 2))
    assert types == [events.KEY_ROTATED, events.SUBACCOUNT_CREATED]
    assert len(hooks.got("/subs")) == 1 and len(hooks.got("/keys")) == 1  # the filters held


def test_job_callback_and_its_status(gateway: Cluster, hooks: Receiver) -> None:
    account, key = new_tenant(gateway)
    emit(gateway, events.JOB_COMPLETED, account, {"job_id": "job_cb1", "status": "completed"},
         webhook_url=hooks.url("/job"), job_id="job_cb1")
    (got,) = hooks.wait("/job", 1)
    assert json.loads(got.body)["data"]["job_id"] == "job_cb1"
    status = eventually(lambda: (s := webhook_status(gateway, account, "job_cb1")) and s.delivered is not None and s)
    assert status.delivered is True and status.attempts == 1 and status.last_status == 200
    assert status.delivery_id == got.headers["x-aig-delivery-id"]
    record = delivery(gateway, key, status.delivery_id, "delivered")
    assert record["job_id"] == "job_cb1" and record["endpoint_id"] is None


def test_receiver_down_for_three_attempts_still_gets_it(gateway: Cluster, hooks: Receiver) -> None:
    account, key = new_tenant(gateway)
    hooks.script("/flaky", *[_fail(500)] * 3)
    emit(gateway, events.JOB_COMPLETED, account, {"job_id": "job_f"}, webhook_url=hooks.url("/flaky"), job_id="job_f")
    got = hooks.wait("/flaky", 4)
    assert [r.headers["x-aig-attempt"] for r in got] == ["1", "2", "3", "4"]
    assert len({r.headers["x-aig-delivery-id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1  # the same bytes each time, freshly signed
    record = delivery(gateway, key, got[0].headers["x-aig-delivery-id"], "delivered")
    assert record["attempts"] == 4


def test_six_attempts_then_failed_then_redeliver(gateway: Cluster, hooks: Receiver) -> None:
    account, key = new_tenant(gateway)
    hooks.script("/down", *[_fail(503)] * 6)
    emit(gateway, events.JOB_FAILED, account, {"job_id": "job_d"}, webhook_url=hooks.url("/down"), job_id="job_d")
    got = hooks.wait("/down", 6)
    id_ = got[0].headers["x-aig-delivery-id"]
    record = delivery(gateway, key, id_, "failed")
    assert record["attempts"] == 6 and record["last_status_code"] == 503 and record["last_error"] == "HTTP 503"
    assert len(hooks.got("/down")) == 6  # no seventh attempt
    assert id_ in [d["id"] for d in deliveries(gateway, key, status="failed")]
    assert id_ not in [d["id"] for d in deliveries(gateway, key, status="delivered")]
    status = eventually(lambda: (s := webhook_status(gateway, account, "job_d")) and s.delivered is False and s)
    assert status.attempts == 6
    again = call(gateway, "POST", f"/webhooks/deliveries/{id_}/redeliver", key)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "pending" and again.json()["attempts"] == 0
    seventh = hooks.wait("/down", 7)[6]
    assert seventh.headers["x-aig-attempt"] == "1" and seventh.headers["x-aig-delivery-id"] == id_
    assert delivery(gateway, key, id_, "delivered")["attempts"] == 1
    eventually(lambda: webhook_status(gateway, account, "job_d").delivered is True)


def test_gone_disables_the_endpoint(gateway: Cluster, hooks: Receiver) -> None:
    account, key = new_tenant(gateway)
    hooks.script("/gone", then=_fail(410))
    made = endpoint(gateway, key, hooks.url("/gone"))
    emit(gateway, events.BALANCE_LOW, account, {"balance_cents": 1})
    (got,) = hooks.wait("/gone", 1)
    record = delivery(gateway, key, got.headers["x-aig-delivery-id"], "failed")
    assert record["attempts"] == 1 and record["last_status_code"] == 410
    disabled = eventually(lambda: (e := call(gateway, "GET", f"/webhooks/endpoints/{made['id']}", key).json())
                          ["disabled"] and e)
    assert "410" in disabled["disabled_reason"]
    emit(gateway, events.BALANCE_LOW, account, {"balance_cents": 0})
    # A job's own callback answering 410 is simply not tried again.
    emit(gateway, events.JOB_COMPLETED, account, {"job_id": "job_g"}, webhook_url=hooks.url("/gone"), job_id="job_g")
    eventually(lambda: (s := webhook_status(gateway, account, "job_g")) and s.delivered is False)
    assert len(hooks.got("/gone")) == 2  # the disabled endpoint got nothing more
    # Re-enabling it is the user's call.
    enabled = call(gateway, "PATCH", f"/webhooks/endpoints/{made['id']}", key, json={"disabled": False}).json()
    assert enabled["disabled"] is False and enabled["disabled_reason"] is None


def test_retry_after_is_honoured(gateway: Cluster, hooks: Receiver) -> None:
    account, _ = new_tenant(gateway)
    hooks.script("/busy", _fail(429, {"Retry-After": "2"}))
    emit(gateway, events.JOB_COMPLETED, account, {"job_id": "job_r"}, webhook_url=hooks.url("/busy"), job_id="job_r")
    first, second = hooks.wait("/busy", 2)
    # The schedule alone would retry after 0.3 s; the receiver asked for 2 s.
    assert second.at - first.at >= 1.9
    assert second.headers["x-aig-attempt"] == "2"


def test_refused_addresses_at_delivery(gateway: Cluster) -> None:
    account, key = new_tenant(gateway)
    emit(gateway, events.JOB_COMPLETED, account, {"job_id": "job_s"}, webhook_url="http://169.254.169.254/latest",
         job_id="job_s")
    status = eventually(lambda: (s := webhook_status(gateway, account, "job_s")) and s.delivered is not None and s)
    assert status.delivered is False and status.attempts == 1  # refused outright, not retried
    record = delivery(gateway, key, status.delivery_id, "failed")
    assert "metadata" in record["last_error"]
