"""Async jobs when parts of the gateway die: a jobs replica SIGKILLed mid-job, the router
away while a job waits to be submitted; and hundreds of jobs in flight on a replica with
a handful of poll slots."""

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.api import call, create_sub_account
from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster
from tests.integration.test_jobs_chat import finished, job, post

IN_FLIGHT = 300


@pytest.fixture(scope="module")
def jobs_cluster() -> Iterator[Cluster]:
    # A short ack wait: work abandoned by a killed replica comes back within the test.
    cluster = start_cluster(extra_env={"SWITCHBOARD_JOBS_ACK_WAIT_S": "2", "SWITCHBOARD_JOBS_POLL_CONCURRENCY": "4"})
    yield cluster
    cleanup(cluster)


def _create(gateway: Cluster, path: str, key: str | None = None, **body: Any) -> str:
    response = post(gateway, path, key, json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _requests_billed(gateway: Cluster, sub_id: str) -> int:
    return call(gateway, "GET", f"/sub-accounts/{sub_id}/usage").json()["total"]["requests"]


def test_a_job_survives_its_replica_being_killed_and_is_billed_once(jobs_cluster: Cluster) -> None:
    gateway = jobs_cluster
    sub = create_sub_account(gateway, name="survivor", spend_cap_cents=100_000)
    video = _create(gateway, "/videos/generations", sub["key"], prompt="long take", model="sim/video-sim+job_s=3")
    chat = _create(gateway, "/chat/completions", sub["key"], model="sim/gpt-sim+latency=1500",
                   messages=[{"role": "user", "content": "slow"}], webhook_url="https://example.com/hook")
    eventually(lambda: job(gateway, video, sub["key"])["status"] == "processing"
               and job(gateway, chat, sub["key"])["status"] == "processing", 10)
    gateway.jobs[0].kill()  # SIGKILL: nothing acknowledged, nothing cleaned up
    gateway.start_jobs()
    assert finished(gateway, video, sub["key"], timeout_s=30)["status"] == "completed"
    done = finished(gateway, chat, sub["key"], timeout_s=30)
    assert done["status"] == "completed" and done["result"]["choices"], done
    assert eventually(lambda: _requests_billed(gateway, sub["id"]) == 2, 10)
    listed = call(gateway, "GET", "/jobs", sub["key"]).json()["data"]
    assert sorted(j["id"] for j in listed) == sorted([video, chat])  # one job each, not two


def test_a_job_cancelled_while_queued_is_never_submitted(jobs_cluster: Cluster) -> None:
    gateway = jobs_cluster
    sub = create_sub_account(gateway, name="canceller", spend_cap_cents=100_000)
    for router in gateway.routers:
        router.kill()
    gateway.routers.clear()
    try:
        job_id = _create(gateway, "/videos/generations", sub["key"], prompt="never-submitted-prompt",
                         model="sim/video-sim")
        queued = eventually(lambda: (j := job(gateway, job_id, sub["key"]))["attempts"] >= 2 and j, 10)
        assert queued["status"] == "queued"  # the router is away: submit is retried, counted in attempts
        cancelled = call(gateway, "DELETE", f"/jobs/{job_id}", sub["key"])
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    finally:
        gateway.start_router()
    canary = _create(gateway, "/videos/generations", sub["key"], prompt="canary", model="sim/video-sim")
    assert finished(gateway, canary, sub["key"])["status"] == "completed"  # the router is back and polled
    assert job(gateway, job_id, sub["key"])["status"] == "cancelled"
    assert "never-submitted-prompt" not in str(gateway.sim_journal())
    assert eventually(lambda: _requests_billed(gateway, sub["id"]) == 1, 10)  # the canary only


def test_hundreds_of_jobs_in_flight_hold_no_slot_each(jobs_cluster: Cluster) -> None:
    gateway = jobs_cluster
    sub = create_sub_account(gateway, name="crowd", spend_cap_cents=1_000_000)

    # One pooled client: a client per call spends ~50 ms building its TLS context here, and the jobs
    # (4 s each) would then finish about as fast as they are created.
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {sub['key']}"},
                      timeout=15, limits=httpx.Limits(max_connections=8)) as http:

        def one(index: int) -> str:
            response = http.post("/3d/generations", json={"prompt": f"asset {index}",
                                                          "model": "fal/fal-ai/trellis+job_s=4"})
            assert response.status_code == 202, response.text
            return response.json()["id"]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ids = set(pool.map(one, range(IN_FLIGHT)))
    assert len(ids) == IN_FLIGHT

    def statuses() -> list[str]:
        listed: list[dict[str, Any]] = []
        after = None
        while True:
            params = {"limit": 100, "modality": "3d", **({"after": after} if after else {})}
            page = call(gateway, "GET", "/jobs", sub["key"], params=params).json()
            listed += page["data"]
            if not page["has_more"]:
                return [j["status"] for j in listed if j["id"] in ids]
            after = page["last_id"]

    # Far more jobs wait on the provider at once than the replica has poll slots (4).
    assert eventually(lambda: statuses().count("processing") > 50, 30, interval_s=0.3)
    assert eventually(lambda: statuses().count("completed") == IN_FLIGHT, 90, interval_s=1.0)


def test_job_endpoints_answer_503_without_a_jobs_service(jobs_cluster: Cluster) -> None:
    gateway = jobs_cluster
    for proc in gateway.jobs:
        proc.kill()
    gateway.jobs.clear()
    try:
        for method, path, body in (("POST", "/videos/generations", {"prompt": "x"}), ("GET", "/jobs", None),
                                   ("GET", "/jobs/job_x", None), ("DELETE", "/jobs/job_x", None),
                                   ("GET", "/videos/job_x/content", None)):
            response = call(gateway, method, path, json=body)
            assert response.status_code == 503, (method, path, response.text)
            assert "jobs service" in response.json()["error"]["message"]
    finally:
        gateway.start_jobs()
