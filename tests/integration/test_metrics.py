"""/metrics of every service against the shared gateway: the counters move by exactly the
calls made (read before and after, parsed with prometheus_client's parser), the edge's needs
an admin key (or the metrics token), the health ports' need nothing."""

import json
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterable
from pathlib import Path

import httpx
import msgspec
import openai
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from libs.contracts.bus import events
from libs.contracts.supervision import ProcessStatus, SupervisorStatus
from tests.integration.api import create_sub_account
from tests.integration.cluster import Cluster, eventually
from tests.integration.test_switchboard_up import _up
from tests.integration.webhooks_support import Receiver, Step, emit, new_tenant
from tools.cli.processes import ManagedProcess, free_port, start_module, wait_http_ok

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
CHAT = "/v1/chat/completions"


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def merged(texts: Iterable[str]) -> Samples:
    """Several processes' /metrics as one (a test may have started a second router or edge)."""
    total: Samples = {}
    for text in texts:
        for key, value in parse(text).items():
            total[key] = total.get(key, 0.0) + value
    return total


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the series carrying `labels` (others free)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def present(samples: Samples, name: str, **labels: str) -> bool:
    wanted = set(labels.items())
    return any(n == name and wanted <= found for (n, found) in samples)


def _alive(procs: list[ManagedProcess]) -> list[ManagedProcess]:
    return [p for p in procs if p.wanted and p.alive()]


def edge_metrics(gateway: Cluster) -> Samples:
    texts = []
    for port in gateway.edge_ports:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10,
                             headers={"Authorization": f"Bearer {gateway.admin_key}"})
        if response.status_code == 200:
            texts.append(response.text)
    assert texts
    return merged(texts)


