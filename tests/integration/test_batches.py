"""OpenAI's Batch API end to end with the official SDK: upload, create, poll, read the
output and error files; validation, cancel, expiry, discount, isolation, bad input."""

import asyncio
import io
import json
import time
from typing import Any

import httpx
import nats
import openai
import pytest

from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster, eventually

CHAT = "/v1/chat/completions"


def line(custom_id: str, model: str = "sim/gpt-sim", content: str = "hello", url: str = CHAT,
         **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if url == "/v1/embeddings":
        body = {"model": model, "input": content}
    elif url == "/v1/responses":
        body = {"model": model, "input": content}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body, **extra}


def upload(client: openai.OpenAI, lines: list[dict[str, Any]] | bytes, purpose: str = "batch") -> str:
    data = lines if isinstance(lines, bytes) else "".join(json.dumps(x) + "\n" for x in lines).encode()
    return client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose=purpose).id  # type: ignore[arg-type]


def wait_done(client: openai.OpenAI, batch_id: str, timeout_s: float = 30) -> Any:
    def done() -> Any:
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status in ("completed", "failed", "expired", "cancelled") else None

    return eventually(done, timeout_s, interval_s=0.2)


def jsonl(client: openai.OpenAI, file_id: str) -> dict[str, dict[str, Any]]:
    rows = [json.loads(x) for x in client.files.content(file_id).content.splitlines() if x.strip()]
    return {row["custom_id"]: row for row in rows}


def run(client: openai.OpenAI, lines: list[dict[str, Any]], endpoint: str = CHAT, **kwargs: Any) -> Any:
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint=endpoint,  # type: ignore[arg-type]
                                  completion_window="24h", **kwargs)
    return wait_done(client, batch.id)


def test_a_chat_batch_runs_every_line_and_writes_the_output_file(gateway: Cluster) -> None:
    client = gateway.client()
    lines = [line(f"req-{i}", content=f"question {i}") for i in range(12)]
    created = client.batches.create(input_file_id=upload(client, lines), endpoint=CHAT, completion_window="24h",
                                    metadata={"project": "demo"})
    assert created.id.startswith("batch_") and created.object == "batch" and created.status == "validating"
    assert created.metadata == {"project": "demo"} and created.expires_at - created.created_at == 24 * 3600
    batch = wait_done(client, created.id)
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (12, 12, 0)
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at and batch.error_file_id is None
    assert batch.usage is not None and batch.usage.input_tokens > 0 and batch.usage.output_tokens > 0
    assert batch.model == "sim/gpt-sim"
    output = jsonl(client, batch.output_file_id or "")
    assert set(output) == {f"req-{i}" for i in range(12)}
    row = output["req-3"]
    assert row["error"] is None and row["id"].startswith("batch_req_")
    assert row["response"]["status_code"] == 200 and row["response"]["request_id"] == f"{batch.id}-3"
    assert "question 3" in row["response"]["body"]["choices"][0]["message"]["content"]
    meta = client.files.retrieve(batch.output_file_id or "")
    assert meta.purpose == "batch_output"
    listed = client.batches.list(limit=100)
    assert batch.id in [b.id for b in listed.data]
    usage = generation(gateway, f"{batch.id}-0")
    assert usage["tag"] == f"batch:{batch.id}"


def test_mixed_lines_split_into_output_and_error_files(gateway: Cluster) -> None:
    client = gateway.client()
    lines = [line("ok-1"), line("boom", model="sim/gpt-sim+status=500"), line("ok-2"),
             line("nomodel", model="nope/missing-model"),
             {"custom_id": "badbody", "method": "POST", "url": CHAT, "body": {"model": "sim/gpt-sim", "messages": 3}}]
    batch = run(client, lines, output_expires_after={"anchor": "created_at", "seconds": 3600})
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 3)
    for file_id in (batch.output_file_id, batch.error_file_id):
        kept = client.files.retrieve(file_id or "")
        assert kept.expires_at is not None and abs(kept.expires_at - kept.created_at - 3600) <= 5
    assert set(jsonl(client, batch.output_file_id or "")) == {"ok-1", "ok-2"}
    failed = jsonl(client, batch.error_file_id or "")
    assert set(failed) == {"boom", "nomodel", "badbody"}
    assert failed["boom"]["response"]["status_code"] >= 500
    assert failed["boom"]["response"]["body"]["error"]["message"]
    assert failed["nomodel"]["response"]["status_code"] in (400, 404)
    assert failed["badbody"]["response"]["status_code"] == 400


