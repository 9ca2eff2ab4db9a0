"""/v1/webhooks/* and /v1/webhook-secret as an API: endpoints CRUD, the delivery log and its
filters, who may see and change what, and every kind of bad input."""

from collections.abc import Iterator

import httpx
import pytest

from libs.contracts.bus import events
from tests.integration.api import call
from tests.integration.cluster import Cluster, eventually
from tests.integration.webhooks_support import Receiver, deliveries, delivery, emit, endpoint, new_tenant

ODD_IDS = ["à", "a.b", "*", ">", "x" * 300, "we_..", "%2A"]


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _sub(gateway: Cluster, key: str) -> dict[str, str]:
    response = call(gateway, "POST", "/sub-accounts", key, json={"name": "customer", "spend_cap_cents": 0})
    assert response.status_code == 200, response.text
    return response.json()


def test_endpoint_crud(gateway: Cluster, hooks: Receiver) -> None:
    _, key = new_tenant(gateway)
    made = endpoint(gateway, key, hooks.url("/a"), event_types=[events.JOB_COMPLETED, events.JOB_COMPLETED])
    assert made["event_types"] == [events.JOB_COMPLETED] and made["disabled"] is False
    assert call(gateway, "GET", f"/webhooks/endpoints/{made['id']}", key).json() == made
    listed = call(gateway, "GET", "/webhooks/endpoints", key).json()
    assert listed["object"] == "list" and [e["id"] for e in listed["data"]] == [made["id"]]
    patched = call(gateway, "PATCH", f"/webhooks/endpoints/{made['id']}", key,
                   json={"url": hooks.url("/b"), "event_types": [], "description": "all of them"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["url"] == hooks.url("/b") and patched.json()["event_types"] == []
    assert patched.json()["description"] == "all of them"
    deleted = call(gateway, "DELETE", f"/webhooks/endpoints/{made['id']}", key)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert call(gateway, "GET", f"/webhooks/endpoints/{made['id']}", key).status_code == 404
    assert call(gateway, "DELETE", f"/webhooks/endpoints/{made['id']}", key).status_code == 404


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/",
                                 "http://192.168.0.10:8080/x", "http://[fd00:ec2::254]/", "ftp://example.com/",
                                 "not a url", "http://0.0.0.0/", "javascript:alert(1)"])
def test_ssrf_and_bad_urls_refused_at_registration(gateway: Cluster, url: str) -> None:
    _, key = new_tenant(gateway)
    response = call(gateway, "POST", "/webhooks/endpoints", key, json={"url": url})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "url"
    made = endpoint(gateway, key, "http://127.0.0.1:9/ok")  # allowed by this cluster's allow-list
    patched = call(gateway, "PATCH", f"/webhooks/endpoints/{made['id']}", key, json={"url": url})
    assert patched.status_code == 400 and patched.json()["error"]["param"] == "url"


