"""Supervision (issue 9, defect 4): a process that dies is restarted with backoff, its
restarts counted in /readyz; only Ctrl-C stops `switchboard up`."""

import asyncio
import os
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import openai
import pytest

from libs.contracts import subjects
from libs.contracts.keys import ApiKeyRecord, encode_record, hash_key, mint_key
from libs.contracts.supervision import STATE_RUNNING, STATE_STOPPED, SupervisorStatus
from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster
from tests.integration.test_switchboard_up import _alive, _children_of, _up
from tools.cli.processes import free_port, start_module

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    gateway = start_cluster()
    yield gateway
    cleanup(gateway)


def _readyz_supervised(url: str) -> dict[str, dict[str, Any]]:
    """The supervisor's processes, by name, as a service's /readyz shows them."""
    response = httpx.get(url, timeout=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    return {p["name"]: p for p in body["supervisor"]["processes"]}


def _chat(gateway: Cluster) -> str | None:
    return gateway.client().chat.completions.create(model="openai/gpt-4o", messages=USER).choices[0].message.content


def test_a_crashed_router_comes_back_and_its_restart_shows_in_readyz(cluster: Cluster) -> None:
    router = cluster.routers[0]
    before = _readyz_supervised(f"http://127.0.0.1:{cluster.edge_ports[0]}/readyz")[router.name]
    crashed_pid = router.popen.pid
    router.crash()
    assert eventually(lambda: _chat(cluster), 20) == "Echo: hi"
    assert router.alive() and router.popen.pid != crashed_pid  # the same handle, a new process
    after = eventually(lambda: (p := _readyz_supervised(f"http://127.0.0.1:{cluster.edge_ports[0]}/readyz")
                                [router.name])["state"] == STATE_RUNNING and p, 5)
    assert after["restarts"] == before["restarts"] + 1
    assert (after["pid"], after["last_exit_code"]) == (router.popen.pid, -signal.SIGKILL)
    log = (cluster.log_dir / "supervisor.log").read_text()
    assert f"{router.name} exited (killed by SIGKILL)" in log and f"{router.name} restarted" in log


async def _kv(nats_url: str, key: str, record: ApiKeyRecord | None) -> bytes | None:
    """Put `record` under the key's hash (if given) and read it back."""
    nc = await nats.connect(nats_url)
    try:
        kv = await nc.jetstream().key_value(subjects.KV_API_KEYS)
        if record is not None:
            await kv.put(hash_key(key), encode_record(record))
        return (await kv.get(hash_key(key))).value
    finally:
        await nc.close()


def test_a_crashed_nats_server_comes_back_with_its_jetstream_state(cluster: Cluster) -> None:
    key = mint_key()
    record = ApiKeyRecord(key_id="key_supervised", account_id="root", scopes=("inference",), name="s")
    stored = asyncio.run(_kv(cluster.nats.url, key, record))
    name = f"nats-{cluster.nats.port}"
    restarts = _readyz_supervised(f"http://127.0.0.1:{cluster.edge_ports[0]}/readyz")[name]["restarts"]
    cluster.nats.crash()
    assert eventually(lambda: _chat(cluster), 30, interval_s=0.2) == "Echo: hi"
    assert asyncio.run(_kv(cluster.nats.url, key, None)) == stored  # same port, same store
    eventually(lambda: cluster.client(key=key).models.list(), 10)
    entry = _readyz_supervised(f"http://127.0.0.1:{cluster.edge_ports[0]}/readyz")[name]
    assert (entry["state"], entry["restarts"], entry["last_exit_code"]) == (STATE_RUNNING, restarts + 1, -9)


def test_a_service_that_fails_at_start_is_retried_with_backoff(cluster: Cluster) -> None:
    proc = cluster.supervisor.add(start_module("bogus", "services.no_such_service", cluster.env, cluster.log_dir))
    try:
        edge_readyz = f"http://127.0.0.1:{cluster.edge_ports[0]}/readyz"
        entry = eventually(lambda: (p := _readyz_supervised(edge_readyz)["bogus"])["restarts"] >= 3 and p, 20)
        assert entry["last_exit_code"] == 1
        log = (cluster.log_dir / "supervisor.log").read_text()
        waits = [float(s) for s in re.findall(r"bogus exited \(exit code 1\) after [\d.]+s; restarting in ([\d.]+)s",
                                              log)]
        assert waits[:3] == [0.5, 1.0, 2.0]  # doubling: retried, never in a busy loop
        # Why it fails is in the supervisor's log (the terminal, under `switchboard up`).
        assert "No module named services.no_such_service" in log
    finally:
        proc.stop()
    stopped = eventually(lambda: (p := _readyz_supervised(edge_readyz)["bogus"])["state"] == STATE_STOPPED and p, 5)
    assert stopped["pid"] is None


def test_kill_means_stay_down(cluster: Cluster) -> None:
    """What the tests that take a part away on purpose rely on: kill() is not a crash."""
    jobs = cluster.jobs[0]
    jobs.kill()
    try:
        time.sleep(1.5)  # three times the first backoff: a crash would have been restarted by now
        assert not jobs.alive()
        entry = _readyz_supervised(f"http://127.0.0.1:{cluster.edge_ports[0]}/readyz")[jobs.name]
        assert (entry["state"], entry["pid"]) == (STATE_STOPPED, None)
    finally:
        cluster.jobs.remove(jobs)
        cluster.start_jobs()


def _status(data_dir: Path) -> dict[str, Any]:
    status = msgspec.json.decode((data_dir / "supervisor.json").read_bytes(), type=SupervisorStatus)
    return {p.name: p for p in status.processes}


def test_switchboard_up_restarts_a_killed_child_and_only_sigint_stops_it() -> None:
    """With edges and routers apart (as a cluster runs them): a killed router is restarted."""
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-up-"))
    ports = {"SWITCHBOARD_HTTP_PORT": free_port(), "SWITCHBOARD_NATS_PORT": free_port(),
             "SWITCHBOARD_ROUTER_HEALTH_PORT": free_port(), "SWITCHBOARD_SIMULATOR_PORT": free_port(),
             "SWITCHBOARD_LEDGER_HEALTH_PORT": free_port(), "SWITCHBOARD_JOBS_HEALTH_PORT": free_port(),
             "SWITCHBOARD_WEBHOOKS_HEALTH_PORT": free_port()}
    proc, url, key = _up(data_dir, ports, {"SWITCHBOARD_ROUTER_IN_EDGE": "0"})
    try:
        # A short client timeout: a request published in the instant before nats-server reads the
        # killed router's EOF is lost with it (the edge would wait out its 130 s); the next is not.
        client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=5)
        killed = _status(data_dir)["router"].pid
        assert killed in _children_of(proc.pid)
        os.kill(killed, signal.SIGKILL)
        answer = eventually(lambda: client.chat.completions.create(model="sim/gpt-sim", messages=USER), 20)
        assert answer.choices[0].message.content == "Echo: hi"
        assert proc.poll() is None  # `switchboard up` kept running
        # The other router worker may have answered first: the restart is waited for, not assumed.
        router = eventually(lambda: (r := _status(data_dir)["router"]).restarts == 1 and r.state == STATE_RUNNING
                            and r, 20)
        assert (router.state, router.restarts, router.last_exit_code) == (STATE_RUNNING, 1, -9)
        assert router.pid != killed and router.pid in _children_of(proc.pid)
        edge = _readyz_supervised(f"http://127.0.0.1:{ports['SWITCHBOARD_HTTP_PORT']}/readyz")
        assert edge["router"]["restarts"] == 1 and edge["edge"]["restarts"] == 0
        children = _children_of(proc.pid)
        assert len(children) == 9  # nats-server, simulator, ledger, 2 routers, jobs, webhooks, 2 edges
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert _alive(children) == set()
    assert proc.stdout is not None
    output = proc.stdout.read()
    assert "router exited (killed by SIGKILL)" in output and "router restarted" in output, output
    assert "stopping" in output
