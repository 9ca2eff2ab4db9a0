"""Breakers, retry policy and candidate order (services/router/health.py, routing.py)."""

import random

import pytest

from libs.contracts.config import DeploymentConfig, ModelConfig, RouterConfig
from services.router.catalog import DEFAULT_CATALOG, Catalog, Plan, Route
from services.router.health import HealthBook
from services.router.providers.base import UpstreamError
from services.router.routing import RetryPolicy, candidates, retryable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def book(clock: Clock | None = None) -> HealthBook:
    return HealthBook("r1", failures_to_open=3, cooldown_s=10, clock=clock or Clock())


def test_breaker_opens_after_consecutive_failures_and_probes_once() -> None:
    clock = Clock()
    health = book(clock)
    for _ in range(2):
        health.record("p/m", False, 5)
    assert health.allow("p/m")  # two failures: still closed
    health.record("p/m", True, 5)
    for _ in range(3):
        health.record("p/m", False, 5)
    assert not health.allow("p/m") and health.reopens_in("p/m") == 10
    clock.now += 10
    assert health.allow("p/m")  # half-open: one probe
    assert not health.allow("p/m")  # and only one
    health.record("p/m", False, 5)  # probe failed: open again
    assert not health.allow("p/m")
    clock.now += 10
    assert health.allow("p/m")
    health.record("p/m", True, 5)  # probe succeeded: closed
    assert health.allow("p/m") and health.allow("p/m")


def test_snapshot_reports_an_open_breaker_past_its_cooldown_as_half_open() -> None:
    # What /health/providers shows must be what the next call meets: a probe goes through.
    clock = Clock()
    health = book(clock)
    for _ in range(3):
        health.record("p/m", False, 5)
    assert health.snapshot().deployments[0].state == "open"
    clock.now += 10
    assert health.snapshot().deployments[0].state == "half_open"
    assert health.allow("p/m")
    health.record("p/m", False, 5)
    assert health.snapshot().deployments[0].state == "open"


def test_a_probe_that_ends_without_a_verdict_frees_the_slot() -> None:
    # A probe cancelled (its edge gave up) or refused by our own full pool says nothing about the
    # provider: without release() the breaker would stay half-open with its one slot taken, for good.
    clock = Clock()
    health = book(clock)
    for _ in range(3):
        health.record("p/m", False, 5)
    clock.now += 10
    assert health.allow("p/m") and not health.allow("p/m")
    health.release("p/m")
    assert health.allow("p/m") and not health.allow("p/m")
    health.release("x/closed")  # a closed breaker has no slot to free
    assert health.allow("x/closed") and health.allow("x/closed")


def test_snapshot_rates_and_percentiles() -> None:
    health = book()
    for ms in range(1, 21):
        health.record("p/m", True, float(ms))
    health.record("p/m", False, 99)
    (row,) = health.snapshot().deployments
    assert (row.requests, row.failures, row.state) == (21, 1, "closed")
    assert row.success_rate == round(20 / 21, 4)
    assert (row.p50_latency_ms, row.p95_latency_ms) == (10.0, 19.0)


@pytest.mark.parametrize(("exc", "expected"), [
    (UpstreamError("timeout", "t"), True),
    (UpstreamError("connection", "c"), True),
    (UpstreamError("malformed", "m"), True),
    (UpstreamError("malformed", "bad body", status=400), False),
    (UpstreamError("status", "s", status=503), True),
    (UpstreamError("status", "s", status=429), True),
    (UpstreamError("status", "s", status=408), True),
    (UpstreamError("status", "s", status=400), False),
    (UpstreamError("status", "s", status=404), False),
])
def test_retryable(exc: UpstreamError, expected: bool) -> None:
    assert retryable(exc) is expected


def test_retry_policy() -> None:
    policy = RetryPolicy.from_config(RouterConfig(retries=2, backoff_base_ms=100, backoff_max_ms=1000))
    rng = random.Random(1)
    first = policy.delay(0, UpstreamError("status", "s", status=503), rng)
    second = policy.delay(1, UpstreamError("status", "s", status=503), rng)
    assert first is not None and 0.05 <= first <= 0.1 and second is not None and 0.1 <= second <= 0.2
    assert policy.delay(2, UpstreamError("status", "s", status=503), rng) is None  # retries used up
    assert policy.delay(0, UpstreamError("timeout", "t"), rng) is None  # never wait out a timeout twice
    assert policy.delay(0, UpstreamError("status", "s", status=429, retry_after=1), rng) == 1.0
    assert policy.delay(0, UpstreamError("status", "s", status=429, retry_after=30), rng) is None


def _catalog() -> Catalog:
    models = [
        ModelConfig(id="x/ha", upstream="m", input_per_mtok=1.0, fallbacks=["x/backup", "nope/unknown"],
                    deployments=[DeploymentConfig(provider="a", weight=1), DeploymentConfig(provider="b", weight=3),
                                 DeploymentConfig(provider="disabled")]),
        ModelConfig(id="x/backup", upstream="bk", input_per_mtok=1.0, deployments=[DeploymentConfig(provider="c")]),
    ]
    return Catalog.load(DEFAULT_CATALOG, models, {"a", "b", "c", "x"}, {})