def health_metrics(procs: list[ManagedProcess], port_env: str) -> Samples:
    texts = []
    for proc in _alive(procs):
        response = httpx.get(f"http://127.0.0.1:{proc.env[port_env]}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        texts.append(response.text)
    return merged(texts)


def router_metrics(gateway: Cluster) -> Samples:
    return health_metrics(gateway.routers, "SWITCHBOARD_ROUTER_HEALTH_PORT")


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_the_edges_metrics_need_an_admin_key(gateway: Cluster) -> None:
    url = f"{gateway.base_url.removesuffix('/v1')}/metrics"
    assert httpx.get(url, timeout=10).status_code == 401
    for wrong in ("Bearer sk-aig-nope", "Bearer à".encode(), "Basic " + "x" * 300, "Bearer"):
        answer = httpx.get(url, headers={"Authorization": wrong}, timeout=10)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == 401
    sub = create_sub_account(gateway)
    refused = httpx.get(url, headers={"Authorization": f"Bearer {sub['key']}"}, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    scraped = httpx.get(url, headers={"Authorization": f"Bearer {gateway.admin_key}"}, timeout=10)
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    samples = parse(scraped.text)
    assert present(samples, "switchboard_edge_requests_total", route="/metrics", status="401")
    # The per-route label is the route's pattern: an unknown path does not become a label.
    assert httpx.get(f"{url}/{secrets.token_hex(4)}", timeout=10).status_code == 404
    assert not any("/metrics/" in dict(labels).get("route", "") for (_, labels) in edge_metrics(gateway))
    assert present(edge_metrics(gateway), "switchboard_edge_requests_total", route="unmatched", status="404")


def test_a_metrics_token_and_otlp_export(gateway: Cluster) -> None:
    """An edge with SWITCHBOARD_METRICS_TOKEN takes it on /metrics (and only there); with an OTLP
    endpoint it also pushes the same metrics over OTLP/HTTP."""
    token = secrets.token_urlsafe(24)
    port = free_port()
    with Receiver() as collector:
        env = {**gateway.env, "SWITCHBOARD_HTTP_PORT": str(port), "SWITCHBOARD_METRICS_TOKEN": token,
               "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url(""), "OTEL_METRIC_EXPORT_INTERVAL": "200"}
        edge = start_module("edge-metrics-token", "services.edge", env, gateway.log_dir)
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/readyz", 30, edge.popen)
            url = f"http://127.0.0.1:{port}/metrics"
            assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
            assert httpx.get(url, headers={"Authorization": f"Bearer {gateway.admin_key}"},
                             timeout=10).status_code == 200
            for wrong in (f"Bearer {token}x", f"Bearer {token[:-1]}", token, f"bearer  {token}"):
                assert httpx.get(url, headers={"Authorization": wrong}, timeout=10).status_code == 401
            # The token opens /metrics only.
            assert httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {token}"},
                             timeout=10).status_code == 401

            def pushed() -> dict[str, float] | None:
                for received in reversed(collector.got("/v1/metrics")):
                    request = ExportMetricsServiceRequest.FromString(received.body)
                    points = {m.name: sum(p.as_double for p in m.sum.data_points)
                              for r in request.resource_metrics for s in r.scope_metrics for m in s.metrics
                              if m.HasField("sum")}
                    if points.get("switchboard_edge_requests", 0) >= 7:
                        return points
                return None

            assert eventually(pushed, 10)
        finally:
            edge.stop(timeout_s=5)


def _cost(body: dict[str, object]) -> int:
    return body["meta"]["cost"]["total_micros"]  # type: ignore[index]


def test_chat_calls_move_the_edge_and_router_counters_by_exactly_the_calls_made(gateway: Cluster) -> None:
    client = gateway.client()
    marker = secrets.token_hex(8)  # unique bodies: the cache misses first, and the journal is countable
    cached = [{"role": "user", "content": f"metrics {marker} cached"}]
    edge_before, router_before = edge_metrics(gateway), router_metrics(gateway)

    miss = client.chat.completions.with_raw_response.create(model="sim/gpt-sim", messages=cached,
                                                            extra_headers={"x-cache": "force"})
    hit = client.chat.completions.with_raw_response.create(model="sim/gpt-sim", messages=cached,
                                                           extra_headers={"x-cache": "force"})
    assert (miss.headers["X-Cache-Status"], hit.headers["X-Cache-Status"]) == ("miss; type=exact", "hit; type=exact")
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="sim/gpt-sim+status=500",
                                       messages=[{"role": "user", "content": f"metrics {marker} fails"}])
    assert failed.value.status_code == 502
    with client.chat.completions.with_streaming_response.create(
            model="sim/gpt-sim", messages=[{"role": "user", "content": f"metrics {marker} streams"}], stream=True,
            stream_options={"include_usage": True}) as response:
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    streamed = chunks[-1]
    answers = [json.loads(miss.http_response.text), json.loads(hit.http_response.text)]

    edge_after, router_after = edge_metrics(gateway), router_metrics(gateway)
    requests = "switchboard_edge_requests_total"
    assert delta(edge_before, edge_after, requests, route=CHAT, method="POST", status="200") == 3
    assert delta(edge_before, edge_after, requests, route=CHAT, method="POST", status="502") == 1
    assert delta(edge_before, edge_after, requests, route=CHAT) == 4
    assert delta(edge_before, edge_after, "switchboard_edge_request_duration_seconds_count", route=CHAT) == 4
    assert value(edge_after, "switchboard_edge_open_streams", route=CHAT) == 0  # the stream has ended

    chat = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "sim"}
    served = {**chat, "gen_ai_request_model": "sim/gpt-sim", "gen_ai_response_model": "sim/gpt-sim"}
    routed = "switchboard_router_requests_total"
    assert delta(router_before, router_after, routed, **served, status="200", error_type="", cache="miss") == 1
    assert delta(router_before, router_after, routed, **served, status="200", error_type="", cache="hit") == 1
    assert delta(router_before, router_after, routed, **served, status="200", cache="") == 1
    # A model outside the catalog (here a simulator directive) is counted under _OTHER, never by its name.
    other = {**chat, "gen_ai_request_model": "_OTHER", "gen_ai_response_model": "_OTHER"}
    assert delta(router_before, router_after, routed, **other, status="502", error_type="provider_error") == 1
    assert not any("status=500" in v for (_, labels) in router_after for k, v in labels if k.endswith("_model"))

    # The cache hit made no provider call: tokens and GenAI durations count the miss and the stream.
    tokens = "gen_ai_client_token_usage"
    assert delta(router_before, router_after, f"{tokens}_count", **served, gen_ai_token_type="input") == 2
    assert delta(router_before, router_after, f"{tokens}_sum", **served, gen_ai_token_type="input") == (
        answers[0]["usage"]["prompt_tokens"] + streamed["usage"]["prompt_tokens"])
    assert delta(router_before, router_after, f"{tokens}_sum", **served, gen_ai_token_type="output") == (
        answers[0]["usage"]["completion_tokens"] + streamed["usage"]["completion_tokens"])
    duration = "gen_ai_client_operation_duration_seconds_count"
    assert delta(router_before, router_after, duration, **served, error_type="") == 2
    assert delta(router_before, router_after, duration, **other, error_type="provider_error") == 1
    first_chunk = "gen_ai_client_operation_time_to_first_chunk_seconds_count"
    assert delta(router_before, router_after, first_chunk, **served) == 1
    total = "switchboard_router_request_duration_seconds_count"
    assert delta(router_before, router_after, total, gen_ai_response_model="sim/gpt-sim") == 3
    assert delta(router_before, router_after, "switchboard_router_added_latency_seconds_count", **chat) == 2
    assert delta(router_before, router_after, "switchboard_router_cost_micros_total",
                 gen_ai_provider_name="sim", gen_ai_response_model="sim/gpt-sim") == (
        _cost(answers[0]) + _cost(answers[1]) + _cost(streamed))
    assert delta(router_before, router_after, "switchboard_router_cache_hits_total", gen_ai_operation_name="chat") == 1
    assert delta(router_before, router_after, "switchboard_router_cache_misses_total",
                 gen_ai_operation_name="chat") == 1
    # Every attempt at the failing deployment (retries included) is an upstream error of kind "status".
    attempts = len([e for e in gateway.sim_journal() if f"metrics {marker} fails" in str(e)])
    assert attempts >= 1
    assert delta(router_before, router_after, "switchboard_router_upstream_errors_total", gen_ai_provider_name="sim",
                 kind="status", http_status="500") == attempts
    assert value(router_after, "switchboard_router_breaker_state", deployment="sim/gpt-sim") == 0
    assert present(router_after, "switchboard_supervisor_restarts_total", process=gateway.routers[0].name)
    # Every request the router took (the cache hit too) measured from the edge's arrival to its pick-up.
    assert delta(router_before, router_after, "switchboard_router_pickup_seconds_count") == 4
    assert 0 < delta(router_before, router_after, "switchboard_router_pickup_seconds_sum") < 4 * 5.0


