"""`switchboard up` (what `make up` runs): starts everything, prints the URL and
admin key, stops cleanly on Ctrl-C, and reuses .data/ the second time."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

from tests.integration.cluster import PROVIDER_KEY_VARS, eventually
from tools.cli.processes import free_port


def _up(data_dir: Path, ports: dict[str, int],
        extra: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in PROVIDER_KEY_VARS and k not in ("SWITCHBOARD_ADMIN_KEY", "SWITCHBOARD_ROUTER_IN_EDGE")}
    env.update({"SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_SIMULATOR": "1",
                "SWITCHBOARD_EDGE_WORKERS": "2", "SWITCHBOARD_ROUTER_WORKERS": "2",
                **{name: str(port) for name, port in ports.items()}, **(extra or {})})
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C" in line:
            text = "".join(lines)
            url = re.search(r"base URL:\s+(\S+)", text)
            key = re.search(r"admin key:\s+(sk-aig-\S+)", text)
            assert url and key, text
            return proc, url.group(1), key.group(1)
    proc.kill()
    raise AssertionError("switchboard up did not come up:\n" + "".join(lines))


def _children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    pairs = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    return {child for child, parent in pairs if parent == pid}


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.add(pid)
    return alive


def test_up_serves_stops_cleanly_and_reuses_data() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-up-"))
    ports = {"SWITCHBOARD_HTTP_PORT": free_port(), "SWITCHBOARD_NATS_PORT": free_port(),
             "SWITCHBOARD_ROUTER_HEALTH_PORT": free_port(), "SWITCHBOARD_SIMULATOR_PORT": free_port(),
             "SWITCHBOARD_LEDGER_HEALTH_PORT": free_port(), "SWITCHBOARD_JOBS_HEALTH_PORT": free_port(),
             "SWITCHBOARD_WEBHOOKS_HEALTH_PORT": free_port()}
    proc, url, key = _up(data_dir, ports)
    try:
        assert url == f"http://127.0.0.1:{ports['SWITCHBOARD_HTTP_PORT']}/v1"
        client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
        answer = client.chat.completions.create(model="sim/gpt-sim", messages=[{"role": "user", "content": "hey"}])
        assert answer.choices[0].message.content == "Echo: hey"
        children = _children_of(proc.pid)
        # nats-server, simulator, ledger, jobs, webhooks, 2 edges: on one machine each edge hosts a router.
        assert len(children) == 7
        # Both edge workers serve the one port: new connections reach either (SO_REUSEPORT).
        answered = {httpx.get(url.removesuffix("/v1") + "/readyz").json()["pid"] for _ in range(30)}
        assert len(answered) == 2 and answered <= children
        # The edges' routers answer on the router's health port, with the routers' metrics.
        router_port = ports["SWITCHBOARD_ROUTER_HEALTH_PORT"]
        assert httpx.get(f"http://127.0.0.1:{router_port}/readyz").status_code == 200
        # (a worker's counts reach the shared files within a second: libs/runtime/metrics_buffer.py)
        assert eventually(lambda: "switchboard_router_requests_total{"
                          in httpx.get(f"http://127.0.0.1:{router_port}/metrics").text, 5)
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        stopping = time.monotonic()
        assert proc.wait(timeout=30) == 0
    # Every service stops promptly: none waits out nats-py's 30 s drain or a pull's timeout. Quiet, the
    # whole stop takes about 3 s; the bound leaves room for a loaded CI machine (seen: 11 s).
    assert time.monotonic() - stopping < 20
    assert _alive(children) == set()
    assert (data_dir / "nats").is_dir() and (data_dir / "admin_key").read_text().strip() == key

    proc, _, second_key = _up(data_dir, ports)
    try:
        assert second_key == key  # same .data/, same admin key
        client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
        assert client.models.retrieve("sim/gpt-sim").id == "sim/gpt-sim"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
