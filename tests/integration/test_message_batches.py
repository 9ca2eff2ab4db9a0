"""Anthropic's Message Batches on /v1/messages/batches, driven by the official anthropic SDK."""

import time
from typing import Any

import anthropic
import httpx
import pytest

from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster, eventually

MODEL = "anthropic/claude-sim"


def _client(gateway: Cluster, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=key or gateway.admin_key,
                               max_retries=0)


def _request(custom_id: str, model: str = MODEL, text: str = "hello") -> dict[str, Any]:
    return {"custom_id": custom_id,
            "params": {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}}


def _ended(client: anthropic.Anthropic, batch_id: str) -> Any:
    return eventually(lambda: (b := client.messages.batches.retrieve(batch_id)).processing_status == "ended" and b,
                      30, interval_s=0.2)


def test_the_sdk_flow_create_retrieve_list_results_delete(gateway: Cluster) -> None:
    client = _client(gateway)
    created = client.messages.batches.create(requests=[
        _request("good-1", text="first"), _request("good-2", text="second"),
        _request("broken", model="anthropic/claude-sim+status=500")])  # type: ignore[list-item]
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress" and created.request_counts.processing == 3
    batch = _ended(client, created.id)
    counts = batch.request_counts
    assert (counts.succeeded, counts.errored, counts.processing) == (2, 1, 0)
    assert batch.ended_at is not None and batch.results_url is not None
    assert batch.results_url.endswith(f"/v1/messages/batches/{batch.id}/results")
    assert batch.results_url.startswith("http://127.0.0.1:")
    results = {r.custom_id: r for r in client.messages.batches.results(batch.id)}
    assert set(results) == {"good-1", "good-2", "broken"}
    good = results["good-1"].result
    assert good.type == "succeeded" and good.message.role == "assistant"  # type: ignore[union-attr]
    assert "first" in good.message.content[0].text  # type: ignore[union-attr]
    broken = results["broken"].result
    assert broken.type == "errored" and broken.error.error.type == "api_error"  # type: ignore[union-attr]
    assert batch.id in [b.id for b in client.messages.batches.list(limit=100)]
    assert generation(gateway, f"{batch.id}-0")["tag"] == f"batch:{batch.id}"
    deleted = client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_cancel_reports_canceled_requests(gateway: Cluster) -> None:
    client = _client(gateway)
    requests = [_request(f"slow-{i}", model="anthropic/claude-sim+latency=300") for i in range(40)]
    created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    eventually(lambda: client.messages.batches.retrieve(created.id).request_counts.succeeded > 0, 15)
    canceling = client.messages.batches.cancel(created.id)
    assert canceling.processing_status in ("canceling", "ended") and canceling.cancel_initiated_at is not None
    with pytest.raises(anthropic.BadRequestError):  # still processing
        client.messages.batches.delete(created.id)
    batch = _ended(client, created.id)
    counts = batch.request_counts
    assert counts.canceled > 0 and counts.succeeded + counts.canceled == 40
    types = {r.result.type for r in client.messages.batches.results(batch.id)}
    assert types == {"succeeded", "canceled"}


def test_message_batches_are_private_to_their_sub_account(gateway: Cluster) -> None:
    owner, peer = create_sub_account(gateway, name="mb-owner"), create_sub_account(gateway, name="mb-peer")
    mine, theirs = _client(gateway, owner["key"]), _client(gateway, peer["key"])
    batch = mine.messages.batches.create(requests=[_request("one")])  # type: ignore[list-item]
    _ended(mine, batch.id)
    for attempt in (lambda: theirs.messages.batches.retrieve(batch.id),
                    lambda: theirs.messages.batches.cancel(batch.id),
                    lambda: theirs.messages.batches.delete(batch.id)):
        with pytest.raises(anthropic.NotFoundError):
            attempt()
    peer_results = httpx.get(f"{gateway.base_url}/messages/batches/{batch.id}/results",
                             headers={"x-api-key": peer["key"]})
    assert peer_results.status_code == 404
    assert batch.id not in [b.id for b in theirs.messages.batches.list()]
    # An OpenAI batch route does not show a Message Batch, nor the reverse.
    assert call(gateway, "GET", f"/batches/{batch.id}", owner["key"]).status_code == 404


def test_bad_message_batch_requests(gateway: Cluster) -> None:
    good = _request("a")
    cases: list[tuple[Any, str | None]] = [
        ({"requests": []}, "requests"),
        ({"requests": [{**good, "custom_id": "has space"}]}, "requests[0].custom_id"),
        ({"requests": [{**good, "custom_id": "x" * 65}]}, "requests[0].custom_id"),
        ({"requests": [good, good]}, "requests[1].custom_id"),
        ({"requests": [{"custom_id": "a", "params": {"messages": []}}]}, "requests[0].params.model"),
        ({"requests": [{"custom_id": "a"}]}, None),
        ({}, None),
    ]
    for body, param in cases:
        response = call(gateway, "POST", "/messages/batches", json=body)
        assert response.status_code == 400, (body, response.text)
        if param is not None:
            assert response.json()["error"]["param"] == param, (body, response.text)
    assert call(gateway, "POST", "/messages/batches", content=b"{nope").status_code == 400
    for odd in ["à", "a.b", "*", ">", "y" * 300, "msgbatch_nope"]:
        for method, path in [("GET", f"/messages/batches/{odd}"), ("GET", f"/messages/batches/{odd}/results"),
                             ("POST", f"/messages/batches/{odd}/cancel"), ("DELETE", f"/messages/batches/{odd}")]:
            assert call(gateway, method, path).status_code == 404, (method, odd)
    assert call(gateway, "GET", "/messages/batches", params={"limit": "1001"}).status_code == 400
    both = call(gateway, "GET", "/messages/batches", params={"after_id": "a", "before_id": "b"})
    assert both.status_code == 400
    running = _client(gateway).messages.batches.create(
        requests=[_request("r", model="anthropic/claude-sim+latency=1500")])  # type: ignore[list-item]
    early = call(gateway, "GET", f"/messages/batches/{running.id}/results")
    assert early.status_code == 400 and "not ended" in early.json()["error"]["message"]


def test_idempotency_key_on_message_batches(gateway: Cluster) -> None:
    headers = {"x-api-key": gateway.admin_key, "Idempotency-Key": f"mb-{time.time_ns()}"}
    url = f"{gateway.base_url}/messages/batches"
    body = {"requests": [_request("idem")]}
    first, second = httpx.post(url, json=body, headers=headers), httpx.post(url, json=body, headers=headers)
    assert first.status_code == second.status_code == 200 and first.json()["id"] == second.json()["id"]
