"""`switchboard up`: NATS, every service and (optionally) the simulator on one machine, supervised."""

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from libs.contracts.keys import mint_key
from libs.contracts.supervision import SUPERVISOR_STATUS_ENV
from libs.runtime.env import router_in_edge, workers
from libs.runtime.metrics_dir import service_env
from tools.cli.nats_cluster import cluster_env, jetstream_ready, node_process, plan_nodes
from tools.cli.processes import (
    ManagedProcess,
    ensure_free,
    http_ok,
    nats_process,
    port_open,
    ready_process,
    start_module,
)
from tools.cli.supervisor import Supervisor

# (name, module, health URL env var, default health port, readiness path, scaled).
# A scaled service runs SWITCHBOARD_<NAME>_WORKERS processes (default: one per CPU) sharing
# its port: the edge and the router are where requests spend their CPU. The ledger is the one
# writer of its store; jobs and webhooks wait on the network, not the CPU.
SERVICES: tuple[tuple[str, str, str, int, str, bool], ...] = (
    ("ledger", "services.ledger", "SWITCHBOARD_LEDGER_HEALTH_PORT", 8093, "/readyz", False),
    ("router", "services.router", "SWITCHBOARD_ROUTER_HEALTH_PORT", 8091, "/readyz", True),
    ("jobs", "services.jobs", "SWITCHBOARD_JOBS_HEALTH_PORT", 8094, "/readyz", False),
    ("webhooks", "services.webhooks", "SWITCHBOARD_WEBHOOKS_HEALTH_PORT", 8095, "/readyz", False),
    ("edge", "services.edge", "SWITCHBOARD_HTTP_PORT", 8080, "/readyz", True),
)
SIMULATOR_PORT = 9100
STARTUP_PATIENCE_S = 30.0  # then say which process `up` is still waiting for


def edge_module(env: Mapping[str, str]) -> str:
    """What an edge worker runs: with SWITCHBOARD_ROUTER_IN_EDGE, an edge hosting a router."""
    return "services.node" if router_in_edge(env) else "services.edge"