def test_every_line_failed_still_has_an_error_file_and_a_record(gateway: Cluster) -> None:
    client = gateway.client()
    batch = run(client, [line(f"x{i}", model="sim/gpt-sim+status=400") for i in range(3)])
    assert batch.status == "completed" and batch.output_file_id is None
    assert set(jsonl(client, batch.error_file_id or "")) == {"x0", "x1", "x2"}
    assert client.batches.retrieve(batch.id).request_counts.failed == 3  # type: ignore[union-attr]
    finished = call(gateway, "POST", f"/batches/{batch.id}/cancel")
    assert finished.status_code == 409 and "completed" in finished.json()["error"]["message"]


@pytest.mark.parametrize("content, code, line_no", [
    (b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}\nnot json\n',
     "invalid_json_line", 2),
    (json.dumps(line("same")).encode() + b"\n" + json.dumps(line("same")).encode() + b"\n",
     "duplicate_custom_id", 2),
    (json.dumps(line("a", url="/v1/embeddings")).encode(), "invalid_url", 1),
    (json.dumps({**line("a"), "method": "GET"}).encode(), "invalid_method", 1),
    (json.dumps({"method": "POST", "url": CHAT, "body": {"model": "m"}}).encode(), "missing_custom_id", 1),
    (json.dumps({**line("a"), "body": {"messages": []}}).encode(), "missing_model", 1),
    (json.dumps({**line("a"), "body": [1]}).encode(), "invalid_body", 1),
    (b"\n\n", "empty_file", None),
])
def test_a_bad_input_file_fails_the_batch_naming_the_line(gateway: Cluster, content: bytes, code: str,
                                                          line_no: int | None) -> None:
    client = gateway.client()
    batch = client.batches.create(input_file_id=upload(client, content), endpoint=CHAT, completion_window="24h")
    batch = wait_done(client, batch.id)
    assert batch.status == "failed" and batch.failed_at and batch.output_file_id is None
    assert batch.errors is not None and batch.errors.object == "list"
    (error,) = [e for e in batch.errors.data or [] if e.code == code]
    assert error.line == line_no and error.message


def test_embeddings_and_responses_batches(gateway: Cluster) -> None:
    client = gateway.client()
    embeddings = run(client, [line(f"e{i}", model="sim/embed-sim", content=f"text {i}", url="/v1/embeddings")
                              for i in range(3)],
                     endpoint="/v1/embeddings")
    assert embeddings.status == "completed"
    rows = jsonl(client, embeddings.output_file_id or "")
    assert rows["e1"]["response"]["body"]["data"][0]["embedding"]
    responses = run(client, [line("r0", content="hi there", url="/v1/responses")], endpoint="/v1/responses")
    assert responses.status == "completed"
    body = jsonl(client, responses.output_file_id or "")["r0"]["response"]["body"]
    assert body["object"] == "response" and body["output"]


def test_batch_lines_are_billed_at_half_price(gateway: Cluster) -> None:
    client = gateway.client()
    prompt = "price me exactly " * 20
    batch = run(client, [line("only", model="sim/pricey", content=prompt)])
    sync = client.chat.completions.with_raw_response.create(
        model="sim/pricey", messages=[{"role": "user", "content": prompt}], extra_headers={"x-cache": "skip"})
    full = generation(gateway, sync.headers["X-Request-Id"])
    half = generation(gateway, f"{batch.id}-0")
    assert full["cost"]["total_micros"] > 1000
    assert abs(half["cost"]["total_micros"] * 2 - full["cost"]["total_micros"]) <= 4
    assert half["usage"] == full["usage"]


def test_cancel_mid_batch_keeps_finished_lines(gateway: Cluster) -> None:
    client = gateway.client()
    lines = [line(f"slow-{i}", model="sim/gpt-sim+latency=300") for i in range(40)]
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint=CHAT, completion_window="24h")
    eventually(lambda: (client.batches.retrieve(batch.id).request_counts.completed or 0) > 0, 15)  # type: ignore
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    done = wait_done(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    counts = done.request_counts
    assert counts is not None and 0 < counts.completed < 40 and counts.completed + counts.failed == 40
    assert len(jsonl(client, done.output_file_id or "")) == counts.completed
    errors = jsonl(client, done.error_file_id or "")
    assert {row["error"]["code"] for row in errors.values()} == {"batch_cancelled"}
    again = call(gateway, "POST", f"/batches/{batch.id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_a_sub_account_sees_only_its_own_batches_and_files(gateway: Cluster) -> None:
    mine, other = create_sub_account(gateway, name="batch-owner"), create_sub_account(gateway, name="batch-peer")
    client, peer = gateway.client(mine["key"]), gateway.client(other["key"])
    batch = run(client, [line("iso")])
    assert batch.status == "completed"
    with pytest.raises(openai.NotFoundError):
        peer.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        peer.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):
        peer.files.content(batch.output_file_id or "")
    assert batch.id not in [b.id for b in peer.batches.list().data]
    assert batch.output_file_id not in [f.id for f in peer.files.list().data]
    # Another sub-account's input file cannot be used either.
    theirs = upload(peer, [line("x")])
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id=theirs, endpoint=CHAT, completion_window="24h")
    assert gateway.client().batches.retrieve(batch.id).id == batch.id  # the account's own key sees it
    assert jsonl(client, batch.output_file_id or "")["iso"]["response"]["status_code"] == 200


