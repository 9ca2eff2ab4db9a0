"""services/router/metrics.py: what one metered request, first chunk and failed attempt
write, bounded labels, and the breaker states read at scrape time."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.contracts.bus.cache import CACHE_STATUS_HIT, CACHE_STATUS_MISS
from libs.contracts.bus.inference import Cost, DispatchMeta, InferenceRequest, Principal, Usage
from libs.runtime.metrics_dir import MULTIPROC_ENV
from services.router.catalog import DEFAULT_CATALOG, Catalog, Route
from services.router.health import HealthBook
from services.router.metrics import RouterMetrics
from services.router.providers import known_provider_hints
from services.router.providers.base import UpstreamError

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def health() -> HealthBook:
    return HealthBook("r1", failures_to_open=2, cooldown_s=60)


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch, health: HealthBook) -> RouterMetrics:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    return RouterMetrics(Catalog.load(DEFAULT_CATALOG, [], {"openai"}, known_provider_hints()), health)


def samples(metrics: RouterMetrics) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(metrics.render().decode()) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, got), v in found.items() if n == name and wanted <= got)


def _request(model: str, operation: str = "chat") -> InferenceRequest:
    return InferenceRequest(request_id="r", operation=operation, model=model, body=b"{}",
                            principal=Principal("acct_secret", "key_secret", "sa_secret"), tag="tag_secret")


def _route(slug: str, priced: bool = True) -> Route:
    catalog = Catalog.load(DEFAULT_CATALOG, [], {"openai"}, known_provider_hints())
    return catalog.resolve(slug) if priced else Route(slug, "openai", slug.partition("/")[2])


def _meta(slug: str, cache_status: str | None = None) -> DispatchMeta:
    return DispatchMeta(model=slug, provider="openai", upstream_latency_ms=200.0, usage=Usage(12, 5),
                        cost=Cost(total_micros=1234), cache_status=cache_status)


def test_a_request_writes_every_series_once(metrics: RouterMetrics) -> None:
    slug = "openai/gpt-4o-mini"
    metrics.request(_request(slug), _route(slug), _meta(slug, CACHE_STATUS_MISS), 200, None, 250.0, False)
    found = samples(metrics)
    genai = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": slug,
             "gen_ai_response_model": slug}
    assert value(found, "switchboard_router_requests_total", **genai, status="200", error_type="", cache="miss") == 1
    assert value(found, "gen_ai_client_token_usage_sum", **genai, gen_ai_token_type="input") == 12
    assert value(found, "gen_ai_client_token_usage_sum", **genai, gen_ai_token_type="output") == 5
    assert value(found, "gen_ai_client_operation_duration_seconds_sum", **genai, error_type="") == pytest.approx(0.2)
    assert value(found, "switchboard_router_request_duration_seconds_sum") == pytest.approx(0.25)
    assert value(found, "switchboard_router_added_latency_seconds_sum") == pytest.approx(0.05)
    assert value(found, "switchboard_router_cost_micros_total", gen_ai_response_model=slug) == 1234
    assert value(found, "switchboard_router_cache_misses_total") == 1
    assert value(found, "switchboard_router_cache_hits_total") == 0
    text = metrics.render().decode()
    assert "secret" not in text  # no account, key, sub-account or tag in any label


def test_a_cache_hit_is_no_provider_call(metrics: RouterMetrics) -> None:
    slug = "openai/gpt-4o-mini"
    metrics.request(_request(slug), _route(slug), _meta(slug, CACHE_STATUS_HIT), 200, None, 3.0, True)
    found = samples(metrics)
    assert value(found, "switchboard_router_requests_total", cache="hit") == 1
    assert value(found, "switchboard_router_cache_hits_total", gen_ai_operation_name="chat") == 1
    assert value(found, "switchboard_router_cost_micros_total") == 1234  # billed all the same
    assert value(found, "gen_ai_client_token_usage_count") == 0
    assert value(found, "gen_ai_client_operation_duration_seconds_count") == 0
    assert value(found, "switchboard_router_added_latency_seconds_count") == 0


def test_models_outside_the_catalog_are_one_label(metrics: RouterMetrics) -> None:
    for name in ("openai/made-up-1", "openai/made-up-2", "eval:winner", "openai/x" * 40):
        metrics.request(_request(name), _route(name, priced=False), _meta(name), 404, "model_not_found", 9.0, False)
    metrics.request(_request("auto"), _route("openai/gpt-4o-mini"), _meta("openai/gpt-4o-mini"), 200, None, 9.0,
                    False)
    found = samples(metrics)
    requested = {dict(labels)["gen_ai_request_model"] for (name, labels) in found
                 if name == "switchboard_router_requests_total"}
    assert requested == {"_OTHER", "auto"}
    assert value(found, "switchboard_router_requests_total", gen_ai_response_model="_OTHER", status="404",
                 error_type="model_not_found") == 4
    assert value(found, "switchboard_router_added_latency_seconds_count") == 1  # successes only


def test_tokens_only_where_units_are_tokens(metrics: RouterMetrics) -> None:
    slug = "openai/gpt-image-1"
    metrics.request(_request(slug, "images.generations"), _route(slug, priced=False), _meta(slug), 200, None, 9.0,
                    False)
    found = samples(metrics)
    assert value(found, "switchboard_router_requests_total", gen_ai_operation_name="images.generations") == 1
    assert value(found, "gen_ai_client_token_usage_count") == 0


def test_first_chunks_and_upstream_errors(metrics: RouterMetrics) -> None:
    slug = "openai/gpt-4o-mini"
    route = _route(slug)
    metrics.first_chunk(_request(slug), route, 0.0)
    metrics.upstream_error(route, UpstreamError("status", "boom", status=500))
    metrics.upstream_error(route, UpstreamError("status", "boom", status=500))
    metrics.upstream_error(route, UpstreamError("timeout", "slow"))
    found = samples(metrics)
    assert value(found, "gen_ai_client_operation_time_to_first_chunk_seconds_count", gen_ai_request_model=slug) == 1
    errors = "switchboard_router_upstream_errors_total"
    assert value(found, errors, gen_ai_provider_name="openai", kind="status", http_status="500") == 2
    assert value(found, errors, kind="timeout", http_status="") == 1


def test_breaker_states_cover_catalogued_deployments_only(metrics: RouterMetrics, health: HealthBook) -> None:
    for _ in range(2):
        health.record("openai/gpt-4o-mini", False, 5.0)
        health.record("openai/passed-through", False, 5.0)
    found = samples(metrics)
    states = {dict(labels)["deployment"]: v for (name, labels), v in found.items()
              if name == "switchboard_router_breaker_state"}
    assert states["openai/gpt-4o-mini"] == 2  # open
    assert "openai/passed-through" not in states
    assert states and all(v == 0 for d, v in states.items() if d != "openai/gpt-4o-mini")
