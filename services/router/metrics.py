"""The router's metrics: every metered request (Dispatcher._meter), its first streamed chunk,
every failed upstream attempt, and breaker states read at scrape time.

GenAI semantic-convention names where they apply (gen_ai_client_*, labels gen_ai_*), measured
on the router's call to the provider, which is the GenAI client. Model labels take only
catalogued models (else `_OTHER`): a model outside the catalog is passed through to its provider
under any name a client sends, and a label must not grow with what clients send. No label
carries an account, key, tag or sub-account.
"""

import time
from collections.abc import Iterator
from typing import NamedTuple

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from libs.contracts.bus.cache import CACHE_STATUS_MISS
from libs.contracts.bus.inference import OP_CHAT, OP_EMBEDDINGS, DispatchMeta, InferenceRequest
from libs.contracts.http.chat import AUTO_MODEL
from libs.runtime.metrics import (
    GENAI_DURATION_BUCKETS,
    GENAI_FIRST_CHUNK_BUCKETS,
    GENAI_TOKEN_BUCKETS,
    LATENCY_BUCKETS,
    OTHER,
    OVERHEAD_BUCKETS,
    PICKUP_BUCKETS,
    Metrics,
)
from libs.runtime.metrics_buffer import CounterTally, HistogramTally
from services.router.catalog import Catalog, Route, RouteError
from services.router.health import HealthBook
from services.router.providers.base import UpstreamError

_TOKEN_OPERATIONS = frozenset({OP_CHAT, OP_EMBEDDINGS})  # units are tokens (images, seconds elsewhere)
_BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
_GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model")


class _Series(NamedTuple):
    """The children one label combination writes to, looked up once per combination."""

    requests: CounterTally
    total: HistogramTally
    added: HistogramTally
    duration: HistogramTally
    input_tokens: HistogramTally
    output_tokens: HistogramTally
    cost: CounterTally


