"""Issue 9: a 3-node NATS cluster loses a node under load and the guarantee holds.

Every stream, KV bucket and the object store are kept in 3 copies. Eight clients send
chat without pause while the USAGE stream's leader node is SIGKILLed (the supervisor
brings it back) and then the JetStream meta leader is stopped for good: every request
whose client got a 200 is in the usage store exactly once at its X-Cost-Cents, every
failed HTTP attempt (the SDK's retries included) is a clean 502/503/504 envelope, there
are few of them, and the gateway serves on with two nodes, keys made before and after
the loss both working.
"""

import asyncio
import concurrent.futures
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import nats
import openai
import pytest

from libs.contracts import subjects
from tests.integration.api import call, create_sub_account
from tests.integration.cluster import EDGE_TIMEOUT_S, PROVIDER_KEY_VARS, Cluster, cleanup, eventually, start_cluster
from tools.cli.nats_cluster import MONITOR_PORT_OFFSET, ROUTE_PORT_OFFSET, jetstream_ready
from tools.cli.processes import free_port, port_open

NODES = 3
CLIENTS = 8
CLIENT_TIMEOUT_S = EDGE_TIMEOUT_S + 8  # past the edge's own deadline: reaching it means no answer at all
CLEAN_STATUSES = (502, 503, 504)
MODEL = "sim/gpt-sim"
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    gateway = start_cluster(nats_nodes=NODES)
    yield gateway
    cleanup(gateway)


async def _streams(servers: list[str]) -> dict[str, tuple[int, str | None]]:
    """Every stream on the cluster (KV buckets and object stores are streams): replicas, leader."""
    nc = await nats.connect(servers=servers)
    try:
        infos = await nc.jetstream().streams_info()
        return {i.config.name: (i.config.num_replicas or 1, i.cluster.leader if i.cluster else None)
                for i in infos if i.config.name}
    finally:
        await nc.close()


def test_every_stream_bucket_and_object_store_has_three_copies(cluster: Cluster) -> None:
    streams = asyncio.run(_streams(cluster.nats.servers))
    expected = {subjects.STREAM_USAGE, subjects.STREAM_JOBS, subjects.STREAM_EVENTS, subjects.STREAM_WEBHOOKS,
                f"KV_{subjects.KV_API_KEYS}", f"OBJ_{subjects.OBJ_FILES}"}
    assert expected <= set(streams), sorted(streams)
    assert {name: replicas for name, (replicas, _) in streams.items() if replicas != NODES} == {}


@dataclass
class Attempt:
    """One HTTP answer the edge gave (each of the SDK's retries is one)."""

    status: int
    clean: bool
    body: str


@dataclass
class Outcome:
    """What one client call ended with, after the SDK's retries."""

    request_id: str
    started: float
    status: int  # 200, the last error status, or 0 for no HTTP answer
    cost_micros: int | None = None


