"""A full pool of upstream connections is the gateway's saturation, said as such: a quick 503
with Retry-After, never a provider timeout, and never counted against the provider's health."""

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.api import call
from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster

USER = [{"role": "user", "content": "hello"}]
POOL = 2
HOLDER = "gpt-sim+tps=4"


@pytest.fixture(scope="module")
def small_pool() -> Iterator[Cluster]:
    cluster = start_cluster(extra_env={"SWITCHBOARD_ROUTER_MAX_CONNECTIONS": str(POOL),
                                       "SWITCHBOARD_ROUTER_POOL_TIMEOUT_S": "0.2"})
    try:
        yield cluster
    finally:
        cleanup(cluster)


def _slow_stream(gateway: Cluster, done: list[str]) -> None:
    # A chunk every 0.25 s for about 4 s: the connection is held, and never idle past the read timeout.
    body = {"model": f"sim/{HOLDER}", "messages": [{"role": "user", "content": "word " * 16}], "stream": True}
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gateway.base_url}/chat/completions", json=body,
            headers={"Authorization": f"Bearer {gateway.admin_key}"}) as response:
        text = "".join(response.iter_text())
    done.append(text)


def _holding(gateway: Cluster) -> int:
    return sum(1 for e in gateway.sim_journal() if e["body"].get("model") == HOLDER)  # type: ignore[union-attr]


def test_a_full_pool_is_a_503_that_blames_nobody(small_pool: Cluster) -> None:
    gateway = small_pool
    call(gateway, "POST", "/chat/completions", json={"model": "sim/gpt-sim", "messages": USER}).raise_for_status()
    gateway.clear_sim_journal()
    done: list[str] = []
    holders = [threading.Thread(target=_slow_stream, args=(gateway, done)) for _ in range(POOL)]
    for thread in holders:
        thread.start()
    eventually(lambda: _holding(gateway) == POOL)  # both pooled connections are held
    for _ in range(6):  # more than the breaker's 5 failures
        refused = call(gateway, "POST", "/chat/completions", json={"model": "sim/gpt-sim", "messages": USER})
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["type"] == "service_unavailable_error" and error["code"] == 503
        assert "saturated" in error["message"] and "sim" in error["message"]
        assert refused.headers["Retry-After"] == "1"
    assert _holding(gateway) == POOL and len(gateway.sim_journal()) == POOL  # refused in the gateway, not sent
    rows = {r["deployment"]: r for r in call(gateway, "GET", "/health/providers").json()["data"]}
    assert rows["sim/gpt-sim"]["state"] == "closed" and rows["sim/gpt-sim"]["failures"] == 0
    for thread in holders:
        thread.join(30)
    assert len(done) == POOL and all("[DONE]" in text for text in done)  # the holders were unharmed
    answer = call(gateway, "POST", "/chat/completions", json={"model": "sim/gpt-sim", "messages": USER})
    assert answer.status_code == 200  # slots are back; no breaker was opened
