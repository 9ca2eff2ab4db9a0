"""Issue 9: nothing lost, nothing doubled, under faults.

Eight clients send plain and streamed chat without pause while the ledger, the
router and nats-server itself are SIGKILLed in turn (the supervisor restarts
each). Every request whose client got a 200 must then be in the usage store
exactly once, at the cost the client was shown; every other request must have
ended in a clean 502/503/504 envelope (or an SSE error event) within the
client's timeout; and the gateway must serve again soon after NATS is back.
"""

import concurrent.futures
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import openai
import pytest

from tests.integration.api import call, create_sub_account
from tests.integration.cluster import EDGE_TIMEOUT_S, Cluster, cleanup, eventually, start_cluster
from tools.cli.processes import port_open

CLIENTS = 8
# The client's own deadline, past the edge's: a request that reaches it got no answer at all.
CLIENT_TIMEOUT_S = EDGE_TIMEOUT_S + 8
CLEAN_STATUSES = (502, 503, 504)
MODEL = "sim/gpt-sim"


@dataclass
class Outcome:
    request_id: str
    stream: bool
    started: float
    status: int  # 200, the error status, or 0 for no HTTP answer
    cost_micros: int | None = None  # what the client was shown, for a 200
    clean: bool = True
    detail: str = ""


def _chat(client: openai.OpenAI, request_id: str, stream: bool, words: int) -> Outcome:
    started = time.monotonic()
    messages = [{"role": "user", "content": "w " * words}]
    headers = {"X-Request-Id": request_id}
    try:
        if not stream:
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages,
                                                                   extra_headers=headers)
            assert raw.headers["X-Request-Id"] == request_id
            raw.parse()
            return Outcome(request_id, False, started, 200, round(Decimal(raw.headers["X-Cost-Cents"]) * 10_000))
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True},
            extra_headers=headers)
        assert raw.headers["X-Request-Id"] == request_id
        chunks = list(raw.parse())
        cost = chunks[-1].model_extra["meta"]["cost"]["total_micros"]  # type: ignore[index]
        return Outcome(request_id, True, started, 200, cost)
    except openai.APIStatusError as exc:
        error = exc.body if isinstance(exc.body, dict) else {}
        clean = (exc.status_code in CLEAN_STATUSES and error.get("code") == exc.status_code
                 and isinstance(error.get("message"), str) and isinstance(error.get("type"), str))
        return Outcome(request_id, stream, started, exc.status_code, clean=clean, detail=exc.response.text[:200])
    except openai.APIConnectionError as exc:  # includes the client's own timeout: no clean answer
        return Outcome(request_id, stream, started, 0, clean=False, detail=repr(exc))
    except openai.APIError as exc:  # an SSE error event after the 200 headers
        error = exc.body if isinstance(exc.body, dict) else {}
        clean = stream and error.get("code") in CLEAN_STATUSES and isinstance(error.get("type"), str)
        return Outcome(request_id, stream, started, int(error.get("code") or 0), clean=clean,
                       detail=json.dumps(exc.body)[:200])


class Load:
    """CLIENTS threads sending back to back, alternating plain and streamed chat."""

    def __init__(self, gateway: Cluster, key: str) -> None:
        self._gateway = gateway
        self._key = key
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(CLIENTS)]

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_S + 5)

    def _client(self, n: int) -> None:
        client = self._gateway.client(key=self._key, timeout=CLIENT_TIMEOUT_S)
        i = 0
        while not self._halt.is_set():
            request_id = f"mf-{n}-{i}-{uuid.uuid4().hex[:8]}"
            try:
                outcome = _chat(client, request_id, stream=(n + i) % 2 == 1, words=i % 7 + 1)
            except Exception as exc:  # anything else is a broken answer; keep this client going
                outcome = Outcome(request_id, False, time.monotonic(), -1, clean=False, detail=repr(exc))
            with self._lock:
                self.outcomes.append(outcome)
            if outcome.status != 200:
                time.sleep(0.05)  # a failing gateway answers at once: do not spin on it
            i += 1

    def served_since(self, since: float) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.status == 200 and o.started >= since)

    def wait_served(self, since: float, count: int, timeout_s: float = 20) -> None:
        eventually(lambda: self.served_since(since) >= count, timeout_s)


