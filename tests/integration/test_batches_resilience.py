"""Batches on private clusters: a jobs replica killed mid-batch (another finishes it, each
line billed once), and a batch that outlives its completion window."""

from collections.abc import Iterator

import pytest

from tests.integration.api import call
from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster
from tests.integration.test_batches import CHAT, jsonl, line, upload, wait_done


@pytest.fixture
def slow_batches() -> Iterator[Cluster]:
    # Two lines at a time and a short ack wait: a batch abandoned by a killed replica comes back quickly.
    cluster = start_cluster(extra_env={"SWITCHBOARD_JOBS_ACK_WAIT_S": "2", "SWITCHBOARD_BATCH_CONCURRENCY": "2"})
    yield cluster
    cleanup(cluster)


@pytest.fixture
def short_window() -> Iterator[Cluster]:
    cluster = start_cluster(extra_env={"SWITCHBOARD_BATCH_WINDOW_S": "2", "SWITCHBOARD_BATCH_CONCURRENCY": "2"})
    yield cluster
    cleanup(cluster)


def test_a_batch_survives_its_replica_being_killed_and_bills_each_line_once(slow_batches: Cluster) -> None:
    gateway = slow_batches
    client = gateway.client()
    lines = [line(f"k{i}", model="sim/gpt-sim+latency=300", content="same words") for i in range(16)]
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint=CHAT, completion_window="24h")
    eventually(lambda: (client.batches.retrieve(batch.id).request_counts.completed or 0) >= 3, 15)  # type: ignore
    gateway.jobs[0].kill()  # SIGKILL mid-batch: lines in flight, nothing acknowledged
    gateway.start_jobs()
    done = wait_done(client, batch.id, 40)
    assert done.status == "completed" and done.request_counts.completed == 16  # type: ignore[union-attr]
    output = jsonl(client, done.output_file_id or "")
    assert set(output) == {f"k{i}" for i in range(16)}
    assert {row["response"]["request_id"] for row in output.values()} == {f"{batch.id}-{i}" for i in range(16)}

    def billed() -> dict[str, int] | None:
        rows = call(gateway, "GET", "/usage/by-tag").json()["data"]
        found = [r for r in rows if r["group"] == f"batch:{batch.id}"]
        return found[0] if found and found[0]["requests"] >= 16 else None

    row = eventually(billed, 10)
    assert row["requests"] == 16  # a line re-run after the kill kept its request id: one usage row
    each = call(gateway, "GET", "/generations", params={"id": f"{batch.id}-0"}).json()["cost"]["total_micros"]
    assert row["cost_micros"] == 16 * each
    upstream = [r for r in gateway.sim_journal() if "same words" in str(r)]
    assert 16 <= len(upstream) <= 16 + 2  # at most the two lines in flight at the kill ran twice upstream


def test_a_batch_past_its_window_expires_with_partial_results(short_window: Cluster) -> None:
    client = short_window.client()
    lines = [line(f"w{i}", model="sim/gpt-sim+latency=400") for i in range(30)]
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint=CHAT, completion_window="24h")
    assert batch.expires_at - batch.created_at == 2
    done = wait_done(client, batch.id, 30)
    assert done.status == "expired" and done.expired_at
    counts = done.request_counts
    assert counts is not None and 0 < counts.completed < 30 and counts.completed + counts.failed == 30
    assert len(jsonl(client, done.output_file_id or "")) == counts.completed
    expired = jsonl(client, done.error_file_id or "")
    assert len(expired) == counts.failed
    assert {row["error"]["code"] for row in expired.values()} == {"batch_expired"}
    assert all(row["response"] is None for row in expired.values())
