"""Request snapshots and POST /v1/replays, end to end: a request made through the
gateway is re-run on another model and compared."""

from typing import Any

import httpx

from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster, eventually

USER = [{"role": "user", "content": "the quick brown fox jumps over the lazy dog"}]


def _chat(gateway: Cluster, key: str | None = None, model: str = "sim/pricey", **kwargs: Any) -> str:
    raw = gateway.client(key=key).chat.completions.with_raw_response.create(model=model, messages=USER, **kwargs)
    if kwargs.get("stream"):
        for _ in raw.parse():
            pass
    request_id = raw.headers["X-Request-Id"]
    generation(gateway, request_id, key=key)  # stored, with its snapshot
    return request_id


def _replay(gateway: Cluster, key: str | None = None, **body: Any) -> httpx.Response:
    return call(gateway, "POST", "/replays", key, json=body)


def test_replay_diffs_cost_latency_and_output(gateway: Cluster) -> None:
    source_id = _chat(gateway)
    response = _replay(gateway, source_request_id=source_id, target_model="sim/gpt-sim")
    assert response.status_code == 200, response.text
    replay = response.json()
    assert replay["object"] == "replay" and replay["id"].startswith("rpl_") and replay["status"] == "completed"
    source, target, diff = replay["source"], replay["target"], replay["diff"]
    assert (source["request_id"], source["model"], target["model"]) == (source_id, "sim/pricey", "sim/gpt-sim")
    assert source["output"] == target["output"] == "Echo: " + USER[0]["content"]
    assert diff["output_identical"] is True and diff["output_similarity"] == 1.0 and diff["output_diff"] == ""
    # sim/pricey costs 1000x sim/gpt-sim per token, for the same tokens.
    assert source["cost_micros"] > target["cost_micros"] > 0
    assert diff["cost_delta_cents"] < 0 and 0 < diff["cost_ratio"] < 0.01
    assert diff["latency_delta_ms"] == round(target["latency_ms"] - source["latency_ms"], 3)
    # The replay is a request like any other: metered and billed to the caller, tagged "replay".
    billed = generation(gateway, target["request_id"])
    assert billed["tag"] == "replay" and billed["model"] == "sim/gpt-sim"
    assert billed["cost"]["total_micros"] == target["cost_micros"]
    assert call(gateway, "GET", f"/replays/{replay['id']}").json() == replay
    assert replay["id"] in [r["id"] for r in call(gateway, "GET", "/replays").json()["data"]]


def test_replay_of_a_stream_on_a_worse_model_shows_the_difference(gateway: Cluster) -> None:
    source_id = _chat(gateway, model="sim/gpt-sim", stream=True)
    replay = _replay(gateway, source_request_id=source_id, target_model="openai/gpt-sim+truncate=2").json()
    assert replay["status"] == "completed", replay
    assert replay["source"]["output"] == "Echo: " + USER[0]["content"]  # reassembled from the stream
    assert replay["source"]["finish_reason"] == "stop" and replay["target"]["finish_reason"] == "length"
    assert replay["diff"]["output_identical"] is False and replay["diff"]["output_similarity"] < 0.5
    assert replay["diff"]["output_diff"].startswith("--- source\n+++ target\n")


def test_shadow_replay_runs_in_the_background(gateway: Cluster) -> None:
    source_id = _chat(gateway)
    response = _replay(gateway, source_request_id=source_id, target_model="sim/gpt-sim", shadow=True)
    assert response.status_code == 202 and response.json()["status"] == "queued"
    replay_id = response.json()["id"]
    done = eventually(lambda: (r := call(gateway, "GET", f"/replays/{replay_id}").json())["status"] == "completed"
                      and r, 10)
    assert done["shadow"] is True and done["diff"]["output_identical"] is True


def test_a_failing_target_is_recorded_as_a_failed_replay(gateway: Cluster) -> None:
    source_id = _chat(gateway)
    replay = _replay(gateway, source_request_id=source_id, target_model="openai/gpt-sim+status=500").json()
    assert replay["status"] == "failed" and "500" in replay["error"]
    assert replay["target"]["status"] == 502 and replay["diff"] is None


def test_replays_are_scoped_to_their_tenant(gateway: Cluster) -> None:
    alice = create_sub_account(gateway, name="alice")
    bob = create_sub_account(gateway, name="bob")
    alice_request = _chat(gateway, key=alice["key"], model="sim/gpt-sim")
    # Bob cannot replay Alice's request: it reads exactly like an unknown id.
    for source in (alice_request, "req_does_not_exist"):
        refused = _replay(gateway, bob["key"], source_request_id=source, target_model="sim/gpt-sim")
        assert refused.status_code == 404 and refused.json()["error"]["param"] == "source_request_id"
    mine = _replay(gateway, alice["key"], source_request_id=alice_request, target_model="sim/gpt-sim").json()
    assert mine["sub_account_id"] == alice["id"]
    assert call(gateway, "GET", f"/replays/{mine['id']}", bob["key"]).status_code == 404
    assert mine["id"] not in [r["id"] for r in call(gateway, "GET", "/replays", bob["key"]).json()["data"]]
    assert call(gateway, "GET", f"/replays/{mine['id']}", alice["key"]).status_code == 200
    # The account's own keys see every sub-account's replays.
    assert call(gateway, "GET", f"/replays/{mine['id']}").status_code == 200
    assert call(gateway, "GET", "/replays/..%2A").status_code == 404  # an id cannot widen the KV lookup


def test_snapshots_can_be_opted_out(gateway: Cluster) -> None:
    private = create_sub_account(gateway, name="private", snapshots=False)
    assert private["snapshots"] is False
    for request_id in (_chat(gateway, key=private["key"], model="sim/gpt-sim"),
                       _chat(gateway, model="sim/gpt-sim", extra_headers={"x-aig-snapshot": "off"})):
        refused = _replay(gateway, source_request_id=request_id, target_model="sim/gpt-sim")
        assert refused.status_code == 404, refused.text
    patched = call(gateway, "PATCH", f"/sub-accounts/{private['id']}", json={"snapshots": True}).json()
    assert patched["snapshots"] is True
    kept = eventually(lambda: _replay(gateway, source_request_id=_chat(gateway, key=private["key"],
                                                                       model="sim/gpt-sim"),
                                      target_model="sim/gpt-sim").status_code == 200, 5)
    assert kept


def test_a_request_too_large_to_snapshot_cannot_be_replayed(gateway: Cluster) -> None:
    big = [{"role": "user", "content": "word " * 40_000}]  # 200 KB asked, as much echoed: over 384 KiB
    raw = gateway.client().chat.completions.with_raw_response.create(model="sim/gpt-sim", messages=big)
    generation(gateway, raw.headers["X-Request-Id"])
    refused = _replay(gateway, source_request_id=raw.headers["X-Request-Id"], target_model="sim/gpt-sim")
    assert refused.status_code == 422 and "too large" in refused.json()["error"]["message"]


def test_bad_replay_bodies_get_a_400_naming_the_field(gateway: Cluster) -> None:
    for body, param in [({"target_model": "sim/gpt-sim"}, "source_request_id"),
                        ({"source_request_id": "x", "target_model": ""}, "target_model"),
                        ({"source_request_id": "x", "target_model": "m", "shadow": "yes"}, "shadow")]:
        response = _replay(gateway, **body)
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    malformed = call(gateway, "POST", "/replays", content=b"{not json")
    assert malformed.status_code == 400 and malformed.json()["error"]["type"] == "invalid_request_error"
    assert call(gateway, "POST", "/replays", "sk-aig-wrong", json={}).status_code == 401
