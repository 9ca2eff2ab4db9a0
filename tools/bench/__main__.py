"""`python -m tools.bench`: start a private gateway (NATS, simulator, router, edge
on free ports), drive the same load at the gateway and at the simulator
directly, and write bench-results/<timestamp>.json plus a table.

Environment knobs: BENCH_SECONDS (per run, default 10), BENCH_RATES (default
"200,500,1000"), BENCH_UPSTREAM_MS (simulated upstream latency, default 10),
BENCH_PEAK_CONNECTIONS (default 32).
"""

import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from libs.contracts.keys import mint_key
from tools.bench.loadgen import RunResult, Target, run_hey, run_wrk
from tools.cli.processes import ManagedProcess, free_port, start_module, start_nats, wait_http_ok

CHAT = {"messages": [{"role": "user", "content": "Summarise the benefits of a gateway in one line."}],
        "max_tokens": 32}


def _start(root: Path, upstream_ms: int) -> tuple[list[ManagedProcess], str, str, str]:
    logs = root / "logs"
    nats_port, sim_port, edge_port, router_health = free_port(), free_port(), free_port(), free_port()
    procs = [start_nats(root, nats_port, logs)]
    env = {**os.environ, "SIM_PORT": str(sim_port), "SIM_LATENCY_MS": str(upstream_ms),
           "SIM_TTFT_MS": str(upstream_ms)}
    env.pop("SIM_API_KEY", None)
    procs.append(start_module("upstream_sim", "tools.upstream_sim", env, logs))
    wait_http_ok(f"http://127.0.0.1:{sim_port}/healthz", 20, procs[-1].popen)
    admin = mint_key()
    env = {**env, "SWITCHBOARD_NATS_URL": f"nats://127.0.0.1:{nats_port}", "SWITCHBOARD_ADMIN_KEY": admin,
           "SWITCHBOARD_HTTP_PORT": str(edge_port), "SWITCHBOARD_ROUTER_HEALTH_PORT": str(router_health),
           "SWITCHBOARD_DATA_DIR": str(root), "SIM_API_KEY": "bench", "SIM_BASE_URL": f"http://127.0.0.1:{sim_port}/v1",
           "SWITCHBOARD_LOG_LEVEL": os.environ.get("SWITCHBOARD_LOG_LEVEL", "info")}
    procs.append(start_module("router", "services.router", env, logs))
    wait_http_ok(f"http://127.0.0.1:{router_health}/readyz", 30, procs[-1].popen)
    procs.append(start_module("edge", "services.edge", env, logs))
    wait_http_ok(f"http://127.0.0.1:{edge_port}/readyz", 30, procs[-1].popen)
    return procs, f"http://127.0.0.1:{edge_port}/v1", f"http://127.0.0.1:{sim_port}/v1", admin


def _targets(gateway: str, direct: str, admin: str, stream: bool) -> tuple[Target, Target]:
    extra = {"stream": True} if stream else {}
    return (
        Target("gateway", f"{gateway}/chat/completions", {"Authorization": f"Bearer {admin}"},
               json.dumps({"model": "sim/gpt-sim", **CHAT, **extra}).encode()),
        Target("direct", f"{direct}/chat/completions", {"Authorization": "Bearer bench"},
               json.dumps({"model": "gpt-sim", **CHAT, **extra}).encode()),
    )


def _row(label: str, gw: RunResult, direct: RunResult) -> dict[str, object]:
    return {"scenario": label, "gateway": asdict(gw), "direct": asdict(direct),
            "added_p50_ms": round(gw.p50_ms - direct.p50_ms, 3),
            "added_p99_ms": round(gw.p99_ms - direct.p99_ms, 3)}


def _table(rows: list[dict[str, object]]) -> str:
    head = (f"{'scenario':<26}{'gw rps':>9}{'dir rps':>9}{'gw p50':>9}{'dir p50':>9}{'+p50':>8}"
            f"{'gw p90':>9}{'gw p99':>9}{'dir p99':>9}{'+p99':>8}{'gw err':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        g, d = r["gateway"], r["direct"]
        lines.append(f"{r['scenario']:<26}{g['rps']:>9.0f}{d['rps']:>9.0f}{g['p50_ms']:>9.2f}{d['p50_ms']:>9.2f}"
                     f"{r['added_p50_ms']:>8.2f}{g['p90_ms']:>9.2f}{g['p99_ms']:>9.2f}{d['p99_ms']:>9.2f}"
                     f"{r['added_p99_ms']:>8.2f}{g['errors']:>8}")
    return "\n".join(lines)


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    rates = [float(r) for r in os.environ.get("BENCH_RATES", "200,500,1000").split(",") if r]
    upstream_ms = int(os.environ.get("BENCH_UPSTREAM_MS", "10"))
    peak_conns = int(os.environ.get("BENCH_PEAK_CONNECTIONS", "32"))
    root = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    procs, gateway, direct, admin = _start(root, upstream_ms)
    rows: list[dict[str, object]] = []
    try:
        gw, dr = _targets(gateway, direct, admin, stream=False)
        run_hey(gw, None, 1, 2)  # warm-up: connections, pools, caches
        run_hey(dr, None, 1, 2)
        rows.append(_row("1 connection, sequential", run_hey(gw, None, 1, seconds), run_hey(dr, None, 1, seconds)))
        for rate in rates:
            conns = max(4, int(rate * (upstream_ms + 20) / 1000) + 4)
            rows.append(_row(f"{rate:.0f} rps fixed", run_hey(gw, rate, conns, seconds),
                             run_hey(dr, rate, conns, seconds)))
        rows.append(_row(f"peak, {peak_conns} conns (wrk)", run_wrk(gw, peak_conns, seconds),
                         run_wrk(dr, peak_conns, seconds)))
        gw_s, dr_s = _targets(gateway, direct, admin, stream=True)
        rows.append(_row("stream, 1 connection", run_hey(gw_s, None, 1, seconds), run_hey(dr_s, None, 1, seconds)))
        rows.append(_row("stream, 200 rps fixed", run_hey(gw_s, 200, 12, seconds), run_hey(dr_s, 200, 12, seconds)))
    finally:
        for proc in reversed(procs):
            proc.stop()
    report = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "upstream_latency_ms": upstream_ms,
              "seconds_per_run": seconds, "cpus": os.cpu_count(), "rows": rows}
    out_dir = Path("bench-results")
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(_table(rows))
    print(f"\nupstream latency {upstream_ms} ms; {seconds:g}s per run; latencies in ms; report: {path}")


if __name__ == "__main__":
    main()