class RouterMetrics(Metrics):
    def __init__(self, catalog: Catalog, health: HealthBook) -> None:
        super().__init__("router")
        self._catalog = catalog
        self._requests = self.counter(
            "switchboard_router_requests", "Inference requests answered by the router.",
            (*_GENAI, "status", "error_type", "cache"))
        self._total = self.histogram(
            "switchboard_router_request_duration_seconds",
            "From the router receiving a request to its last byte sent back (retries and failover included).",
            ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_response_model"), LATENCY_BUCKETS)
        self._added = self.histogram(
            "switchboard_router_added_latency_seconds",
            "What the gateway added to a successful provider call: total minus upstream latency.",
            ("gen_ai_operation_name", "gen_ai_provider_name"), OVERHEAD_BUCKETS)
        self._duration = self.histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration: the provider call (for a stream, until its last chunk).",
            (*_GENAI, "error_type"), GENAI_DURATION_BUCKETS)
        self._first_chunk = self.histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "From the router receiving a streamed request to its first chunk sent to the edge.",
            _GENAI, GENAI_FIRST_CHUNK_BUCKETS)
        self._tokens = self.histogram(
            "gen_ai_client_token_usage", "Tokens per provider call (chat and embeddings), by token type.",
            (*_GENAI, "gen_ai_token_type"), GENAI_TOKEN_BUCKETS)
        self._cost = self.counter(
            "switchboard_router_cost_micros", "What requests were charged, integer micro-dollars (cache hits too).",
            ("gen_ai_provider_name", "gen_ai_response_model"))
        self._upstream_errors = self.counter(
            "switchboard_router_upstream_errors", "Failed provider attempts (every retry counts), by kind.",
            ("gen_ai_provider_name", "kind", "http_status"))
        self._cache_hits = self.counter(
            "switchboard_router_cache_hits", "Requests answered from the response cache.", ("gen_ai_operation_name",))
        self._cache_misses = self.counter(
            "switchboard_router_cache_misses", "Cacheable requests the cache could not answer.",
            ("gen_ai_operation_name",))
        # Unlabelled, its one series looked up once: the burst-admission figure (issue 10).
        self._pickup = self.histogram(
            "switchboard_router_pickup_seconds",
            "From the edge beginning to serve a request to a router starting on it: admission, the bus "
            "and the router's backlog (edge and router clocks; 0 when they disagree).", (), PICKUP_BUCKETS).labels()
        self._series: dict[tuple[str, str, str, str, int, str, str], _Series] = {}
        self._first: dict[tuple[str, str, str, str], HistogramTally] = {}
        self.at_scrape(BreakerStates(catalog, health))

    def model(self, slug: str) -> str:
        return slug if slug == AUTO_MODEL or self._catalog.catalogued(slug) else OTHER

    def _series_of(self, key: tuple[str, str, str, str, int, str, str]) -> _Series:
        series = self._series.get(key)
        if series is None:
            operation, provider, requested, model, status, error_type, cache = key
            genai = (operation, provider, requested, model)
            series = self._series[key] = _Series(
                self._requests.labels(*genai, status, error_type, cache),
                self._total.labels(operation, provider, model),
                self._added.labels(operation, provider),
                self._duration.labels(*genai, error_type),
                self._tokens.labels(*genai, "input"),
                self._tokens.labels(*genai, "output"),
                self._cost.labels(provider, model))
        return series

    def request(self, request: InferenceRequest, route: Route, meta: DispatchMeta, status: int,
                error_type: str | None, total_ms: float, cache_hit: bool) -> None:
        """One metered request, where the router writes its usage event."""
        # "" when the request was not cacheable (x-cache skip, a sampled chat)
        cache = "hit" if cache_hit else "miss" if meta.cache_status == CACHE_STATUS_MISS else ""
        series = self._series_of((request.operation, route.provider, self.model(request.model),
                                  self.model(route.slug), status, error_type or "", cache))
        series.requests.inc()
        series.total.observe(total_ms / 1000)
        if meta.cost is not None and meta.cost.total_micros:
            series.cost.inc(meta.cost.total_micros)
        if cache_hit:
            self._cache_hits.labels(request.operation).inc()
            return  # no provider call: nothing for the GenAI client metrics
        if cache == "miss":
            self._cache_misses.labels(request.operation).inc()
        series.duration.observe(meta.upstream_latency_ms / 1000)
        if status < 400:
            series.added.observe(max(total_ms - meta.upstream_latency_ms, 0.0) / 1000)
        usage = meta.usage
        if usage is not None and request.operation in _TOKEN_OPERATIONS:
            series.input_tokens.observe(usage.input_units)
            series.output_tokens.observe(usage.output_units)

    def first_chunk(self, request: InferenceRequest, route: Route, received: float) -> None:
        """The first chunk of a stream went to the edge (`received`: perf_counter at arrival)."""
        key = (request.operation, route.provider, self.model(request.model), self.model(route.slug))
        child = self._first.get(key)
        if child is None:
            child = self._first[key] = self._first_chunk.labels(*key)
        child.observe(time.perf_counter() - received)

    def picked_up(self, edge_received_ns: int) -> None:
        self._pickup.observe(max(time.time_ns() - edge_received_ns, 0) / 1e9)

    def upstream_error(self, route: Route, exc: UpstreamError) -> None:
        self._upstream_errors.labels(route.provider, exc.kind, exc.status or "").inc()


class BreakerStates:
    """Each catalogued deployment's breaker, worst over the router replicas (the merged health
    view /v1/health/providers shows): 0 closed, 1 half-open, 2 open."""

    def __init__(self, catalog: Catalog, health: HealthBook) -> None:
        self._catalog = catalog
        self._health = health
        self._deployments: dict[str, str] | None = None  # deployment key -> provider; the catalog is fixed

    def _known(self) -> dict[str, str]:
        if self._deployments is None:
            known: dict[str, str] = {}
            for card in self._catalog.listing().data:
                try:
                    known.update((route.key, route.provider) for route in self._catalog.plan(card.id).deployments)
                except RouteError:
                    continue
            self._deployments = known
        return self._deployments

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("switchboard_router_breaker_state",
                                   "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open.",
                                   labels=("deployment", "gen_ai_provider_name"))
        states = {row.deployment: row.state for row in self._health.merged().data}
        for deployment, provider in sorted(self._known().items()):
            family.add_metric((deployment, provider), _BREAKER_VALUES[states.get(deployment, "closed")])
        yield family
