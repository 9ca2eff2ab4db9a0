"""The jobs service (evals, replays) dying, NATS restarting, and the services it
depends on being away."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api import call, generation
from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster

DATASET = [{"input": f"item {i}", "expected": f"Echo: item {i}"} for i in range(6)]


@pytest.fixture
def jobs_gateway() -> Iterator[Cluster]:
    # A short ack wait so a run abandoned by a killed replica is redelivered within the test.
    cluster = start_cluster(extra_env={"SWITCHBOARD_JOBS_ACK_WAIT_S": "2", "SWITCHBOARD_EVAL_CONCURRENCY": "1"})
    yield cluster
    cleanup(cluster)


def _status(gateway: Cluster, eval_id: str) -> dict[str, Any]:
    return call(gateway, "GET", f"/evals/{eval_id}").json()


def _eval(gateway: Cluster, model: str = "openai/gpt-sim+latency=200") -> str:
    response = call(gateway, "POST", "/evals", json={"name": "slow", "metric": "quality", "dataset": DATASET,
                                                     "candidate_models": [model]})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def test_an_eval_survives_its_worker_being_killed_and_nats_restarting(jobs_gateway: Cluster) -> None:
    gateway = jobs_gateway
    eval_id = _eval(gateway)
    eventually(lambda: _status(gateway, eval_id)["status"] == "running", 5)
    gateway.jobs[0].kill()  # mid-run: nothing acknowledged the work
    gateway.start_jobs()
    done = eventually(lambda: (r := _status(gateway, eval_id))["status"] == "completed" and r, 20, interval_s=0.2)
    (result,) = done["results"]
    assert (result["requests"], result["errors"], result["score"]) == (6, 0, 1.0)

    gateway.nats.stop()
    gateway.nats.start()
    second = eventually(lambda: _eval(gateway, "openai/gpt-sim"), 20, interval_s=0.2)
    assert eventually(lambda: _status(gateway, second)["status"] == "completed", 20, interval_s=0.2)


def test_missing_services_give_a_clean_503(jobs_gateway: Cluster) -> None:
    gateway = jobs_gateway
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="sim/gpt-sim", messages=[{"role": "user", "content": "hi"}])
    source = raw.headers["X-Request-Id"]
    generation(gateway, source)
    gateway.ledgers[0].kill()  # snapshots live in the ledger
    refused = call(gateway, "POST", "/replays", json={"source_request_id": source, "target_model": "sim/gpt-sim"})
    assert refused.status_code == 503 and "ledger" in refused.json()["error"]["message"]
    for proc in gateway.jobs:
        proc.kill()
    for method, path, body in [("POST", "/evals", {"name": "x", "metric": "cost", "dataset": [{"input": "a"}],
                                                  "candidate_models": ["sim/gpt-sim"]}),
                               ("GET", "/evals", None), ("GET", "/replays/rpl_x", None)]:
        response = call(gateway, method, path, json=body)
        assert response.status_code == 503, (path, response.text)
        assert "jobs service" in response.json()["error"]["message"]