class Load:
    """CLIENTS threads sending chat back to back, recording every attempt and every outcome."""

    def __init__(self, gateway: Cluster, key: str) -> None:
        self._gateway = gateway
        self._key = key
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self.attempts: list[Attempt] = []
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(CLIENTS)]

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_S * 3 + 5)

    def _record(self, response: httpx.Response) -> None:
        if response.status_code == 200:
            return
        response.read()
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        clean = (response.status_code in CLEAN_STATUSES and error.get("code") == response.status_code
                 and isinstance(error.get("message"), str) and isinstance(error.get("type"), str))
        with self._lock:
            self.attempts.append(Attempt(response.status_code, clean, response.text[:200]))

    def _client(self, n: int) -> None:
        # Reconnect-related 503s are what losing a node costs: the SDK's retries absorb them,
        # and the hook still sees every attempt.
        http = httpx.Client(timeout=CLIENT_TIMEOUT_S, event_hooks={"response": [self._record]})
        client = self._gateway.client(key=self._key, max_retries=2, http_client=http)
        i = 0
        while not self._halt.is_set():
            request_id = f"nc-{n}-{i}-{uuid.uuid4().hex[:8]}"
            started = time.monotonic()
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=[{"role": "user", "content": "w " * (i % 7 + 1)}],
                    extra_headers={"X-Request-Id": request_id})
                raw.parse()
                outcome = Outcome(request_id, started, 200, round(Decimal(raw.headers["X-Cost-Cents"]) * 10_000))
            except openai.APIStatusError as exc:
                outcome = Outcome(request_id, started, exc.status_code)
            except openai.APIConnectionError:  # the client's own timeout included: no answer
                outcome = Outcome(request_id, started, 0)
            with self._lock:
                self.outcomes.append(outcome)
            if outcome.status != 200:
                time.sleep(0.05)  # a failing gateway answers at once: do not spin on it
            i += 1
        http.close()

    def served_since(self, since: float) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.status == 200 and o.started >= since)

    def wait_served(self, since: float, count: int, timeout_s: float = 20) -> None:
        eventually(lambda: self.served_since(since) >= count, timeout_s)


def _leader_of(gateway: Cluster, stream: str) -> int:
    leader = asyncio.run(_streams(gateway.nats.servers))[stream][1]
    assert leader is not None, f"{stream} has no leader"
    return gateway.nats.node_named(leader)


def _led_without(gateway: Cluster, gone: int) -> bool:
    leaders = [leader for _, leader in asyncio.run(_streams(gateway.nats.servers)).values()]
    return all(leader is not None and gateway.nats.node_named(leader) != gone for leader in leaders)