def test_refusals_are_counted_by_reason(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, rate_limit_rpm=1)
    client = gateway.client(key=sub["key"])
    before = edge_metrics(gateway)
    statuses: list[int] = []

    def refused() -> bool:
        try:
            client.chat.completions.create(model="sim/gpt-sim", messages=[{"role": "user", "content": "hi"}])
            statuses.append(200)
        except openai.RateLimitError:
            statuses.append(429)
        return statuses[-1] == 429

    eventually(refused, 5)  # the sub-account's limit reaches the edge's mirror within milliseconds
    after = edge_metrics(gateway)
    assert delta(before, after, "switchboard_edge_refusals_total", reason="rate_limit", status="429") == 1
    assert delta(before, after, "switchboard_edge_requests_total", route=CHAT, status="429") == 1
    assert delta(before, after, "switchboard_edge_requests_total", route=CHAT, status="200") == statuses.count(200)
    assert delta(before, after, "switchboard_edge_refusals_total", reason="spend_cap") == 0


def test_ledger_jobs_and_webhooks_report_consumer_lag(gateway: Cluster) -> None:
    lag = "switchboard_jetstream_consumer_lag"
    wanted = ((gateway.ledgers, "SWITCHBOARD_LEDGER_HEALTH_PORT", "USAGE", "ledger"),
              (gateway.jobs, "SWITCHBOARD_JOBS_HEALTH_PORT", "JOBS", "jobs-runs"),
              (gateway.jobs, "SWITCHBOARD_JOBS_HEALTH_PORT", "JOBS", "jobs-polls"),
              (gateway.webhooks, "SWITCHBOARD_WEBHOOKS_HEALTH_PORT", "EVENTS", "webhooks-fanout"),
              (gateway.webhooks, "SWITCHBOARD_WEBHOOKS_HEALTH_PORT", "WEBHOOKS", "webhooks-deliveries"))
    for procs, port_env, stream, consumer in wanted:
        samples = eventually(lambda p=procs, e=port_env, s=stream, c=consumer: (
            found := health_metrics(p, e)) and present(found, lag, stream=s, consumer=c) and found, 15)
        assert value(samples, lag, stream=stream, consumer=consumer) >= 0


def test_the_ledger_counts_the_events_it_stored(gateway: Cluster) -> None:
    def stored() -> float:
        return value(health_metrics(gateway.ledgers, "SWITCHBOARD_LEDGER_HEALTH_PORT"),
                     "switchboard_ledger_events_stored_total")

    before = stored()
    client = gateway.client()
    for _ in range(3):
        client.chat.completions.create(model="sim/gpt-sim", messages=[{"role": "user", "content": "store me"}])
    # Other work on the shared gateway may be stored meanwhile: at least ours.
    eventually(lambda: stored() >= before + 3, 10)


