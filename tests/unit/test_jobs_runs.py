"""services.jobs.evals and services.jobs.replays: validation, summaries, winners, diffs."""

import msgspec
import pytest

from libs.contracts.http import evals as http
from libs.contracts.http.replays import ReplaySide
from services.jobs.evals import check, item_body, summarise, winner
from services.jobs.inference import chat_body
from services.jobs.replays import compare


def _item(model: str, status: int = 200, score: float | None = None, cost: int = 100,
          latency: float = 10.0) -> http.ItemResult:
    return http.ItemResult(index=0, model=model, status=status, score=score, cost_micros=cost, latency_ms=latency)


def test_summarise_counts_errors_scores_and_nearest_rank_latency() -> None:
    items = [_item("m", score=1.0, latency=30), _item("m", score=0.5, latency=10),
             _item("m", status=502, score=0.0, cost=0, latency=999), _item("m", score=1.0, latency=20)]
    result = summarise("m", items, quality=True)
    assert (result.requests, result.errors, result.score) == (4, 1, 0.625)
    assert (result.cost_micros, result.cost_cents, result.mean_cost_cents) == (300, 0.03, 0.0075)
    # Latency percentiles come from the answered requests only; nearest rank of [10, 20, 30].
    assert (result.p50_latency_ms, result.p95_latency_ms) == (20, 30)
    assert summarise("m", items, quality=False).score is None


def _result(model: str, errors: int = 0, score: float | None = None, cost: float = 1.0,
            p50: float | None = 10.0) -> http.ModelResult:
    return http.ModelResult(model=model, requests=10, errors=errors, score=score, cost_micros=0, cost_cents=0,
                            mean_cost_cents=cost, p50_latency_ms=p50, p95_latency_ms=p50)


def test_winner_by_metric() -> None:
    results = [_result("a", score=0.9, cost=5, p50=50), _result("b", score=0.7, cost=1, p50=20),
               _result("c", score=0.9, cost=3, p50=90)]
    assert winner("quality", results) == "c"  # tie on score: the cheaper
    assert winner("cost", results) == "b"
    assert winner("speed", results) == "b"


def test_unreliable_models_do_not_win_on_cost_or_speed() -> None:
    results = [_result("flaky", errors=5, cost=0.1, p50=1), _result("solid", cost=9, p50=90)]
    assert winner("cost", results) == "solid" and winner("speed", results) == "solid"
    assert winner("cost", [_result("dead", errors=10, p50=None)]) is None
    assert winner("quality", [_result("unjudged", score=None)]) is None  # answered, but no score at all


def _spec(**fields: object) -> http.EvalCreate:
    body = {"name": "n", "metric": "cost", "candidate_models": ["a/b"], "dataset": [{"input": "x"}], **fields}
    return msgspec.convert(body, http.EvalCreate)


@pytest.mark.parametrize(("fields", "param"), [
    ({"candidate_models": ["a/b", "a/b"]}, "candidate_models"),
    ({"candidate_models": ["eval:eval_x"]}, "candidate_models"),
    ({"dataset": [{"input": "x", "messages": [{"role": "user", "content": "y"}]}]}, "dataset[0]"),
    ({"dataset": [{"messages": []}]}, "dataset[0].messages"),
    ({"params": {"model": "x"}}, "params"),
    ({"metric": "quality"}, "dataset"),
    ({"metric": "quality", "scorer": {"type": "judge"}}, "scorer.model"),
    ({"dataset": [{"input": "x"}] * 201, "candidate_models": [f"m/{i}" for i in range(10)]}, "dataset"),
])
def test_check_names_the_field(fields: dict[str, object], param: str) -> None:
    problem = check(_spec(**fields))
    assert problem is not None and problem.error.param == param and problem.error.code == 400


def test_check_accepts_a_good_eval() -> None:
    good = _spec(metric="quality", dataset=[{"input": "x", "expected": "y"}], params={"temperature": 0})
    assert check(good) is None


def test_item_bodies_carry_params_and_never_stream() -> None:
    spec = _spec(params={"temperature": 0, "max_tokens": 5})
    body = msgspec.json.decode(chat_body(item_body(spec, spec.dataset[0]), "a/b"))
    assert body == {"temperature": 0, "max_tokens": 5, "model": "a/b", "messages": [{"role": "user", "content": "x"}]}
    streamed = chat_body(b'{"model": "x", "messages": [], "stream": true, "stream_options": {}}', "y/z")
    assert msgspec.json.decode(streamed) == {"model": "y/z", "messages": []}
    with pytest.raises(ValueError):
        chat_body(b"[1, 2]", "y/z")


def test_compare_reports_deltas_and_a_unified_diff() -> None:
    source = ReplaySide(request_id="s", model="a", output="one\ntwo\n", cost_micros=2000, cost_cents=0.2,
                        latency_ms=100.0)
    target = ReplaySide(request_id="t", model="b", output="one\nthree\n", cost_micros=500, cost_cents=0.05,
                        latency_ms=40.5)
    diff = compare(source, target)
    assert (diff.cost_delta_cents, diff.cost_ratio, diff.latency_delta_ms) == (-0.15, 0.25, -59.5)
    assert not diff.output_identical and 0 < diff.output_similarity < 1
    assert "-two\n+three\n" in diff.output_diff
    free = compare(ReplaySide(request_id="s", model="a", output="x"), ReplaySide(request_id="t", model="b",
                                                                                 output="x"))
    assert free.cost_ratio is None and free.output_identical and free.output_diff == ""


def test_a_diff_of_outputs_without_a_final_newline_keeps_one_line_per_change() -> None:
    diff = compare(ReplaySide(request_id="s", model="a", output="Echo: two"),
                   ReplaySide(request_id="t", model="b", output="Echo: three")).output_diff
    assert diff.splitlines()[-2:] == ["-Echo: two", "+Echo: three"]
    assert diff.startswith("--- source\n+++ target\n") and diff.endswith("\n")
