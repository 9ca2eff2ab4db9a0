"""A gateway whose edges host the router (SWITCHBOARD_ROUTER_IN_EDGE=1): what is different from
edges and routers apart. The inference behaviour itself is test_router_in_edge_behaviour.py."""

import concurrent.futures
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.integration.api import call, generation
from tests.integration.cluster import EDGE_TIMEOUT_S, Cluster, cleanup, eventually, start_cluster
from tests.integration.test_resilience import assert_killed_mid_stream_ends_it, assert_leaving_a_stream_stops_it

IN_EDGE = {"SWITCHBOARD_ROUTER_IN_EDGE": "1"}
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def in_edge() -> Iterator[Cluster]:
    cluster = start_cluster(routers=0, extra_env=IN_EDGE)
    yield cluster
    cleanup(cluster)


def _router_port(cluster: Cluster, edge: int = 0) -> int:
    return int(cluster.edges[edge].env["SWITCHBOARD_ROUTER_HEALTH_PORT"])


def test_the_edge_serves_the_router_health_and_metrics_on_the_router_port(in_edge: Cluster) -> None:
    assert not in_edge.routers
    client = in_edge.client()
    raw = client.chat.completions.with_raw_response.create(model="sim/gpt-sim", messages=USER)
    assert raw.headers["X-Provider"] == "sim" and raw.parse().choices[0].message.content == "Echo: hi"
    port = _router_port(in_edge)
    assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    text = eventually(lambda: (t := httpx.get(f"http://127.0.0.1:{port}/metrics").text)
                      and 'switchboard_router_requests_total{' in t and t, 5)
    assert 'gen_ai_provider_name="sim",gen_ai_request_model="sim/gpt-sim"' in text
    # Metered as ever: the edge's router publishes the usage event, the ledger stores it.
    row = generation(in_edge, raw.headers["X-Request-Id"])
    assert (row["status"], row["provider"]) == (200, "sim") and row["cost"]["total_micros"] > 0


def test_client_leaving_a_stream_stops_the_upstream_call(in_edge: Cluster) -> None:
    assert_leaving_a_stream_stops_it(in_edge, in_edge.edges[0].log_path)  # the router logs in its edge's log


def test_an_edge_killed_mid_stream_ends_it_and_its_restart_serves(in_edge: Cluster) -> None:
    # The supervisor restarts the edge, router and all.
    assert_killed_mid_stream_ends_it(in_edge, in_edge.edges[0].crash, EDGE_TIMEOUT_S)
    in_edge.wait_ready(20)
    client = in_edge.client()
    answer = eventually(lambda: client.chat.completions.create(model="openai/gpt-4o", messages=USER), 10)
    assert answer.choices[0].message.content == "Echo: hi"


def test_requests_in_flight_finish_when_the_edge_stops() -> None:
    """SIGTERM: the edge's router finishes what it has in hand and meters it before exiting."""
    cluster = start_cluster(routers=0, edges=2, extra_env=IN_EDGE)
    try:
        client = cluster.client(base_url=cluster.edge_url(1))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.chat.completions.with_raw_response.create,
                                  model="openai/gpt-4o+latency=800", messages=USER)
            time.sleep(0.3)
            cluster.edges[1].stop(timeout_s=10)
            raw = pending.result(timeout=10)
        assert raw.parse().choices[0].message.content == "Echo: hi"
        assert generation(cluster, raw.headers["X-Request-Id"])["status"] == 200  # asked of the other edge
    finally:
        cleanup(cluster)


def test_nats_restart_while_the_gateway_runs(in_edge: Cluster) -> None:
    client = in_edge.client()
    assert client.chat.completions.create(model="openai/gpt-4o", messages=USER).choices
    in_edge.nats.stop()
    # Without the bus the edge still has its router, its keys and its limits in memory: an answer,
    # or a clean refusal, never a hang or a 500.
    try:
        answered = client.chat.completions.create(model="openai/gpt-4o", messages=USER, timeout=EDGE_TIMEOUT_S + 2)
        assert answered.choices[0].message.content == "Echo: hi"
    except openai.APIStatusError as err:
        assert err.status_code in (503, 504) and err.body["type"] in ("service_unavailable_error", "timeout_error")
    # The catalog and provider health are the edge's own router's to answer: no bus needed.
    assert any(m.id == "openai/gpt-4o" for m in client.models.list().data)
    assert client.models.retrieve("openai/gpt-4o").id == "openai/gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nosuch/model")
    health = call(in_edge, "GET", "/health/providers")
    assert health.status_code == 200 and health.json()["data"]
    in_edge.nats.start()
    answer = eventually(lambda: client.chat.completions.create(model="openai/gpt-4o", messages=USER), 20)
    assert answer.choices[0].message.content == "Echo: hi"
    chunks = client.chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hi"
