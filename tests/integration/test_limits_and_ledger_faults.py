"""Rate limits across edge replicas; the ledger killed under load loses and doubles nothing."""

import concurrent.futures
import threading
import time
from decimal import Decimal

import openai

from tests.integration.api import call, create_sub_account
from tests.integration.cluster import Cluster, eventually

USER = [{"role": "user", "content": "hi"}]


def _try(client: openai.OpenAI) -> int:
    try:
        client.chat.completions.create(model="sim/gpt-sim", messages=USER)
    except openai.RateLimitError as exc:
        assert exc.body["type"] == "rate_limit_error"
        assert int(exc.response.headers["Retry-After"]) >= 1
        return 429
    return 200


def test_rpm_holds_across_two_edge_replicas(private_gateway: Cluster) -> None:
    private_gateway.start_edge()
    sub = create_sub_account(private_gateway, name="limited", rate_limit_rpm=20)
    clients = [private_gateway.client(key=sub["key"], base_url=private_gateway.edge_url(i)) for i in (0, 1)]
    eventually(lambda: all(_try(c) == 200 for c in clients), 3)  # the key has reached both mirrors: 2 used
    statuses = []
    for i in range(30):  # spaced past the replicas' sync interval: the global count is exact
        statuses.append(_try(clients[i % 2]))
        time.sleep(0.15)
    assert statuses.count(200) == 18, statuses  # 20 per minute in total, not 20 per replica
    assert statuses[:18] == [200] * 18 and set(statuses[18:]) == {429}
    # A fast burst over both replicas overshoots by at most one sync interval's admissions.
    other = create_sub_account(private_gateway, name="bursty", rate_limit_rpm=20)
    burst = [private_gateway.client(key=other["key"], base_url=private_gateway.edge_url(i)) for i in (0, 1)]
    eventually(lambda: all(_try(c) == 200 for c in burst), 3)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _try(burst[i % 2]), range(60)))
    admitted = results.count(200) + 2
    assert 20 <= admitted <= 40, admitted
    time.sleep(0.3)
    assert _try(burst[0]) == 429 and _try(burst[1]) == 429


def test_tpm_limit(private_gateway: Cluster) -> None:
    sub = create_sub_account(private_gateway, name="tokens", rate_limit_tpm=30)
    client = private_gateway.client(key=sub["key"])
    eventually(lambda: _try(client) == 200, 3)
    statuses = [_try(client) for _ in range(10)]  # "hi" -> 1 + 2 tokens a request
    assert statuses.count(429) >= 1 and 8 <= statuses.count(200) + 1 <= 11, statuses


def test_ledger_killed_under_load_loses_and_doubles_nothing(private_gateway: Cluster) -> None:
    sub = create_sub_account(private_gateway, name="durable")
    client = private_gateway.client(key=sub["key"])
    done = threading.Event()
    seen: list[int] = []

    def one(i: int) -> int:
        raw = client.chat.completions.with_raw_response.create(
            model="sim/gpt-sim", messages=[{"role": "user", "content": "x " * (i % 9 + 1)}])
        return round(Decimal(raw.headers["X-Cost-Cents"]) * 10_000)

    def chaos() -> None:
        while len(seen) < 40 and not done.is_set():
            time.sleep(0.01)
        private_gateway.ledgers[0].kill()  # SIGKILL mid-batch
        time.sleep(1.0)
        private_gateway.ledgers.clear()
        private_gateway.start_ledger()

    killer = threading.Thread(target=chaos)
    killer.start()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        for cost in pool.map(one, range(200)):
            seen.append(cost)
    done.set()
    killer.join()

    last: list[object] = []

    def complete() -> dict | None:
        response = call(private_gateway, "GET", f"/sub-accounts/{sub['id']}/usage")
        last[:] = [response.status_code, response.text[-300:]]
        if response.status_code != 200:
            return None
        report = response.json()
        return report if report["total"]["requests"] >= 200 else None

    try:
        report = eventually(complete, 30)
    except AssertionError:
        logs = "\n".join(p.read_text()[-3000:] for p in private_gateway.log_dir.glob("ledger-*.log"))
        raise AssertionError(f"{last}\n{logs}") from None
    time.sleep(1.0)  # anything doubled would have landed by now
    report = call(private_gateway, "GET", f"/sub-accounts/{sub['id']}/usage").json()
    assert report["total"]["requests"] == 200
    assert report["total"]["cost_micros"] == sum(seen)


def test_router_stopped_gracefully_flushes_its_usage(private_gateway: Cluster) -> None:
    sub = create_sub_account(private_gateway, name="flushed")
    client = private_gateway.client(key=sub["key"])
    for _ in range(20):
        client.chat.completions.create(model="sim/gpt-sim", messages=USER)
    private_gateway.routers[0].stop()  # SIGTERM right after the answers: usage still in the outbox
    private_gateway.routers.clear()
    private_gateway.start_router()

    def stored() -> int | None:
        total = call(private_gateway, "GET", f"/sub-accounts/{sub['id']}/usage").json()["total"]["requests"]
        return total if total >= 20 else None

    assert eventually(stored, 10) == 20