def test_list_pages_with_after(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, name="batch-lister")
    client = gateway.client(sub["key"])
    file_id = upload(client, [line("p")])
    ids = [client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h").id
           for _ in range(3)]
    first = client.batches.list(limit=2)
    assert len(first.data) == 2 and first.has_more
    seen = [b.id for b in client.batches.list(limit=2)]  # the SDK follows `after` itself
    assert sorted(seen) == sorted(ids)


def test_bad_requests_are_clean_errors(gateway: Cluster) -> None:
    client = gateway.client()
    file_id = upload(client, [line("a")])
    not_batch = upload(client, [line("a")], purpose="user_data")
    cases: list[tuple[Any, int, str | None]] = [
        (b"{not json", 400, None),
        ({"input_file_id": file_id}, 400, "endpoint"),
        ({"input_file_id": file_id, "endpoint": "/v1/completions", "completion_window": "24h"}, 400, "endpoint"),
        ({"input_file_id": file_id, "endpoint": CHAT, "completion_window": "1h"}, 400, "completion_window"),
        ({"input_file_id": file_id, "endpoint": CHAT, "metadata": {f"k{i}": "v" for i in range(17)}}, 400,
         "metadata"),
        ({"input_file_id": "file-nope", "endpoint": CHAT}, 404, "input_file_id"),
        ({"input_file_id": "a.b", "endpoint": CHAT}, 404, "input_file_id"),
        ({"input_file_id": not_batch, "endpoint": CHAT}, 400, "input_file_id"),
        ({"input_file_id": file_id, "endpoint": CHAT, "surprise": 1}, 400, None),
    ]
    for body, status, param in cases:
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = call(gateway, "POST", "/batches", **kwargs)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == status and error["type"] == "invalid_request_error"
        if param is not None:
            assert error["param"] == param, (body, error)
    for odd in ["à", "a.b", "*", ">", "x" * 300, "batch_nope"]:
        for method, path in [("GET", f"/batches/{odd}"), ("POST", f"/batches/{odd}/cancel")]:
            response = call(gateway, method, path)
            assert response.status_code == 404, (odd, response.text)
    assert call(gateway, "GET", "/batches", params={"limit": "0"}).status_code == 400
    assert call(gateway, "GET", "/batches", params={"limit": "x"}).status_code == 400
    wrong = httpx.get(f"{gateway.base_url}/batches", headers={"Authorization": "Bearer sk-wrong"})
    assert wrong.status_code == 401


def test_idempotency_key_creates_one_batch(gateway: Cluster) -> None:
    client = gateway.client()
    file_id = upload(client, [line("idem")])
    body = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"}
    headers = {"Idempotency-Key": f"batch-{time.time_ns()}", "Authorization": f"Bearer {gateway.admin_key}"}
    url = f"{gateway.base_url}/batches"
    first = httpx.post(url, json=body, headers=headers)
    second = httpx.post(url, json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"] and second.headers.get("Idempotent-Replayed") == "true"
    clash = httpx.post(url, json={**body, "metadata": {"a": "b"}}, headers=headers)
    assert clash.status_code == 409


async def _last_event(nats_url: str) -> dict[str, Any]:
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.jetstream().get_last_msg("EVENTS", "sb.events.batch.completed")
        return json.loads(msg.data)
    finally:
        await nc.close()


def test_a_terminal_batch_emits_batch_completed(gateway: Cluster) -> None:
    client = gateway.client()
    batch = run(client, [line("evt")])
    event = eventually(lambda: (e := asyncio.run(_last_event(gateway.nats.url)))["data"]["id"] == batch.id and e, 5)
    assert event["type"] == "batch.completed" and event["id"] == f"evt_{batch.id}"
    assert event["data"]["status"] == "completed" and event["data"]["output_file_id"] == batch.output_file_id
    failed = run(client, [{"custom_id": "x"}])
    event = eventually(lambda: (e := asyncio.run(_last_event(gateway.nats.url)))["data"]["id"] == failed.id and e, 5)
    assert event["data"]["status"] == "failed" and event["data"]["errors"]["data"]
