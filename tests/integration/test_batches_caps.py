"""Spend caps on async work: a batch or an eval stops near the caller's cap instead of
running on by its whole size; a capped or rate-limited caller cannot start one. Evals
read their dataset from an uploaded file."""

import io
import json
from typing import Any

import openai
import pytest

from tests.integration.api import call, create_sub_account
from tests.integration.cluster import Cluster, eventually
from tests.integration.test_batches import CHAT, jsonl, line, upload, wait_done

CONCURRENCY = 8  # SWITCHBOARD_BATCH_CONCURRENCY and SWITCHBOARD_EVAL_CONCURRENCY defaults: the overshoot bound
CAP_CENTS = 20


def _tag_usage(gateway: Cluster, key: str, tag: str, requests: int) -> dict[str, Any]:
    def row() -> dict[str, Any] | None:
        rows = call(gateway, "GET", "/usage/by-tag", key).json()["data"]
        found = [r for r in rows if r["group"] == tag]
        return found[0] if found and found[0]["requests"] >= requests else None

    return eventually(row, 10)


def test_a_batch_stops_at_the_sub_accounts_cap(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, name="batch-capped", spend_cap_cents=CAP_CENTS)
    client = gateway.client(sub["key"])
    lines = [line(f"c{i}", model="sim/pricey", content=f"spend {i}") for i in range(60)]
    batch = wait_done(client, client.batches.create(input_file_id=upload(client, lines), endpoint=CHAT,
                                                    completion_window="24h").id, 60)
    assert batch.status == "completed"
    counts = batch.request_counts
    assert counts is not None and 0 < counts.completed < 60 and counts.completed + counts.failed == 60
    refused = jsonl(client, batch.error_file_id or "")
    assert len(refused) == counts.failed
    for row in refused.values():
        assert row["error"]["code"] == "budget_exceeded" and row["response"]["status_code"] == 402
        assert row["response"]["body"]["error"]["type"] == "budget_exceeded"
    usage = _tag_usage(gateway, sub["key"], f"batch:{batch.id}", counts.completed)
    assert usage["requests"] == counts.completed  # refused lines never reached a model
    line_cost = usage["cost_micros"] / counts.completed
    assert usage["cost_micros"] <= CAP_CENTS * 10_000 + CONCURRENCY * line_cost
    # Now over its cap: the edge refuses a new batch before any work.
    file_id = upload(client, [line("late")])

    def refused_now() -> int | None:
        try:
            client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
        except openai.APIStatusError as exc:
            return exc.status_code
        return None

    assert eventually(refused_now, 5) == 402


def test_an_eval_stops_at_the_sub_accounts_cap(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, name="eval-capped", spend_cap_cents=CAP_CENTS)
    dataset = [{"input": f"eval item {i}"} for i in range(40)]
    created = call(gateway, "POST", "/evals", sub["key"], json={
        "name": "capped", "metric": "cost", "dataset": dataset, "candidate_models": ["sim/pricey"]})
    assert created.status_code == 200, created.text
    eval_id = created.json()["id"]
    done = eventually(lambda: (r := call(gateway, "GET", f"/evals/{eval_id}", sub["key"]).json())["status"]
                      in ("completed", "failed") and r, 60, interval_s=0.2)
    refused = [i for i in done["items"] if i["status"] == 402]
    answered = [i for i in done["items"] if i["status"] == 200]
    assert refused and answered and len(refused) + len(answered) == 40
    assert all("spend cap" in i["error"] for i in refused) and all(i["cost_micros"] == 0 for i in refused)
    spent = sum(i["cost_micros"] for i in answered)
    assert spent <= CAP_CENTS * 10_000 + CONCURRENCY * max(i["cost_micros"] for i in answered)


def test_a_rate_limited_sub_account_cannot_flood_batch_creation(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, name="batch-rpm", rate_limit_rpm=1)
    client = gateway.client(sub["key"])
    file_id = upload(client, [line("r")])
    client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    with pytest.raises(openai.RateLimitError):
        client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")


def _upload_items(client: openai.OpenAI, content: bytes) -> str:
    return client.files.create(file=("items.jsonl", io.BytesIO(content)), purpose="evals").id  # type: ignore


def test_an_eval_reads_its_dataset_from_a_file(gateway: Cluster) -> None:
    client = gateway.client()
    items = [{"input": f"file item {i}", "expected": f"Echo: file item {i}"} for i in range(4)]
    file_id = _upload_items(client, "".join(json.dumps(i) + "\n" for i in items).encode())
    created = call(gateway, "POST", "/evals", json={"name": "from-file", "metric": "quality",
                                                    "dataset_file_id": file_id, "candidate_models": ["sim/gpt-sim"]})
    assert created.status_code == 200, created.text
    assert created.json()["dataset_size"] == 4
    eval_id = created.json()["id"]
    done = eventually(lambda: (r := call(gateway, "GET", f"/evals/{eval_id}").json())["status"] == "completed" and r,
                      20, interval_s=0.2)
    (result,) = done["results"]
    assert (result["requests"], result["errors"], result["score"]) == (4, 0, 1.0)

    bad_line = _upload_items(client, b'{"input": "fine"}\n{"input": 5}\n')
    me, other = create_sub_account(gateway, name="eval-file-me"), create_sub_account(gateway, name="eval-file-peer")
    theirs = _upload_items(gateway.client(other["key"]), b'{"input": "theirs"}\n')
    stranger = call(gateway, "POST", "/evals", me["key"], json={
        "name": "x", "metric": "cost", "candidate_models": ["sim/gpt-sim"], "dataset_file_id": theirs})
    assert stranger.status_code == 404 and stranger.json()["error"]["param"] == "dataset_file_id"
    base = {"name": "x", "metric": "cost", "candidate_models": ["sim/gpt-sim"]}
    cases = [({**base, "dataset_file_id": bad_line}, 400, "line 2"),
             ({**base, "dataset_file_id": "file-missing"}, 404, "No file"),
             ({**base, "dataset_file_id": "a.b"}, 404, "No file"),
             ({**base, "dataset_file_id": file_id, "dataset": [{"input": "x"}]}, 400, "either"),
             ({**base, "dataset_file_id": _upload_items(client, b"\n\n")}, 400, "no items")]
    for body, status, text in cases:
        response = call(gateway, "POST", "/evals", json=body)
        assert response.status_code == status and text in response.json()["error"]["message"], response.text
