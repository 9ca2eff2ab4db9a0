"""The edge's own deadlines, set shorter than the router's upstream read timeout (the reverse of
the test gateway's): the client gets the edge's clean 504 or stall event, and the router stops
the work nobody will read, so it is neither generated on nor billed as answered.

Both ways the edge reaches its router: over NATS (edges and routers apart) and in process
(SWITCHBOARD_ROUTER_IN_EDGE=1)."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.api import call, generation
from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster

EDGE_DEADLINE_S = 1.0
DEADLINES = {"SWITCHBOARD_REQUEST_TIMEOUT_S": str(EDGE_DEADLINE_S),
             "SWITCHBOARD_STREAM_IDLE_TIMEOUT_S": str(EDGE_DEADLINE_S),
             "SWITCHBOARD_ROUTER_READ_TIMEOUT_S": "10"}
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module", params=["apart", "in_edge"])
def short_edge(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    in_edge = request.param == "in_edge"
    cluster = start_cluster(routers=0 if in_edge else 1,
                            extra_env={**DEADLINES, "SWITCHBOARD_ROUTER_IN_EDGE": "1" if in_edge else "0"})
    yield cluster
    cleanup(cluster)


def _router_log(cluster: Cluster) -> Path:
    return (cluster.routers[0] if cluster.routers else cluster.edges[0]).log_path


def test_a_whole_answer_past_the_edge_deadline_is_a_clean_504(short_edge: Cluster) -> None:
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as err:
        short_edge.client().chat.completions.create(model="openai/gpt-4o+hang", messages=USER, timeout=10)
    assert err.value.status_code == 504 and err.value.body["type"] == "timeout_error"
    assert f"within {EDGE_DEADLINE_S:g}s" in err.value.body["message"]
    assert time.monotonic() - started < 10  # the edge's deadline, not the client's


def _cancelled_count(cluster: Cluster) -> int:
    return _router_log(cluster).read_text().count('"event":"cancelled_before_answer"')


def _assert_stopped_and_not_billed(cluster: Cluster, request_id: str, before: int, answer_at_s: float,
                                   started: float) -> None:
    """The router logged the cancel, and by the time the provider would have answered (and been
    metered as a 200) the ledger, caught up, has no record of the request."""
    eventually(lambda: _cancelled_count(cluster) > before, 5)
    time.sleep(max(0.0, answer_at_s + 0.3 - (time.monotonic() - started)))
    later = cluster.client().chat.completions.with_raw_response.create(model="openai/gpt-4o", messages=USER)
    assert generation(cluster, later.headers["X-Request-Id"])["status"] == 200  # the ledger is caught up
    assert call(cluster, "GET", "/generations", params={"id": request_id}).status_code == 404


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_answer_late_for_the_deadline_is_stopped_and_not_billed(short_edge: Cluster, stream: bool) -> None:
    before = _cancelled_count(short_edge)
    late_ms = 2500
    model = f"openai/gpt-4o+ttft={late_ms}" if stream else f"openai/gpt-4o+latency={late_ms}"
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as err:
        short_edge.client().chat.completions.create(model=model, messages=USER, stream=stream, timeout=10)
    assert err.value.status_code == 504 and err.value.body["type"] == "timeout_error"
    _assert_stopped_and_not_billed(short_edge, err.value.response.headers["X-Request-Id"], before, late_ms / 1000,
                                   started)


def test_a_stream_that_stalls_gets_an_error_event_and_its_router_stops(short_edge: Cluster) -> None:
    body = {"model": "openai/gpt-4o+tps=0.4", "stream": True,
            "messages": [{"role": "user", "content": " ".join(["word"] * 10)}]}
    log = _router_log(short_edge)
    before = log.read_text().count('"event":"stream_cancelled"')
    with httpx.stream("POST", f"{short_edge.base_url}/chat/completions", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {short_edge.admin_key}"}) as response:
        assert response.status_code == 200
        request_id = response.headers["X-Request-Id"]
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert "The stream stalled" in lines[-1] and '"timeout_error"' in lines[-1]
    # The router was still waiting on the provider (its read timeout is 10 s): told to stop, it
    # records the stream as closed on the client's side, at no charge.
    eventually(lambda: log.read_text().count('"event":"stream_cancelled"') > before, 5)
    record = generation(short_edge, request_id)
    assert (record["status"], record["error_type"], record["cost"]["total_micros"]) == (499, "client_closed", 0)
