"""`switchboard up`: NATS, every service and (optionally) the simulator on one machine."""

import os
import signal
import time
from pathlib import Path

from libs.contracts.keys import mint_key
from tools.cli.processes import ManagedProcess, ensure_free, start_module, start_nats, wait_http_ok

# (name, module, health URL env var, default health port, readiness path).
# The webhooks service takes its slot here when it arrives; each is one more line.
SERVICES: tuple[tuple[str, str, str, int, str], ...] = (
    ("ledger", "services.ledger", "SWITCHBOARD_LEDGER_HEALTH_PORT", 8093, "/readyz"),
    ("router", "services.router", "SWITCHBOARD_ROUTER_HEALTH_PORT", 8091, "/readyz"),
    ("jobs", "services.jobs", "SWITCHBOARD_JOBS_HEALTH_PORT", 8094, "/readyz"),
    ("webhooks", "services.webhooks", "SWITCHBOARD_WEBHOOKS_HEALTH_PORT", 8095, "/readyz"),
    ("edge", "services.edge", "SWITCHBOARD_HTTP_PORT", 8080, "/readyz"),
)
SIMULATOR_PORT = 9100


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


def run_up() -> int:
    data_dir = Path(os.environ.get("SWITCHBOARD_DATA_DIR", ".data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "logs"
    env = dict(os.environ)
    env["SWITCHBOARD_DATA_DIR"] = str(data_dir)
    env["SWITCHBOARD_ADMIN_KEY"] = admin_key(data_dir)
    started: list[ManagedProcess] = []
    try:
        if not env.get("SWITCHBOARD_NATS_URL"):
            port = int(env.get("SWITCHBOARD_NATS_PORT", "4222"))
            started.append(start_nats(data_dir, port, log_dir))
            env["SWITCHBOARD_NATS_URL"] = f"nats://127.0.0.1:{port}"
        if env.get("SWITCHBOARD_SIMULATOR") == "1":
            sim_port = int(env.get("SWITCHBOARD_SIMULATOR_PORT", SIMULATOR_PORT))
            ensure_free(sim_port, "the simulator")
            sim = start_module("upstream_sim", "tools.upstream_sim", {**env, "SIM_PORT": str(sim_port)}, log_dir)
            started.append(sim)
            wait_http_ok(f"http://127.0.0.1:{sim_port}/healthz", 20, sim.popen)
            env.setdefault("SIM_API_KEY", "sim")
            env.setdefault("SIM_BASE_URL", f"http://127.0.0.1:{sim_port}/v1")
        for name, module, port_env, default_port, path in SERVICES:
            port = int(env.get(port_env, default_port))
            ensure_free(port, name)
            proc = start_module(name, module, env, log_dir)
            started.append(proc)
            wait_http_ok(f"http://127.0.0.1:{port}{path}", 30, proc.popen)
        http_port = env.get("SWITCHBOARD_HTTP_PORT", "8080")
        print(f"\nSwitchboard is up.\n  base URL:  http://127.0.0.1:{http_port}/v1\n"
              f"  admin key: {env['SWITCHBOARD_ADMIN_KEY']}\n  logs:      {log_dir}/\n"
              f"  NATS:      {env['SWITCHBOARD_NATS_URL']}\n", flush=True)
        if not any(k.endswith("_API_KEY") and env.get(k) for k in env):
            print("No provider key found (OPENAI_API_KEY, ...). To try it without one:\n"
                  "  SWITCHBOARD_SIMULATOR=1 make up   # then use model 'sim/gpt-sim'\n", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        _wait_for_stop(started)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"switchboard: failed to start: {exc} (see {log_dir}/)", flush=True)
        return 1
    finally:
        for proc in reversed(started):
            proc.stop()


def _wait_for_stop(processes: list[ManagedProcess]) -> None:
    stopping = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopping:
        for proc in processes:
            if not proc.alive():
                print(f"switchboard: {proc.name} exited ({proc.popen.returncode}); stopping.", flush=True)
                return
        time.sleep(0.2)
    print("\nstopping...", flush=True)