@pytest.fixture
def gateway() -> Iterator[Cluster]:
    """A private cluster whose router batches usage for half a second instead of 20 ms: every
    request answered in the half second before the router is killed is owed only by its spool."""
    cluster = start_cluster(extra_env={"SWITCHBOARD_USAGE_LINGER_S": "0.5"})
    yield cluster
    cleanup(cluster)


def test_ledger_router_and_nats_killed_under_load_lose_and_double_nothing(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, name="faults")
    with Load(gateway, sub["key"]) as load:
        load.wait_served(0, 40)

        gateway.ledgers[0].crash()  # usage waits in the stream meanwhile
        killed = time.monotonic()
        load.wait_served(killed, 40)
        eventually(lambda: call(gateway, "GET", f"/sub-accounts/{sub['id']}/usage").status_code == 200, 20)

        gateway.routers[0].crash()  # its in-flight requests fail; its spool is adopted by the next run
        killed = time.monotonic()
        load.wait_served(killed, 40)

        gateway.nats.crash()
        eventually(lambda: port_open("127.0.0.1", gateway.nats.port), 20, 0.02)
        back = time.monotonic()
        # Serving again soon after NATS is back: the services reconnect in about a second.
        load.wait_served(back, 20, timeout_s=15)
    outcomes = load.outcomes

    unclean = [o for o in outcomes if o.status != 200 and not o.clean]
    assert not unclean, unclean[:5]
    served = {o.request_id: o for o in outcomes if o.status == 200}
    failed = [o.request_id for o in outcomes if o.status != 200]
    assert len(served) >= 140 and failed, (len(served), len(failed))  # the faults were felt

    # The ledger catches up first; then each request is looked up once.
    report = f"/sub-accounts/{sub['id']}/usage"
    try:
        eventually(lambda: call(gateway, "GET", report).json()["total"]["requests"] >= len(served), 30, 0.5)
    except AssertionError:
        pass  # the lookups below name what is missing
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {gateway.admin_key}"},
                      timeout=15) as http, concurrent.futures.ThreadPoolExecutor(8) as pool:

        def stored(request_id: str) -> dict | None:
            response = http.get("/generations", params={"id": request_id})
            if response.status_code == 404:
                return None
            assert response.status_code == 200, response.text
            return response.json()

        records = dict(zip(served, pool.map(stored, served), strict=True))
        missing = [rid for rid, record in records.items() if record is None]
        assert not missing, f"{len(missing)} of {len(served)} answered requests not metered: {missing[:5]}"
        wrong = [(rid, served[rid].cost_micros, record) for rid, record in records.items()
                 if record is not None and (record["cost"]["total_micros"] != served[rid].cost_micros
                                            or record["status"] != 200)]
        assert not wrong, wrong[:3]

        # Exactly once: the store holds the answered requests and those failed ones the router
        # had finished (their reply was lost with the router or NATS), nothing else, nothing twice.
        metered_failures: set[str] = set()

        def settled() -> bool:
            unseen = [rid for rid in failed if rid not in metered_failures]
            metered_failures.update(rid for rid, record in zip(unseen, pool.map(stored, unseen), strict=True)
                                    if record is not None)
            return call(gateway, "GET", report).json()["total"]["requests"] == len(served) + len(metered_failures)

        eventually(settled, 15, 0.5)
        time.sleep(1.0)  # a doubled event would have landed by now
        assert settled()
    # The killed router's spool was adopted and, everything acknowledged, deleted.
    spool = gateway.root / "router-usage-spool"
    eventually(lambda: len(list(spool.glob("*.lock"))) == 1, 15)
