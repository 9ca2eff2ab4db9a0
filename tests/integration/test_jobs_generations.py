"""Video, music and 3D generations as async jobs through the contract's endpoints
(httpx), driven by the jobs service through the router's long-running API against the
simulator's provider wires."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster, eventually
from tests.integration.test_jobs_chat import Receiver, finished, job, post

VIDEO = "sim/video-sim"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with Receiver() as found:
        yield found


def create(gateway: Cluster, path: str = "/videos/generations", key: str | None = None,
           headers: dict[str, str] | None = None, **fields: Any) -> str:
    response = post(gateway, path, key, headers, json={"prompt": "a cat on a skateboard", **fields})
    assert response.status_code == 202, response.text
    assert response.json()["object"] == "job" and response.json()["status"] == "queued"
    return response.json()["id"]


def usage_total(gateway: Cluster, sub_id: str) -> dict[str, Any]:
    return call(gateway, "GET", f"/sub-accounts/{sub_id}/usage").json()["total"]


def test_a_video_job_runs_from_queued_to_a_downloadable_billed_result(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, name="video-maker", spend_cap_cents=10_000)
    job_id = create(gateway, key=sub["key"], model=f"{VIDEO}+job_s=1.5+progress", duration=4,
                    headers={"x-aig-tag": "promo"})
    seen = [job(gateway, job_id, sub["key"])]
    assert seen[0]["status"] in ("queued", "processing") and seen[0]["result"] is None

    def observe() -> dict[str, Any] | None:
        seen.append(job(gateway, job_id, sub["key"]))
        return seen[-1] if seen[-1]["status"] in ("completed", "failed") else None

    done = eventually(observe, 20, interval_s=0.1)
    assert done["status"] == "completed", done
    assert any(s["status"] == "processing" and 0 < (s["progress"] or 0) < 100 for s in seen), seen
    assert (done["modality"], done["progress"], done["tag"]) == ("video", 100.0, "promo")
    (output,) = done["result"]["files"]
    assert output["content_type"] == "video/mp4" and output["bytes"] > 0 and output["url"] == done["result_url"]
    assert done["result_url"] == f"{gateway.base_url}/files/jobs/{job_id}/{output['filename']}"
    downloaded = call(gateway, "GET", done["result_url"].removeprefix(gateway.base_url), sub["key"])
    assert downloaded.status_code == 200 and len(downloaded.content) == output["bytes"]
    # Metered once, under the job's id, at what the job says it cost.
    row = generation(gateway, job_id, key=sub["key"])
    assert row["status"] == 200 and row["tag"] == "promo"
    assert row["cost"]["total_micros"] == done["result"]["cost_micros"]
    total = eventually(lambda: (t := usage_total(gateway, sub["id"]))["requests"] == 1 and t, 10)
    assert total["cost_micros"] == done["result"]["cost_micros"]


@pytest.mark.parametrize(("path", "modality", "content_type"), [
    ("/audio/music", "music", "audio/"), ("/3d/generations", "3d", "model/"),
])
def test_music_and_3d_jobs_pick_a_model_of_their_modality(gateway: Cluster, path: str, modality: str,
                                                          content_type: str) -> None:
    done = finished(gateway, create(gateway, path, duration=5))
    assert done["status"] == "completed" and done["modality"] == modality, done
    assert done["result"]["files"][0]["content_type"].startswith(content_type)
    assert done["result"]["cost_micros"] > 0
    assert generation(gateway, done["id"])["cost"]["total_micros"] == done["result"]["cost_micros"]


def test_ai_stats_music_surface(gateway: Cluster) -> None:
    job_id = create(gateway, "/music/generate", duration=3)
    done = eventually(lambda: (j := call(gateway, "GET", f"/music/generate/{job_id}").json())["status"]
                      == "completed" and j, 15, interval_s=0.1)
    assert done["id"] == job_id and done["modality"] == "music" and done["result_url"]
    video_id = create(gateway)
    assert call(gateway, "GET", f"/music/generate/{video_id}").status_code == 404  # a video is not music


def test_a_provider_failure_fails_the_job_with_its_reason_and_bills_nothing(gateway: Cluster,
                                                                           hook: Receiver) -> None:
    job_id = create(gateway, model=f"{VIDEO}+fail", webhook_url=hook.url)
    done = finished(gateway, job_id)
    assert done["status"] == "failed" and done["result"] is None and done["result_url"] is None, done
    assert done["error"]["message"] and done["error"]["code"]
    events = eventually(lambda: [b for b in hook.bodies if b["type"] == "job.failed"], 10)
    assert events[0]["data"]["id"] == job_id and events[0]["data"]["error"] == done["error"]
    assert eventually(lambda: job(gateway, job_id)["webhook_delivered"] is True, 10)
    assert call(gateway, "GET", "/generations", params={"id": job_id}).status_code == 404


def test_cancelling_a_running_job_stops_it_unbilled(gateway: Cluster) -> None:
    job_id = create(gateway, model=f"{VIDEO}+job_s=30+progress")
    eventually(lambda: job(gateway, job_id)["status"] == "processing", 10)
    cancelled = call(gateway, "DELETE", f"/jobs/{job_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["error"]["code"] == "cancelled"
    again = call(gateway, "DELETE", f"/jobs/{job_id}")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]
    assert job(gateway, job_id)["status"] == "cancelled"
    assert call(gateway, "GET", "/generations", params={"id": job_id}).status_code == 404


def test_a_video_with_webhook_url_reports_its_delivery(gateway: Cluster, hook: Receiver) -> None:
    job_id = create(gateway, model=VIDEO, webhook_url=hook.url)
    assert finished(gateway, job_id)["status"] == "completed"
    events = eventually(lambda: [b for b in hook.bodies if b["type"] == "job.completed"], 10)
    data = events[0]["data"]
    assert data["result"]["cost_micros"] > 0
    assert data["id"] == job_id and data["result_url"].startswith(gateway.base_url) and data["result"]["files"]
    assert eventually(lambda: job(gateway, job_id)["webhook_delivered"] is True, 10)


@pytest.mark.parametrize(("body", "param"), [
    ({}, "prompt"), ({"prompt": ""}, "prompt"), ({"prompt": 3}, "prompt"), ({"prompt": "x" * 32_001}, "prompt"),
    ({"prompt": "x", "duration": -1}, "duration"),
    ({"prompt": "x", "duration": "long"}, "duration"), ({"prompt": "x", "webhook_url": "ftp://h/x"}, "webhook_url"),
    ({"prompt": "x", "webhook_url": "//no-scheme"}, "webhook_url"), ({"prompt": "x", "model": 7}, "model"),
])
def test_generation_bodies_are_validated(gateway: Cluster, body: dict[str, Any], param: str) -> None:
    for path in ("/videos/generations", "/audio/music", "/3d/generations", "/music/generate"):
        response = post(gateway, path, json=body)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["param"] == param, (path, response.json())


def test_malformed_and_empty_bodies_are_400(gateway: Cluster) -> None:
    for content in (b"", b"{", b"[1, 2]", b"\xff\xfe", b'"prompt"'):
        response = post(gateway, "/videos/generations", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error", content
    assert post(gateway, "/videos/generations", "sk-aig-wrong", json={"prompt": "x"}).status_code == 401


def test_an_unknown_model_fails_the_job_not_the_gateway(gateway: Cluster) -> None:
    done = finished(gateway, create(gateway, model="nobody/no-such-video"))
    assert done["status"] == "failed" and done["error"]["message"]


def test_idempotent_generation_creates(gateway: Cluster) -> None:
    headers = {"Idempotency-Key": "one-video-please"}
    first = create(gateway, headers=headers, model=VIDEO)
    assert create(gateway, headers=headers, model=VIDEO) == first
    changed = post(gateway, "/videos/generations", headers=headers, json={"prompt": "a dog", "model": VIDEO})
    assert changed.status_code == 409 and changed.json()["error"]["param"] == "Idempotency-Key"
    listed = call(gateway, "GET", "/jobs", params={"modality": "video", "limit": 100}).json()["data"]
    assert [j["id"] for j in listed].count(first) == 1


def test_generation_jobs_are_isolated_and_admitted(gateway: Cluster) -> None:
    alice = create_sub_account(gateway, name="alice-gen", spend_cap_cents=10_000)
    bob = create_sub_account(gateway, name="bob-gen", spend_cap_cents=10_000, rate_limit_rpm=1)
    job_id = create(gateway, key=alice["key"], model=VIDEO)
    assert call(gateway, "GET", f"/jobs/{job_id}", bob["key"]).status_code == 404
    assert call(gateway, "DELETE", f"/jobs/{job_id}", bob["key"]).status_code == 404
    assert call(gateway, "GET", f"/files/jobs/{job_id}/video.mp4", bob["key"]).status_code == 404
    assert job_id not in [j["id"] for j in call(gateway, "GET", "/jobs", bob["key"]).json()["data"]]
    assert job_id in [j["id"] for j in call(gateway, "GET", "/jobs", alice["key"]).json()["data"]]
    create(gateway, key=bob["key"], model=VIDEO)
    limited = post(gateway, "/videos/generations", bob["key"], json={"prompt": "again", "model": VIDEO})
    assert limited.status_code == 429 and limited.headers.get("Retry-After")
