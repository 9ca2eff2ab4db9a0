"""POST /v1/evals end to end: runs on the jobs service's work queue, scores every
candidate, names a winner, and `model: "eval:<id>"` routes to it."""

from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest

from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster, eventually

WORDS = ["alpha beta gamma delta", "one two three four five", "red green blue"]
DATASET = [{"input": text, "expected": f"Echo: {text}"} for text in WORDS]


def _create(gateway: Cluster, key: str | None = None, **body: Any) -> httpx.Response:
    return call(gateway, "POST", "/evals", key, json=body)


def _finished(gateway: Cluster, eval_id: str, key: str | None = None, timeout_s: float = 20) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        record = call(gateway, "GET", f"/evals/{eval_id}", key).json()
        return record if record["status"] in ("completed", "failed") else None

    return eventually(done, timeout_s, interval_s=0.1)


def test_quality_eval_scores_candidates_and_routes_to_the_winner(gateway: Cluster) -> None:
    created = _create(gateway, name="echo quality", metric="quality", dataset=DATASET,
                      candidate_models=["openai/gpt-sim+truncate=2", "openai/gpt-sim"])
    assert created.status_code == 200, created.text
    record = created.json()
    assert record["object"] == "eval" and record["status"] in ("queued", "running", "completed")
    assert record["scorer"]["type"] == "exact" and record["dataset_size"] == 3
    done = _finished(gateway, record["id"])
    assert done["status"] == "completed" and done["winner_model"] == "openai/gpt-sim"
    results = {r["model"]: r for r in done["results"]}
    assert results["openai/gpt-sim"]["score"] == 1.0 and results["openai/gpt-sim+truncate=2"]["score"] == 0.0
    assert all(r["requests"] == 3 and r["errors"] == 0 and r["p50_latency_ms"] > 0 for r in results.values())
    assert len(done["items"]) == 6 and {i["output"] for i in done["items"] if i["model"] == "openai/gpt-sim"} == {
        f"Echo: {text}" for text in WORDS}
    # Every run was a metered request, tagged with the eval.
    journal = [e for e in gateway.sim_journal() if "gpt-sim" in str(e.get("body", ""))]
    assert len(journal) >= 6
    # The alias routes to the winner.
    raw = gateway.client().chat.completions.with_raw_response.create(
        model=f"eval:{done['id']}", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["X-Model"] == "openai/gpt-sim" and raw.parse().choices[0].message.content == "Echo: hi"
    assert generation(gateway, raw.headers["X-Request-Id"])["requested_model"] == f"eval:{done['id']}"
    listed = call(gateway, "GET", "/evals").json()["data"]
    (summary,) = [e for e in listed if e["id"] == done["id"]]
    assert summary["winner_model"] == "openai/gpt-sim" and summary["items"] == []


def test_speed_and_cost_evals_pick_the_fastest_and_the_cheapest(gateway: Cluster) -> None:
    speed = _create(gateway, name="speed", metric="speed", dataset=DATASET[:2],
                    candidate_models=["openai/gpt-sim+latency=120", "openai/gpt-sim+latency=5"]).json()
    cost = _create(gateway, name="cost", metric="cost", dataset=DATASET[:2],
                   candidate_models=["sim/pricey", "sim/gpt-sim"]).json()
    speed, cost = _finished(gateway, speed["id"]), _finished(gateway, cost["id"])
    assert speed["winner_model"] == "openai/gpt-sim+latency=5" and speed["scorer"] is None
    slow, fast = speed["results"]
    assert slow["p50_latency_ms"] >= 120 > fast["p50_latency_ms"]
    assert cost["winner_model"] == "sim/gpt-sim"
    pricey, cheap = cost["results"]
    assert pricey["mean_cost_cents"] > cheap["mean_cost_cents"] > 0
    assert pricey["cost_micros"] == sum(i["cost_micros"] for i in cost["items"] if i["model"] == "sim/pricey")


def test_failing_models_score_zero_and_never_win(gateway: Cluster) -> None:
    done = _finished(gateway, _create(gateway, name="faulty", metric="cost", dataset=DATASET[:2],
                                      candidate_models=["openai/gpt-sim+status=400", "sim/gpt-sim"]).json()["id"])
    broken, working = done["results"]
    assert broken["errors"] == 2 and working["errors"] == 0 and done["winner_model"] == "sim/gpt-sim"
    assert all(i["error"] for i in done["items"] if i["model"] == "openai/gpt-sim+status=400")
    nobody = _finished(gateway, _create(gateway, name="all broken", metric="speed", dataset=DATASET[:1],
                                        candidate_models=["openai/gpt-sim+status=400"]).json()["id"])
    assert nobody["status"] == "failed" and nobody["winner_model"] is None and "No candidate" in nobody["error"]
    with pytest.raises(openai.NotFoundError):
        gateway.client().chat.completions.create(model=f"eval:{nobody['id']}", messages=[{"role": "user",
                                                                                           "content": "x"}])


def test_scorers_regex_json_schema_and_judge(gateway: Cluster) -> None:
    regex = _create(gateway, name="regex", metric="quality", dataset=[{"input": "code 42"}],
                    scorer={"type": "regex", "pattern": r"\d+$"},
                    candidate_models=["openai/gpt-sim", "openai/gpt-sim+truncate=2"]).json()
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    json_eval = _create(gateway, name="json", metric="quality", dataset=[{"input": "hello"}],
                        params={"response_format": {"type": "json_object"}},
                        scorer={"type": "json_schema", "json_schema": schema},
                        candidate_models=["openai/gpt-sim", "openai/gpt-sim+plain"]).json()
    judged = _create(gateway, name="judge", metric="quality", dataset=[{"input": "hello", "expected": "hi"}],
                     scorer={"type": "judge", "model": "openai/gpt-sim", "criteria": "polite"},
                     candidate_models=["openai/gpt-sim"]).json()
    regex, json_eval, judged = (_finished(gateway, e["id"]) for e in (regex, json_eval, judged))
    assert [r["score"] for r in regex["results"]] == [1.0, 0.0] and regex["winner_model"] == "openai/gpt-sim"
    assert [r["score"] for r in json_eval["results"]] == [1.0, 0.0], json_eval["items"]
    # The simulated judge fills the grading schema deterministically (score 1 of 10).
    assert judged["status"] == "completed" and judged["results"][0]["score"] == 0.1


def test_a_failing_judge_leaves_items_unscored_and_names_no_winner(gateway: Cluster) -> None:
    done = _finished(gateway, _create(gateway, name="judge down", metric="quality", dataset=[{"input": "hello"}],
                                      scorer={"type": "judge", "model": "openai/gpt-sim+status=400"},
                                      candidate_models=["openai/gpt-sim"]).json()["id"])
    (item,) = done["items"]
    assert item["status"] == 200 and item["score"] is None and item["error"].startswith("judge failed (400)")
    assert done["status"] == "failed" and done["winner_model"] is None


def test_evals_are_scoped_to_their_tenant(gateway: Cluster) -> None:
    alice = create_sub_account(gateway, name="alice")
    bob = create_sub_account(gateway, name="bob")
    mine = _finished(gateway, _create(gateway, alice["key"], name="alice's", metric="cost", dataset=DATASET[:1],
                                      candidate_models=["sim/gpt-sim"]).json()["id"], alice["key"])
    assert mine["sub_account_id"] == alice["id"]
    assert call(gateway, "GET", f"/evals/{mine['id']}", bob["key"]).status_code == 404
    assert mine["id"] not in [e["id"] for e in call(gateway, "GET", "/evals", bob["key"]).json()["data"]]
    with pytest.raises(openai.NotFoundError) as refused:
        gateway.client(key=bob["key"]).chat.completions.create(model=f"eval:{mine['id']}",
                                                               messages=[{"role": "user", "content": "x"}])
    assert refused.value.body["type"] == "model_not_found"  # type: ignore[index]
    assert gateway.client(key=alice["key"]).chat.completions.create(
        model=f"eval:{mine['id']}", messages=[{"role": "user", "content": "x"}]).model


@pytest.mark.parametrize(("body", "param"), [
    ({"name": "x", "metric": "quality", "candidate_models": ["sim/gpt-sim"], "dataset": [{"input": "a"}]},
     "dataset"),  # the exact scorer needs `expected`
    ({"name": "x", "metric": "quality", "candidate_models": ["sim/gpt-sim"], "dataset": [{"input": "a"}],
      "scorer": {"type": "regex", "pattern": "("}}, "scorer.pattern"),
    ({"name": "x", "metric": "fastest", "candidate_models": ["sim/gpt-sim"], "dataset": [{"input": "a"}]}, "metric"),
    ({"name": "x", "metric": "cost", "candidate_models": [], "dataset": [{"input": "a"}]}, "candidate_models"),
    ({"name": "x", "metric": "cost", "candidate_models": ["a/b", "a/b"], "dataset": [{"input": "a"}]},
     "candidate_models"),
    ({"name": "x", "metric": "cost", "candidate_models": ["a/b"], "dataset": []}, "dataset"),
    ({"name": "x", "metric": "cost", "candidate_models": ["a/b"], "dataset": [{"expected": "a"}]}, "dataset[0]"),
    ({"name": "x", "metric": "cost", "candidate_models": ["a/b"], "dataset": [{"input": "a"}],
      "params": {"stream": True}}, "params"),
])
def test_bad_eval_bodies_get_a_400_naming_the_field(gateway: Cluster, body: dict[str, Any], param: str) -> None:
    response = _create(gateway, **body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param, response.json()


def test_unknown_eval_ids(gateway: Cluster) -> None:
    assert call(gateway, "GET", "/evals/eval_nope").status_code == 404
    with pytest.raises(openai.NotFoundError):
        gateway.client().chat.completions.create(model="eval:eval_nope", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("odd", ["à", "a.b", "*", ">", "a b", "x" * 300, "eval_%00"])
@pytest.mark.parametrize("kind", ["evals", "replays"])
def test_odd_ids_are_a_404_in_the_envelope(gateway: Cluster, kind: str, odd: str) -> None:
    response = call(gateway, "GET", f"/{kind}/{quote(odd, safe='')}")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == 404


def test_a_backtracking_regex_scores_the_item_as_failed_with_the_reason(gateway: Cluster) -> None:
    created = _create(gateway, name="redos", metric="quality", dataset=[{"input": "x" * 4000}, {"input": "xxy"}],
                      scorer={"type": "regex", "pattern": r"(x+x+)+y"}, candidate_models=["openai/gpt-sim"])
    assert created.status_code == 200, created.text
    done = _finished(gateway, created.json()["id"])
    stalled, normal = sorted(done["items"], key=lambda i: i["index"])
    assert stalled["score"] == 0.0 and "regex scorer gave up" in (stalled["error"] or ""), stalled
    assert normal["score"] == 1.0 and normal["error"] is None, normal