def test_bad_bodies_and_ids(gateway: Cluster) -> None:
    _, key = new_tenant(gateway)
    post = "/webhooks/endpoints"
    for body, param in [({"url": "http://127.0.0.1:9/", "event_types": ["job.done"]}, "event_types"),
                        ({"url": "http://127.0.0.1:9/", "sub_account_id": "sa_nobody"}, "sub_account_id"),
                        ({"url": "http://127.0.0.1:9/", "sub_account_id": "a.b"}, "sub_account_id"),
                        ({"url": "http://127.0.0.1:9/" + "x" * 3000}, "url"),
                        ({"url": "http://127.0.0.1:9/", "colour": "red"}, None),
                        ({"event_types": []}, "url"), ({"url": 5}, "url")]:
        response = call(gateway, "POST", post, key, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"
        if param is not None:
            assert response.json()["error"]["param"] == param, body
    for raw in (b"", b"{", b"[]", b"null", "{\"url\": \"\u00e0\"}".encode()):
        response = call(gateway, "POST", post, key, content=raw)
        assert response.status_code == 400, raw
    huge = call(gateway, "POST", post, key, content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert huge.status_code == 413
    for id_ in ODD_IDS:
        for method, path in [("GET", f"/webhooks/endpoints/{id_}"), ("PATCH", f"/webhooks/endpoints/{id_}"),
                             ("DELETE", f"/webhooks/endpoints/{id_}"), ("GET", f"/webhooks/deliveries/{id_}"),
                             ("POST", f"/webhooks/deliveries/{id_}/redeliver")]:
            response = call(gateway, method, path, key, json={"description": "x"})
            assert response.status_code == 404, (method, path, response.text)
    for params in ({"status": "bogus"}, {"event_type": "nope"}, {"limit": "0"}, {"limit": "101"}, {"limit": "x"},
                   {"after": "dlv_unknown"}, {"after": "*"}):
        response = call(gateway, "GET", "/webhooks/deliveries", key, params=params)
        assert response.status_code == 400, params
    assert call(gateway, "GET", "/webhooks/endpoints", "sk-aig-wrong").status_code == 401
    assert call(gateway, "POST", "/webhook-secret/rotate", "sk-aig-wrong").status_code == 401
    assert httpx.get(f"{gateway.base_url}/webhooks/deliveries").status_code == 401


def test_tenants_are_isolated(gateway: Cluster, hooks: Receiver) -> None:
    alice_account, alice = new_tenant(gateway)
    _, bob = new_tenant(gateway)
    made = endpoint(gateway, alice, hooks.url("/alice"))
    emit(gateway, events.BALANCE_LOW, alice_account, {"balance_cents": 3})
    (got,) = hooks.wait("/alice", 1)
    id_ = got.headers["x-aig-delivery-id"]
    delivery(gateway, alice, id_, "delivered")
    unknown_endpoint = call(gateway, "GET", "/webhooks/endpoints/we_unknown", bob).json()
    theirs = call(gateway, "GET", f"/webhooks/endpoints/{made['id']}", bob)
    assert theirs.status_code == 404
    assert theirs.json()["error"] == {**unknown_endpoint["error"],
                                      "message": unknown_endpoint["error"]["message"].replace("we_unknown", made["id"])}
    for method, path in [("PATCH", f"/webhooks/endpoints/{made['id']}"),
                         ("DELETE", f"/webhooks/endpoints/{made['id']}"), ("GET", f"/webhooks/deliveries/{id_}"),
                         ("POST", f"/webhooks/deliveries/{id_}/redeliver")]:
        assert call(gateway, method, path, bob, json={"disabled": True}).status_code == 404, (method, path)
    assert call(gateway, "GET", "/webhooks/endpoints", bob).json()["data"] == []
    assert deliveries(gateway, bob) == []
    assert call(gateway, "GET", "/webhook-secret", bob).json()["secret"] != \
        call(gateway, "GET", "/webhook-secret", alice).json()["secret"]
    assert call(gateway, "GET", f"/webhooks/endpoints/{made['id']}", alice).json()["disabled"] is False


def test_sub_account_keys(gateway: Cluster, hooks: Receiver) -> None:
    account, key = new_tenant(gateway)
    sub, other = _sub(gateway, key), _sub(gateway, key)
    for method, path in [("GET", "/webhooks/endpoints"), ("POST", "/webhooks/endpoints"), ("GET", "/webhook-secret"),
                         ("POST", "/webhook-secret/rotate"), ("POST", "/webhooks/deliveries/dlv_x/redeliver")]:
        response = call(gateway, method, path, sub["key"], json={"url": hooks.url("/x")})
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["type"] == "permission_error"
    narrow = endpoint(gateway, key, hooks.url("/narrow"), sub_account_id=sub["id"], event_types=[events.JOB_COMPLETED])
    wide = endpoint(gateway, key, hooks.url("/wide"), event_types=[events.JOB_COMPLETED])
    emit(gateway, events.JOB_COMPLETED, account, {"job_id": "j1"}, subaccount_id=sub["id"])
    emit(gateway, events.JOB_COMPLETED, account, {"job_id": "j2"}, subaccount_id=other["id"])
    hooks.wait("/wide", 2)
    (narrowed,) = hooks.wait("/narrow", 1)
    assert b'"j1"' in narrowed.body
    mine = eventually(lambda: len(found := deliveries(gateway, sub["key"])) == 2 and found)
    assert {d["sub_account_id"] for d in mine} == {sub["id"]}
    assert {d["endpoint_id"] for d in mine} == {narrow["id"], wide["id"]}
    theirs = [d for d in deliveries(gateway, key) if d["sub_account_id"] == other["id"]]
    assert len(theirs) == 1
    assert call(gateway, "GET", f"/webhooks/deliveries/{theirs[0]['id']}", sub["key"]).status_code == 404
    assert call(gateway, "GET", f"/webhooks/deliveries/{mine[0]['id']}", sub["key"]).status_code == 200
    assert len(hooks.got("/narrow")) == 1


def test_idempotency_key_on_create(gateway: Cluster, hooks: Receiver) -> None:
    _, key = new_tenant(gateway)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "ep-1"}
    url = f"{gateway.base_url}/webhooks/endpoints"
    first = httpx.post(url, headers=headers, json={"url": hooks.url("/once")})
    again = httpx.post(url, headers=headers, json={"url": hooks.url("/once")})
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    assert httpx.post(url, headers=headers, json={"url": hooks.url("/twice")}).status_code == 409
    assert len(call(gateway, "GET", "/webhooks/endpoints", key).json()["data"]) == 1


def test_delivery_log_filters_and_pages(gateway: Cluster, hooks: Receiver) -> None:
    account, key = new_tenant(gateway)
    endpoint(gateway, key, hooks.url("/log"))
    for n in range(5):
        emit(gateway, events.USAGE_DAILY_SUMMARY, account, {"n": n})
    emit(gateway, events.BALANCE_LOW, account, {"n": 9})
    hooks.wait("/log", 6)
    eventually(lambda: len(deliveries(gateway, key, status="delivered")) == 6)
    summaries = deliveries(gateway, key, event_type=events.USAGE_DAILY_SUMMARY, limit=100)
    assert len(summaries) == 5 and all(d["event_type"] == events.USAGE_DAILY_SUMMARY for d in summaries)
    assert deliveries(gateway, key, status="failed") == [] and deliveries(gateway, key, status="pending") == []
    seen: list[str] = []
    after: str | None = None
    while True:
        page = call(gateway, "GET", "/webhooks/deliveries", key,
                    params={"limit": 2, **({"after": after} if after else {})}).json()
        seen += [d["id"] for d in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert len(seen) == len(set(seen)) == 6
    assert seen == [d["id"] for d in deliveries(gateway, key, limit=100)]