def admin_key(data_dir: Path) -> str:
    """SWITCHBOARD_ADMIN_KEY, else the key generated on first start and kept under .data/."""
    if os.environ.get("SWITCHBOARD_ADMIN_KEY"):
        return os.environ["SWITCHBOARD_ADMIN_KEY"]
    path = data_dir / "admin_key"
    if path.exists():
        return path.read_text().strip()
    key = mint_key()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def run_up(nats_nodes: int = 1) -> int:
    """Everything on this machine; `nats_nodes` > 1 runs NATS as that many clustered servers."""
    data_dir = Path(os.environ.get("SWITCHBOARD_DATA_DIR", ".data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "logs"
    env = dict(os.environ)
    env["SWITCHBOARD_DATA_DIR"] = str(data_dir)
    env["SWITCHBOARD_ADMIN_KEY"] = admin_key(data_dir)
    supervisor = Supervisor(data_dir / "supervisor.json", log_dir / "supervisor.log",
                            echo=lambda line: print(line, flush=True))
    env[SUPERVISOR_STATUS_ENV] = str(supervisor.status_path)
    # One machine: the edges host the routers (services/node/) unless told otherwise.
    env.setdefault("SWITCHBOARD_ROUTER_IN_EDGE", "1")
    stop = _on_stop_signals()
    try:
        if not env.get("SWITCHBOARD_NATS_URL"):
            port = int(env.get("SWITCHBOARD_NATS_PORT", "4222"))
            if nats_nodes > 1:
                nodes = plan_nodes(data_dir, nats_nodes, base_port=port)
                procs = [supervisor.add(node_process(node, nodes, log_dir)) for node in nodes]
                for node, proc in zip(nodes, procs, strict=True):
                    if not _wait_ready(supervisor, proc, partial(jetstream_ready, node), stop):
                        return 0
                env.update({k: v for k, v in cluster_env(nodes).items() if not env.get(k)})
            else:
                nats = supervisor.add(nats_process(data_dir, port, log_dir))
                if not _wait_ready(supervisor, nats, partial(port_open, "127.0.0.1", port), stop):
                    return 0
                env["SWITCHBOARD_NATS_URL"] = f"nats://127.0.0.1:{port}"
        if env.get("SWITCHBOARD_SIMULATOR") == "1":
            sim_port = int(env.get("SWITCHBOARD_SIMULATOR_PORT", SIMULATOR_PORT))
            ensure_free(sim_port, "the simulator")
            sim = supervisor.add(start_module("upstream_sim", "tools.upstream_sim",
                                              {**env, "SIM_PORT": str(sim_port)}, log_dir))
            if not _wait_ready(supervisor, sim, partial(http_ok, f"http://127.0.0.1:{sim_port}/healthz"), stop):
                return 0
            env.setdefault("SIM_API_KEY", "sim")
            env.setdefault("SIM_BASE_URL", f"http://127.0.0.1:{sim_port}/v1")
        for name, module, port_env, default_port, path, scaled in SERVICES:
            if name == "router" and router_in_edge(env):
                continue  # every edge process hosts one (services/node/)
            port = int(env.get(port_env, default_port))
            ensure_free(port, name)
            url = f"http://127.0.0.1:{port}{path}"
            workers_env = service_env(env, data_dir, name)  # their /metrics: the sum over this service's workers
            if name == "edge":
                module = edge_module(env)
            for worker in range(workers(name) if scaled else 1):
                proc = supervisor.add(start_module(name if worker == 0 else f"{name}-{worker + 1}", module,
                                                   workers_env, log_dir))
                if not _wait_ready(supervisor, proc, partial(ready_process, url, proc), stop):
                    return 0
        http_port = env.get("SWITCHBOARD_HTTP_PORT", "8080")
        print(f"\nSwitchboard is up.\n  base URL:  http://127.0.0.1:{http_port}/v1\n"
              f"  admin key: {env['SWITCHBOARD_ADMIN_KEY']}\n  logs:      {log_dir}/\n"
              f"  NATS:      {env['SWITCHBOARD_NATS_URL']}\n", flush=True)
        if not any(k.endswith("_API_KEY") and env.get(k) for k in env):
            print("No provider key found (OPENAI_API_KEY, ...). To try it without one:\n"
                  "  SWITCHBOARD_SIMULATOR=1 make up   # then use model 'sim/gpt-sim'\n", flush=True)
        print("A process that dies is restarted. Ctrl-C stops everything.", flush=True)
        supervisor.run_until(stop.is_set)
        return 0
    except RuntimeError as exc:
        print(f"switchboard: failed to start: {exc} (see {log_dir}/)", flush=True)
        return 1
    finally:
        if stop.is_set():
            print("\nstopping...", flush=True)
        supervisor.stop_all()


def _on_stop_signals() -> threading.Event:
    """SIGINT (Ctrl-C) and SIGTERM are the only way to stop everything; anything else is restarted."""
    stop = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def _wait_ready(supervisor: Supervisor, proc: ManagedProcess, ready: Callable[[], bool],
                stop: threading.Event) -> bool:
    """Wait until `proc` is ready, restarting it meanwhile if it dies; False if told to stop first.

    A service that cannot start keeps being retried with backoff (its reason on the terminal)
    rather than failing the whole `up`: it may depend on something that is on its way back.
    """
    started = time.monotonic()
    warned = False

    def done() -> bool:
        nonlocal warned
        if not warned and time.monotonic() - started > STARTUP_PATIENCE_S:
            warned = True
            print(f"switchboard: still waiting for {proc.name} to be ready (see {proc.log_path})", flush=True)
        return stop.is_set() or ready()

    supervisor.run_until(done, interval_s=0.05)
    return not stop.is_set()