def test_candidates_cover_deployments_then_fallbacks() -> None:
    catalog = _catalog()
    plan = catalog.plan("x/ha")
    assert [r.provider for r in plan.deployments] == ["a", "b"]  # the disabled provider is left out
    order = [r.key for r in candidates(catalog, plan, [], book(), random.Random(3))]
    assert sorted(order[:2]) == ["a/m", "b/m"] and order[2:] == ["c/bk"]


def test_candidates_prefer_faster_and_heavier() -> None:
    catalog = _catalog()
    health = book()
    health.record("a/m", True, 5.0)
    health.record("b/m", True, 500.0)
    firsts = [next(candidates(catalog, catalog.plan("x/ha"), [], health, random.Random(seed))).provider
              for seed in range(200)]
    # Power of two choices: whenever both are drawn, the faster one wins.
    assert firsts.count("a") > firsts.count("b") * 0.5


def test_open_breakers_are_skipped_but_never_leave_nothing() -> None:
    catalog = _catalog()
    clock = Clock()
    health = book(clock)
    for _ in range(3):
        health.record("a/m", False, 1)
    assert [r.key for r in candidates(catalog, catalog.plan("x/ha"), [], health, random.Random(0))] == [
        "b/m", "c/bk"]
    for key in ("b/m", "c/bk"):
        for _ in range(3):
            health.record(key, False, 1)
    clock.now += 1
    health.record("b/m", False, 1)  # b reopens last
    forced = list(candidates(catalog, catalog.plan("x/ha"), [], health, random.Random(0)))
    assert len(forced) == 1 and forced[0].key in ("a/m", "c/bk")


def test_request_models_come_before_configured_fallbacks() -> None:
    catalog = _catalog()
    plan = Plan((Route("x/one", "a", "one"),), ("x/backup",))
    order = [r.slug for r in candidates(catalog, plan, ["x/ha"], book(), random.Random(0))]
    assert order[0] == "x/one" and order[1:3] == ["x/ha", "x/ha"] and order[3] == "x/backup"


def test_plan_of_a_model_whose_provider_is_off_is_a_404() -> None:
    from services.router.catalog import RouteError

    catalog = Catalog.load(DEFAULT_CATALOG, [], {"openai"}, {"groq": "GROQ_API_KEY"})
    with pytest.raises(RouteError) as err:
        catalog.plan("groq/llama-3.3-70b-versatile")
    assert err.value.status == 404 and "GROQ_API_KEY" in err.value.message


def _auto_catalog() -> Catalog:
    models = [
        ModelConfig(id="p/cheap", input_per_mtok=0.1, output_per_mtok=0.1, quality=40, capabilities=["chat"]),
        ModelConfig(id="p/mid", input_per_mtok=1.0, output_per_mtok=1.0, quality=70,
                    capabilities=["chat", "tools"]),
        ModelConfig(id="p/best", input_per_mtok=10.0, output_per_mtok=10.0, quality=95,
                    capabilities=["chat", "tools", "vision"]),
        ModelConfig(id="p/unpriced", quality=99, capabilities=["chat", "tools", "vision"]),
        ModelConfig(id="off/x", input_per_mtok=0.0, quality=99, capabilities=["chat"]),
    ]
    return Catalog(models, {"p"}, {})


@pytest.mark.parametrize(("policy", "needs", "first"), [
    ("cost", set(), "p/cheap"),
    ("cost", {"tools"}, "p/mid"),
    ("quality", set(), "p/best"),
    ("auto", set(), "p/mid"),  # cheapest at or above the median quality
    ("cost", {"vision"}, "p/best"),
])
def test_auto_plan(policy: str, needs: set[str], first: str) -> None:
    plan = _auto_catalog().auto_plan("text", needs, policy, lambda _: None)
    assert plan.deployments[0].slug == first


def test_auto_plan_speed_prefers_measured_latency() -> None:
    latencies = {"p/best": 5.0, "p/mid": 50.0}
    plan = _auto_catalog().auto_plan("text", set(), "speed", latencies.get)
    assert plan.deployments[0].slug == "p/best" and plan.fallbacks[0] == "p/mid"


def test_auto_plan_without_a_capable_model_is_404() -> None:
    from services.router.catalog import RouteError

    with pytest.raises(RouteError) as err:
        _auto_catalog().auto_plan("text", {"audio"}, "cost", lambda _: None)
    assert err.value.status == 404 and "audio" in err.value.message


def test_auto_plan_quality_follows_the_latest_eval_over_the_catalog_score() -> None:
    # The caller's eval found p/cheap better than p/best on their data: it now leads, and
    # models the eval did not cover keep their catalog score (p/mid 70 vs p/best's eval 0.6).
    evaluated = {"p/cheap": 0.9, "p/best": 0.6}
    plan = _auto_catalog().auto_plan("text", set(), "quality", lambda _: None, evaluated=evaluated)
    assert plan.deployments[0].slug == "p/cheap" and plan.fallbacks == ("p/mid", "p/best")