def test_losing_nodes_under_load_loses_and_doubles_nothing(cluster: Cluster) -> None:
    gateway = cluster
    sub = create_sub_account(gateway, name="cluster-failover")  # its key lives in the replicated KV
    before = call(gateway, "POST", "/management/keys", json={"name": "before", "scopes": ["inference"]}).json()
    eventually(lambda: gateway.client(key=before["key"]).models.list(), 5)
    with Load(gateway, sub["key"]) as load:
        load.wait_served(0, 30)

        # The node leading USAGE crashes: publishes and the ledger's consumer move to a new leader.
        crashed = _leader_of(gateway, subjects.STREAM_USAGE)
        gateway.nats.crash(crashed)
        killed = time.monotonic()
        load.wait_served(killed, 40)
        node = gateway.nats.nodes[crashed - 1]
        eventually(lambda: jetstream_ready(node), 20)  # the supervisor brought it back; it caught up
        assert {p.name: p.restarts for p in gateway.supervisor.status().processes}[node.name] == 1

        # Then the meta leader goes for good: the cluster carries on with two nodes of three.
        leader = eventually(gateway.nats.meta_leader, 10)
        gateway.nats.stop(leader)
        stopped = time.monotonic()
        load.wait_served(stopped, 40)
        # Once every stream has a leader among the two left, KV writes work again.
        eventually(lambda: _led_without(gateway, leader), 15, 0.2)
        # A write racing the KV's own catch-up is a clean 503 (retry shortly), then it works.
        answers: list[tuple[int, str]] = []

        def write_key() -> dict[str, str] | None:
            after = call(gateway, "POST", "/management/keys", json={"name": "after", "scopes": ["inference"]})
            answers.append((after.status_code, after.json().get("error", {}).get("type", "")))
            return after.json() if after.status_code == 200 else None

        made_after = eventually(write_key, 20, 0.5)
        assert set(answers) <= {(200, ""), (503, "service_unavailable_error")}, answers
        load.wait_served(time.monotonic(), 20)
    outcomes, attempts = load.outcomes, load.attempts

    unclean = [a for a in attempts if not a.clean]
    assert not unclean, unclean[:5]
    served = {o.request_id: o for o in outcomes if o.status == 200}
    failed = [o for o in outcomes if o.status != 200]
    # Losing a node costs reconnects, not service: few attempts fail, and the SDK's retries hide most.
    assert len(attempts) <= max(24, len(outcomes) // 10), (len(attempts), len(outcomes), attempts[:5])
    assert len(failed) <= CLIENTS * 2, [(o.request_id, o.status) for o in failed]

    report = f"/sub-accounts/{sub['id']}/usage"
    eventually(lambda: call(gateway, "GET", report).json()["total"]["requests"] >= len(served), 30, 0.5)
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
        wrong = [(rid, served[rid].cost_micros, record["cost"]) for rid, record in records.items()
                 if record is not None and (record["cost"]["total_micros"] != served[rid].cost_micros
                                            or record["status"] != 200)]
        assert not wrong, wrong[:3]
        # Once: the store holds the answered requests and those failed ones the router had
        # finished (their reply was lost on the way), nothing else, nothing twice.
        metered_failures = {o.request_id for o, record in zip(failed, pool.map(stored, [o.request_id for o in failed]),
                                                              strict=True) if record is not None}
        assert call(gateway, "GET", report).json()["total"]["requests"] == len(served) + len(metered_failures)

    # Two nodes of three serve on: keys made before and after the loss both work.
    for key in (before["key"], made_after["key"], sub["key"]):
        answer = eventually(lambda k=key: gateway.client(key=k).chat.completions.create(model=MODEL, messages=USER), 10)
        assert answer.choices[0].message.content == "Echo: hi"


def _cluster_base_port() -> int:
    """A client port for node 1 with its neighbours and their route and monitoring ports all free,
    below the ephemeral range so nothing grabs one meanwhile."""
    while True:
        base = random.randrange(20000, 26000)
        ports = [base + offset + i for offset in (0, ROUTE_PORT_OFFSET, MONITOR_PORT_OFFSET) for i in range(NODES)]
        if not any(port_open("127.0.0.1", port) for port in ports):
            return base


def test_switchboard_up_with_a_nats_cluster() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-up-cluster-"))
    base = _cluster_base_port()
    ports = {"SWITCHBOARD_HTTP_PORT": free_port(), "SWITCHBOARD_NATS_PORT": base,
             "SWITCHBOARD_ROUTER_HEALTH_PORT": free_port(), "SWITCHBOARD_SIMULATOR_PORT": free_port(),
             "SWITCHBOARD_LEDGER_HEALTH_PORT": free_port(), "SWITCHBOARD_JOBS_HEALTH_PORT": free_port(),
             "SWITCHBOARD_WEBHOOKS_HEALTH_PORT": free_port()}
    env = {k: v for k, v in os.environ.items()
           if k not in PROVIDER_KEY_VARS and k not in ("SWITCHBOARD_ADMIN_KEY", "SWITCHBOARD_NATS_URL")}
    env.update({"SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_SIMULATOR": "1",
                **{name: str(port) for name, port in ports.items()}})
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "up", "--nats-cluster", str(NODES)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "switchboard up did not come up:\n" + "".join(lines)
            lines.append(line)
        text = "".join(lines)
        key = re.search(r"admin key:\s+(sk-aig-\S+)", text)
        assert key, text
        assert f"NATS:      {','.join(f'nats://127.0.0.1:{base + i}' for i in range(NODES))}" in text
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{ports['SWITCHBOARD_HTTP_PORT']}/v1",
                               api_key=key.group(1), max_retries=0)
        answer = client.chat.completions.create(model="sim/gpt-sim", messages=USER)
        assert answer.choices[0].message.content == "Echo: hi"
        streams = asyncio.run(_streams([f"nats://127.0.0.1:{base + i}" for i in range(NODES)]))
        assert streams and all(replicas == NODES for replicas, _ in streams.values()), streams
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert all((data_dir / f"nats-{i}").is_dir() for i in range(1, NODES + 1))
