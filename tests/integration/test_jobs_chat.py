"""Chat completions with webhook_url as async jobs, and what every job endpoint does with
bad input, other tenants' ids, Idempotency-Key, spend caps and rate limits."""

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster, eventually

USER = [{"role": "user", "content": "hi"}]
ODD_IDS = ["à", "a.b", "*", ">", "x" * 300, "job_" + "0" * 24]


class Receiver:
    """A local webhook receiver: every POST body it got, answered 200."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handle(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as found:
        yield found


def post(gateway: Cluster, path: str, key: str | None = None, headers: dict[str, str] | None = None,
         **kwargs: Any) -> httpx.Response:
    """POST with extra headers (x-aig-tag, Idempotency-Key)."""
    sent = {"Authorization": f"Bearer {key or gateway.admin_key}", **(headers or {})}
    return httpx.post(f"{gateway.base_url}{path}", headers=sent, timeout=15, **kwargs)


def chat_job(gateway: Cluster, key: str | None = None, model: str = "sim/gpt-sim",
             headers: dict[str, str] | None = None, **fields: Any) -> httpx.Response:
    body = {"model": model, "messages": USER, "webhook_url": "https://example.com/hook", **fields}
    return post(gateway, "/chat/completions", key, headers, json=body)


def job(gateway: Cluster, job_id: str, key: str | None = None) -> dict[str, Any]:
    response = call(gateway, "GET", f"/jobs/{job_id}", key)
    assert response.status_code == 200, response.text
    return response.json()


def finished(gateway: Cluster, job_id: str, key: str | None = None, timeout_s: float = 15) -> dict[str, Any]:
    return eventually(lambda: (j := job(gateway, job_id, key))["status"] in ("completed", "failed", "cancelled")
                      and j, timeout_s, interval_s=0.1)


def test_a_chat_completion_with_webhook_url_is_a_job(gateway: Cluster, receiver: Receiver) -> None:
    accepted = chat_job(gateway, webhook_url=receiver.url, headers={"x-aig-tag": "async-chat"})
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["object"] == "job" and body["status"] == "queued" and body["id"].startswith("job_")
    done = finished(gateway, body["id"])
    assert done["status"] == "completed", done
    assert (done["modality"], done["webhook_url"], done["tag"]) == ("chat", receiver.url, "async-chat")
    completion = done["result"]
    assert completion["object"] == "chat.completion" and completion["choices"][0]["message"]["content"]
    assert done["result_url"].endswith(f"/v1/files/jobs/{body['id']}/result.json")
    assert done["result_url"].startswith(gateway.base_url)
    assert done["attempts"] == 1 and done["error"] is None
    # Billed once, under the job's id.
    row = generation(gateway, body["id"])
    assert row["tag"] == "async-chat" and row["status"] == 200 and row["cost"] == completion["meta"]["cost"]
    # The webhooks service delivered job.completed to the job's own URL, and the job says so.
    events = eventually(lambda: [b for b in receiver.bodies if b["type"] == "job.completed"], 10)
    assert events[0]["data"]["id"] == body["id"] and events[0]["data"]["status"] == "completed"
    assert eventually(lambda: job(gateway, body["id"])["webhook_delivered"] is True, 10)
    assert body["id"] in [j["id"] for j in call(gateway, "GET", "/jobs", params={"limit": 100}).json()["data"]]


def test_a_failed_chat_job_says_why_and_bills_nothing(gateway: Cluster) -> None:
    accepted = chat_job(gateway, model="sim/gpt-sim+status=400")
    assert accepted.status_code == 202, accepted.text
    done = finished(gateway, accepted.json()["id"])
    assert done["status"] == "failed" and done["result"] is None and done["result_url"] is None
    assert done["error"]["message"] and done["error"]["code"]
    row = generation(gateway, done["id"])  # recorded as a failed request, at no cost
    assert row["status"] == 400 and row["cost"]["total_micros"] == 0


def test_chat_job_bodies_are_checked(gateway: Cluster) -> None:
    streamed = chat_job(gateway, stream=True)
    assert streamed.status_code == 400 and streamed.json()["error"]["param"] == "stream"
    for url in ("ftp://example.com/x", "not a url", "https://", "javascript:alert(1)"):
        refused = chat_job(gateway, webhook_url=url)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "webhook_url", url
    refused = post(gateway, "/chat/completions", content=b'{"model": "sim/gpt-sim", "messages": [',
                   headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"
    wrong = chat_job(gateway, key="sk-aig-wrong")
    assert wrong.status_code == 401


@pytest.mark.parametrize("odd", ODD_IDS)
def test_odd_job_ids_are_404(gateway: Cluster, odd: str) -> None:
    for method, path in (("GET", f"/jobs/{odd}"), ("DELETE", f"/jobs/{odd}"), ("GET", f"/videos/{odd}"),
                         ("GET", f"/videos/{odd}/content"), ("DELETE", f"/videos/{odd}"),
                         ("GET", f"/music/generate/{odd}")):
        response = call(gateway, method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_job_lists_are_paginated_and_checked(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, name="pager", spend_cap_cents=1000)
    ids = [chat_job(gateway, sub["key"]).json()["id"] for _ in range(3)]
    first = call(gateway, "GET", "/jobs", sub["key"], params={"limit": 2}).json()
    assert first["object"] == "list" and first["has_more"] is True and len(first["data"]) == 2
    rest = call(gateway, "GET", "/jobs", sub["key"], params={"limit": 2, "after": first["last_id"]}).json()
    assert rest["has_more"] is False
    assert sorted(j["id"] for j in first["data"] + rest["data"]) == sorted(ids)
    ascending = call(gateway, "GET", "/jobs", sub["key"], params={"order": "asc", "modality": "chat"}).json()
    assert {j["id"] for j in ascending["data"]} == set(ids)
    for params, param in (({"limit": "x"}, "limit"), ({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                          ({"order": "up"}, "order"), ({"modality": "smell"}, "modality")):
        response = call(gateway, "GET", "/jobs", sub["key"], params=params)
        assert response.status_code == 400 and response.json()["error"]["param"] == param, params


def test_jobs_are_isolated_between_tenants(gateway: Cluster) -> None:
    alice = create_sub_account(gateway, name="alice-jobs", spend_cap_cents=1000)
    bob = create_sub_account(gateway, name="bob-jobs", spend_cap_cents=1000)
    job_id = chat_job(gateway, alice["key"]).json()["id"]
    finished(gateway, job_id, alice["key"])
    for method, path in (("GET", f"/jobs/{job_id}"), ("DELETE", f"/jobs/{job_id}")):
        response = call(gateway, method, path, bob["key"])
        assert response.status_code == 404 and job_id in response.json()["error"]["message"], (method, path)
    assert job_id not in [j["id"] for j in call(gateway, "GET", "/jobs", bob["key"]).json()["data"]]
    # The account's own key sees its sub-accounts' jobs.
    assert job(gateway, job_id)["sub_account_id"] == alice["id"]


def test_cancelling_a_finished_job_is_409(gateway: Cluster) -> None:
    job_id = chat_job(gateway).json()["id"]
    assert finished(gateway, job_id)["status"] == "completed"
    refused = call(gateway, "DELETE", f"/jobs/{job_id}")
    assert refused.status_code == 409 and "completed" in refused.json()["error"]["message"]
    assert job(gateway, job_id)["status"] == "completed"


def test_idempotency_key_on_job_creation(gateway: Cluster) -> None:
    headers = {"Idempotency-Key": "chat-job-once"}
    first = chat_job(gateway, headers=headers)
    again = chat_job(gateway, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and again.headers.get("Idempotent-Replayed") == "true"
    other = chat_job(gateway, headers=headers, temperature=0.5)
    assert other.status_code == 409 and other.json()["error"]["param"] == "Idempotency-Key"


def test_job_creation_is_admitted_like_a_request(gateway: Cluster) -> None:
    limited = create_sub_account(gateway, name="slow-jobs", spend_cap_cents=1000, rate_limit_rpm=2)
    statuses = [chat_job(gateway, limited["key"]).status_code for _ in range(4)]
    assert statuses[:2] == [202, 202] and 429 in statuses[2:], statuses
    # A cap reached (sim/pricey costs ~0.5 cent a request) refuses new jobs with 402.
    capped = create_sub_account(gateway, name="capped-jobs", spend_cap_cents=1)

    def refused() -> bool:
        try:
            gateway.client(key=capped["key"]).chat.completions.create(model="sim/pricey", messages=USER)
        except openai.APIStatusError as exc:
            assert exc.status_code == 402, exc
        return chat_job(gateway, capped["key"]).status_code == 402

    eventually(refused, 10, interval_s=0.2)
    response = chat_job(gateway, capped["key"])
    assert response.status_code == 402 and response.json()["error"]["type"] == "budget_exceeded"