def test_webhook_deliveries_are_counted_by_outcome_and_event_type(gateway: Cluster) -> None:
    account, _ = new_tenant(gateway)
    deliveries = "switchboard_webhook_deliveries_total"
    kind = {"event_type": events.KEY_ROTATED}

    def outcomes() -> Samples:
        return health_metrics(gateway.webhooks, "SWITCHBOARD_WEBHOOKS_HEALTH_PORT")

    before = outcomes()
    with Receiver() as hooks:
        hooks.script("/flaky", Step(status=500))  # then 200
        emit(gateway, events.KEY_ROTATED, account, {"key_id": "key_m"}, webhook_url=hooks.url("/flaky"))
        # Refused by the SSRF guard: failed at the first attempt, never retried.
        emit(gateway, events.KEY_ROTATED, account, {"key_id": "key_n"}, webhook_url="http://169.254.169.254/x")
        hooks.wait("/flaky", 2)
        after = eventually(lambda: (found := outcomes()) and delta(before, found, deliveries, **kind) >= 3 and found,
                           10)
    assert delta(before, after, deliveries, **kind, outcome="retried") == 1
    assert delta(before, after, deliveries, **kind, outcome="delivered") == 1
    assert delta(before, after, deliveries, **kind, outcome="failed") == 1


def test_health_port_metrics_need_no_key_and_name_no_tenant(gateway: Cluster) -> None:
    sub = create_sub_account(gateway)
    tag = f"tag-{secrets.token_hex(6)}"
    tagged = httpx.post(f"{gateway.base_url}/chat/completions", timeout=15,
                        headers={"Authorization": f"Bearer {sub['key']}", "x-aig-tag": tag},
                        json={"model": "sim/gpt-sim", "messages": [{"role": "user", "content": "hi"}]})
    assert tagged.status_code == 200
    texts = [httpx.get(f"http://127.0.0.1:{p.env['SWITCHBOARD_ROUTER_HEALTH_PORT']}/metrics", timeout=10).text
             for p in _alive(gateway.routers)]
    texts.append(httpx.get(f"{gateway.base_url.removesuffix('/v1')}/metrics", timeout=10,
                           headers={"Authorization": f"Bearer {gateway.admin_key}"}).text)
    for text in texts:
        assert sub["id"] not in text and sub["key"] not in text and tag not in text
        assert gateway.admin_key not in text


def test_switchboard_up_sums_each_services_workers() -> None:
    """Two edge and two router workers (SWITCHBOARD_*_WORKERS=2, routers apart from the edges):
    every scrape, whichever worker answers it, counts every request; a router worker killed and
    restarted loses none of them."""
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-metrics-"))
    ports = {name: free_port() for name in (
        "SWITCHBOARD_HTTP_PORT", "SWITCHBOARD_NATS_PORT", "SWITCHBOARD_ROUTER_HEALTH_PORT",
        "SWITCHBOARD_SIMULATOR_PORT", "SWITCHBOARD_LEDGER_HEALTH_PORT", "SWITCHBOARD_JOBS_HEALTH_PORT",
        "SWITCHBOARD_WEBHOOKS_HEALTH_PORT")}
    proc, url, key = _up(data_dir, ports, {"SWITCHBOARD_ROUTER_IN_EDGE": "0"})
    origin = url.removesuffix("/v1")
    router = f"http://127.0.0.1:{ports['SWITCHBOARD_ROUTER_HEALTH_PORT']}/metrics"
    try:
        for i in range(10):  # a connection each: the kernel spreads them over both edge workers
            answer = httpx.post(f"{url}/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=15,
                                json={"model": "sim/gpt-sim", "messages": [{"role": "user", "content": f"n{i}"}]})
            assert answer.status_code == 200, answer.text

        def scrape_edge() -> Samples:
            return parse(httpx.get(f"{origin}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=10).text)

        # A worker hands its counts to the shared files within a second (libs/runtime/metrics_buffer.py),
        # and the one answering a scrape before it reads them: then every scrape counts all ten.
        eventually(lambda: value(scrape_edge(), "switchboard_edge_requests_total", route=CHAT, status="200") == 10
                   and value(parse(httpx.get(router, timeout=10).text), "switchboard_router_requests_total",
                             status="200") == 10, 5, 0.2)
        for _ in range(6):
            assert value(scrape_edge(), "switchboard_edge_requests_total", route=CHAT, status="200") == 10
            assert value(parse(httpx.get(router, timeout=10).text), "switchboard_router_requests_total",
                         status="200") == 10
        status_path = data_dir / "supervisor.json"

        def router_2() -> ProcessStatus:
            status = msgspec.json.decode(status_path.read_bytes(), type=SupervisorStatus)
            (found,) = [p for p in status.processes if p.name == "router-2"]
            return found

        os.kill(router_2().pid or 0, signal.SIGKILL)
        eventually(lambda: router_2().restarts == 1 and router_2().state == "running", 20)
        eventually(lambda: value(parse(httpx.get(router, timeout=10).text), "switchboard_supervisor_restarts_total",
                                 process="router-2") == 1, 10)
        for _ in range(6):
            assert value(parse(httpx.get(router, timeout=10).text), "switchboard_router_requests_total",
                         status="200") == 10
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        shutil.rmtree(data_dir, ignore_errors=True)
