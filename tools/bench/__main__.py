"""`python -m tools.bench`: start a private gateway (NATS, simulator, ledger, edges
on free ports, each edge hosting a router as under `switchboard up`; the
architecture's floor, tools/bench/floor.py), drive the same load at the gateway,
the floor and the simulator directly, and write bench-results/<timestamp>.json
plus a table. The non-stream rows are then run again with edges and routers
apart (SWITCHBOARD_ROUTER_IN_EDGE=0, as a cluster runs them); set that variable
to run everything that way.

Knobs: BENCH_SECONDS (per run, default 10), BENCH_RATES (default
"200,500,1000"), BENCH_UPSTREAM_MS (simulated upstream latency, default 10),
BENCH_PEAK_CONNECTIONS (default 64).

Issue 10's scenarios (after the rows above, on the same stack; tools/bench/streams.py, soak.py):
- CPU per request of edge, router, nats-server and ledger at 500 rps non-stream and 200 rps stream
  (BENCH_SECONDS each).
- Memory per idle open stream: BENCH_IDLE_STREAMS (default 500) streams whose first chunk comes
  after BENCH_IDLE_TTFT_MS (default 15000); measured before the bursts below, which leave the
  heaps at their high-water mark (RSS never shrinks back).
- Streams at scale: BENCH_STREAM_STEPS (default "100,500,1000,2000") concurrent 2-second streams
  (200 chunks 10 ms apart), direct vs gateway, and the knee; BENCH_STREAM_CLIENTS load client
  processes (default 1), BENCH_STREAM_TIMEOUT_S per stream (default 30).
- Soak: BENCH_SOAK_SECONDS (default 600; 0 skips it) at 400 rps non-stream + 100 rps stream,
  RSS of every service every 10 s.
BENCH_ONLY=cpu,features,streams,idle,soak (any of them; "scale" = all five) starts the stack, runs just those
and writes their report, e.g. `BENCH_ONLY=streams BENCH_STREAM_STEPS=100,500,1000 python -m tools.bench`.
"""

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

import msgspec

from libs.contracts.keys import mint_key
from libs.contracts.supervision import SUPERVISOR_STATUS_ENV
from libs.runtime.env import router_in_edge, workers
from libs.runtime.metrics_dir import service_env
from tools.bench import features_ab, nginx_upstream
from tools.bench.caps import lines as caps_lines
from tools.bench.caps import measure as measure_caps
from tools.bench.ingest import measure as measure_ingest
from tools.bench.jobs import measure as measure_jobs
from tools.bench.loadgen import RunResult, Target, run_closed, run_fixed_rate, run_wrk
from tools.bench.soak import CpuPerRequest, SoakReport, cpu_lines, measure_cpu, measure_soak, soak_lines
from tools.bench.spend import lines as spend_lines
from tools.bench.spend import measure as measure_spend
from tools.bench.streams import (
    STREAM_TPS,
    IdleMemory,
    Load,
    ScaleReport,
    idle_lines,
    measure_idle,
    measure_scale,
    stream_body,
)
from tools.bench.streams import lines as scale_lines
from tools.bench.webhooks import measure as measure_webhooks
from tools.cli.processes import ManagedProcess, free_port, ready_process, spawn, start_module, start_nats, wait_http_ok
from tools.cli.up import edge_module

CHAT = {"messages": [{"role": "user", "content": "Summarise the benefits of a gateway in one line."}],
        "max_tokens": 32}
TARGETS = ("direct", "floor", "gateway")
SCALE_PARTS = ("cpu", "features", "streams", "idle", "soak")


class Stack(NamedTuple):
    procs: list[ManagedProcess]
    # direct, floor, gateway: the simulator behind them (streams, directives); plain_direct,
    # plain_floor: the upstream of the non-stream rows (nginx when installed, else the simulator).
    urls: dict[str, str]
    admin: str
    restart_gateway: Callable[[dict[str, str]], None]  # edges and routers again, with these variables added
    plain_model: str  # the gateway's model for the non-stream rows

    def pids(self) -> dict[str, int]:
        """Process name -> pid, as they run now (the router may have been restarted); no floor processes."""
        return {("nats-server" if p.name.startswith("nats") else p.name): p.popen.pid
                for p in self.procs if not p.name.startswith("floor")}

    def floor_pids(self, plain: bool) -> dict[str, int]:
        """The floor in front of the non-stream upstream (`plain`) or the simulator, named as the
        gateway's services are, so their CPU per request reads side by side."""
        suffix = "-plain" if plain and any(p.name == "floor-edge-plain" for p in self.procs) else ""
        names = {f"floor-edge{suffix}": "edge", f"floor-router{suffix}": "router"}
        pids = {names[p.name]: p.popen.pid for p in self.procs if p.name in names}
        return {**pids, "nats-server": self.pids()["nats-server"]}


def _start(root: Path, upstream_ms: int) -> Stack:
    """NATS, the simulator (and nginx), the ledger, SWITCHBOARD_ROUTER_WORKERS routers and
    SWITCHBOARD_EDGE_WORKERS edges (default: as many as `switchboard up` runs, libs/runtime/env.py),
    and the floor (one process of each)."""
    logs = root / "logs"
    nats_port, sim_port, edge_port, floor_port, health, ledger_health = (free_port() for _ in range(6))
    nats_url, sim_url = f"nats://127.0.0.1:{nats_port}", f"http://127.0.0.1:{sim_port}/v1"
    procs = [start_nats(root, nats_port, logs)]
    env = {**os.environ, "SIM_PORT": str(sim_port), "SIM_LATENCY_MS": str(upstream_ms),
           "SIM_TTFT_MS": str(upstream_ms)}
    env.pop("SIM_API_KEY", None)
    procs.append(start_module("upstream_sim", "tools.upstream_sim", env, logs))
    wait_http_ok(f"http://127.0.0.1:{sim_port}/healthz", 20, procs[-1].popen)
    admin = mint_key()
    config = root / "bench.toml"
    # Routing features configured but not triggered: a model with two healthy deployments and
    # a fallback, to show what the machinery costs when nothing fails.
    use_nginx = os.environ.get("BENCH_UPSTREAM", "nginx" if nginx_upstream.available() else "sim") == "nginx"
    plain_url = sim_url
    if use_nginx:
        nginx_port = free_port()
        procs.append(nginx_upstream.start(root, nginx_port, logs))
        plain_url = f"http://127.0.0.1:{nginx_port}/v1"
    config.write_text(
        f'[[providers]]\nslug = "fast"\nbase_url = "{plain_url}"\napi_key_env = "SIM_API_KEY"\n'
        f'[[providers]]\nslug = "sim2"\nbase_url = "{sim_url}"\napi_key_env = "SIM_API_KEY"\n'
        '[[models]]\nid = "sim/ha"\nupstream = "gpt-sim"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n'
        'deployments = [{provider = "sim"}, {provider = "sim2"}]\nfallbacks = ["sim/gpt-sim"]\n')
    env = {**env, "SWITCHBOARD_NATS_URL": nats_url, "SWITCHBOARD_ADMIN_KEY": admin, "SWITCHBOARD_CONFIG": str(config),
           "SWITCHBOARD_HTTP_PORT": str(edge_port), "SWITCHBOARD_ROUTER_HEALTH_PORT": str(health),
           "SWITCHBOARD_DATA_DIR": str(root), "SIM_API_KEY": "bench", "SIM_BASE_URL": sim_url,
           "SWITCHBOARD_LEDGER_HEALTH_PORT": str(ledger_health),
           # /readyz then names the pid that answered: several workers share one port.
           SUPERVISOR_STATUS_ENV: str(root / "no-supervisor.json")}
    # As under `switchboard up`, the edges host the routers unless SWITCHBOARD_ROUTER_IN_EDGE=0
    # (services/node/); the routers' health port (and /metrics) is then the edges'.
    env.setdefault("SWITCHBOARD_ROUTER_IN_EDGE", "1")
    edges = workers("edge")
    procs.append(start_module("ledger", "services.ledger", env, logs))
    wait_http_ok(f"http://127.0.0.1:{ledger_health}/readyz", 30, procs[-1].popen)

    def start_workers(name: str, module: str, count: int, url: str, extra: dict[str, str]) -> list[ManagedProcess]:
        # As `switchboard up` runs them: the workers of a service share a fresh metrics folder.
        # A variable set to "" in `extra` is left out.
        merged = {**service_env(env, root, name), **extra}
        worker_env = {k: v for k, v in merged.items() if v != ""}
        started = []
        for worker in range(count):
            proc = start_module(name if worker == 0 else f"{name}-{worker + 1}", module, worker_env, logs)
            deadline = time.monotonic() + 30
            while not ready_process(url, proc):
                if time.monotonic() > deadline or proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} did not get ready (see {proc.log_path})")
                time.sleep(0.05)
            started.append(proc)
        return started

    def routers(extra: dict[str, str]) -> int:
        return 0 if router_in_edge({**env, **extra}) else workers("router")

    def restart_gateway(extra: dict[str, str]) -> None:
        for proc in [p for p in procs if p.name.split("-")[0] in ("router", "edge")]:
            proc.stop()
            procs.remove(proc)
        procs.extend(start_workers("router", "services.router", routers(extra),
                                   f"http://127.0.0.1:{health}/readyz", extra))
        procs.extend(start_workers("edge", edge_module({**env, **extra}), edges, f"http://127.0.0.1:{edge_port}/readyz",
                                   extra))

    restart_gateway({})
    floor = [sys.executable, "-m", "tools.bench.floor"]
    plain_floor_port = floor_port
    procs.append(spawn("floor-router", [*floor, "router", "0", nats_url, sim_url], env, logs))
    procs.append(spawn("floor-edge", [*floor, "edge", str(floor_port), nats_url, sim_url], env, logs))
    wait_http_ok(f"http://127.0.0.1:{floor_port}/healthz", 30, procs[-1].popen)
    if use_nginx:  # a second floor in front of nginx, for the non-stream rows
        plain_floor_port = free_port()
        procs.append(spawn("floor-router-plain", [*floor, "router", "0", nats_url, plain_url, "floor.plain"], env,
                           logs))
        procs.append(spawn("floor-edge-plain", [*floor, "edge", str(plain_floor_port), nats_url, plain_url,
                                                "floor.plain"], env, logs))
        wait_http_ok(f"http://127.0.0.1:{plain_floor_port}/healthz", 30, procs[-1].popen)
    urls = {"direct": sim_url, "floor": f"http://127.0.0.1:{floor_port}/v1",
            "gateway": f"http://127.0.0.1:{edge_port}/v1", "plain_direct": plain_url,
            "plain_floor": f"http://127.0.0.1:{plain_floor_port}/v1",
            # the routers share this port, and each answers with the sum over all of them
            "router_metrics": f"http://127.0.0.1:{health}/metrics"}
    return Stack(procs, urls, admin, restart_gateway, "fast/gpt-sim")


def _targets(stack: Stack, stream: bool) -> dict[str, Target]:
    urls = stack.urls
    extra = {"stream": True} if stream else {}
    upstream_body = json.dumps({"model": "gpt-sim", **CHAT, **extra}).encode()
    direct, floor = (urls["direct"], urls["floor"]) if stream else (urls["plain_direct"], urls["plain_floor"])
    model = "sim/gpt-sim" if stream else stack.plain_model
    return {
        "direct": Target("direct", f"{direct}/chat/completions", {"Authorization": "Bearer bench"}, upstream_body),
        "floor": Target("floor", f"{floor}/chat/completions", {}, upstream_body),
        "gateway": Target("gateway", f"{urls['gateway']}/chat/completions", {"Authorization": f"Bearer {stack.admin}"},
                          json.dumps({"model": model, **CHAT, **extra}).encode()),
    }


def _row(label: str, results: dict[str, RunResult]) -> dict[str, object]:
    gw, floor, direct = results["gateway"], results["floor"], results["direct"]
    return {"scenario": label, **{name: asdict(r) for name, r in results.items()},
            "added_p50_ms": round(gw.p50_ms - direct.p50_ms, 3),
            "added_p99_ms": round(gw.p99_ms - direct.p99_ms, 3),
            "floor_added_p50_ms": round(floor.p50_ms - direct.p50_ms, 3),
            "ours_over_floor_p50_ms": round(gw.p50_ms - floor.p50_ms, 3)}


def _table(rows: list[dict[str, object]]) -> str:
    head = (f"{'scenario':<24}{'rps gw':>8}{'rps flr':>8}{'rps dir':>8}{'p50 dir':>8}{'p50 flr':>8}{'p50 gw':>8}"
            f"{'p90 gw':>8}{'p99 dir':>8}{'p99 gw':>8}{'+p50':>7}{'+p99':>7}{'gw-flr':>7}{'err':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        g, f, d = r["gateway"], r["floor"], r["direct"]
        lines.append(
            f"{r['scenario']:<24}{g['rps']:>8.0f}{f['rps']:>8.0f}{d['rps']:>8.0f}{d['p50_ms']:>8.2f}{f['p50_ms']:>8.2f}"
            f"{g['p50_ms']:>8.2f}{g['p90_ms']:>8.2f}{d['p99_ms']:>8.2f}{g['p99_ms']:>8.2f}"
            f"{r['added_p50_ms']:>7.2f}{r['added_p99_ms']:>7.2f}{r['ours_over_floor_p50_ms']:>7.2f}{g['errors']:>5}")
    return "\n".join(lines)


def _metering_ab(stack: Stack, seconds: float, slack_ms: float, rounds: int = 2) -> dict[str, list[dict[str, object]]]:
    """500 rps with metering on, then off, alternating, on the same stack: only the edges and routers
    restart, so the comparison is not confounded by a different ledger, NATS state or time of the run."""
    target = _targets(stack, stream=False)["gateway"]
    results: dict[str, list[dict[str, object]]] = {"on": [], "off": []}
    try:
        for _ in range(rounds):
            for metering in (True, False):
                stack.restart_gateway({"SWITCHBOARD_METERING": str(int(metering))})
                run_closed(target, 2, 1)
                results["on" if metering else "off"].append(asdict(run_fixed_rate(target, 500, seconds, slack_ms)))
    finally:
        stack.restart_gateway({})
    return results


def _apart(stack: Stack, seconds: float, slack_ms: float, peak_conns: int) -> dict[str, object]:
    """The non-stream gateway rows again with edges and routers as separate processes
    (SWITCHBOARD_ROUTER_IN_EDGE=0, as a cluster runs them), for the side by side."""
    stack.restart_gateway({"SWITCHBOARD_ROUTER_IN_EDGE": "0"})
    try:
        target = replace(_targets(stack, stream=False)["gateway"], name="non-stream, apart")
        run_closed(target, 2, 2)
        one, peak = run_closed(target, 1, seconds), run_wrk(target, peak_conns, seconds)
        cpu = measure_cpu(target, stack.pids(), 500, seconds, slack_ms)
    finally:
        stack.restart_gateway({})
    return {"one_connection": asdict(one), "peak": asdict(peak), "peak_connections": peak_conns,
            "cpu_per_request": msgspec.to_builtins(cpu)}


def _apart_lines(apart: dict[str, object], rows: list[dict[str, object]]) -> list[str]:
    one, peak, cpu = apart["one_connection"], apart["peak"], apart["cpu_per_request"]
    direct = rows[0]["direct"]
    assert isinstance(one, dict) and isinstance(peak, dict) and isinstance(cpu, dict) and isinstance(direct, dict)
    return ["edge and router apart (SWITCHBOARD_ROUTER_IN_EDGE=0, as in a cluster; the rows above: in one process):",
            f"  1 connection: p50 {one['p50_ms']:.2f} ms (+{one['p50_ms'] - direct['p50_ms']:.2f}), "
            f"p99 {one['p99_ms']:.2f} ms (+{one['p99_ms'] - direct['p99_ms']:.2f})",
            f"  peak, {apart['peak_connections']} conns: {peak['rps']:.0f} rps, {peak['errors']} errors",
            "  CPU per request at 500 rps, µs: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu["us_per_request"].items())
            + f" (total {cpu['total_us']:.0f})"]


def _routing_rows(urls: dict[str, str], admin: str, seconds: float,
                  slack_ms: float) -> dict[str, dict[str, object]]:
    """Failover configured but not triggered, and cache hits, on the same gateway."""
    url, headers = f"{urls['gateway']}/chat/completions", {"Authorization": f"Bearer {admin}"}
    ha = Target("ha", url, headers, json.dumps({"model": "sim/ha", **CHAT}).encode())
    cached = Target("cache", url, {**headers, "x-cache": "force"},
                    json.dumps({"model": "sim/gpt-sim", "temperature": 0, **CHAT}).encode())
    run_closed(ha, 1, 1)
    run_closed(cached, 1, 1)  # fills the cache entry every later request hits
    return {"failover configured, 1 connection": asdict(run_closed(ha, 1, seconds)),
            "failover configured, 500 rps fixed": asdict(run_fixed_rate(ha, 500, seconds, slack_ms)),
            "cache hit, 1 connection": asdict(run_closed(cached, 1, seconds)),
            "cache hit, 500 rps fixed": asdict(run_fixed_rate(cached, 500, seconds, slack_ms))}


class Scale(msgspec.Struct, omit_defaults=True):
    """Issue 10's scenarios; a part not run stays None and is left out of the report."""

    cpu_per_request: list[CpuPerRequest] | None = None
    streams_at_scale: ScaleReport | None = None
    idle_stream_memory: IdleMemory | None = None
    soak: SoakReport | None = None
    features: features_ab.FeatureReport | None = None


def _scale(stack: Stack, seconds: float, slack_ms: float, parts: set[str]) -> Scale:
    """Issue 10's scenarios, in this order: CPU per request, idle-stream memory, streams at scale, soak."""
    env, out = os.environ, Scale()
    targets = _targets(stack, stream=False), _targets(stack, stream=True)
    plain, stream = replace(targets[0]["gateway"], name="non-stream"), replace(targets[1]["gateway"], name="stream")
    if "cpu" in parts:  # the floor alongside: what aiohttp, nats-py and this CPU cost with no feature at all
        out.cpu_per_request = [
            measure_cpu(plain, stack.pids(), 500, seconds, slack_ms),
            measure_cpu(replace(targets[0]["floor"], name="floor non-stream"), stack.floor_pids(True), 500, seconds,
                        slack_ms),
            measure_cpu(stream, stack.pids(), 200, seconds, slack_ms),
            measure_cpu(replace(targets[1]["floor"], name="floor stream"), stack.floor_pids(False), 200, seconds,
                        slack_ms)]
    direct_url, gateway_url = f"{stack.urls['direct']}/chat/completions", f"{stack.urls['gateway']}/chat/completions"
    model = f"gpt-sim+tps={STREAM_TPS}"
    if "features" in parts:
        sink, sink_url = features_ab.start_sink(Path(tempfile.mkdtemp(prefix="switchboard-otlp-")))
        try:
            key = features_ab.sub_account_key(stack.urls["gateway"], stack.admin)
            keyed = replace(plain, headers={"Authorization": f"Bearer {key}"})
            out.features = features_ab.measure({"admin": plain, "sub-account": keyed}, stack.restart_gateway,
                                               stack.pids, sink_url, seconds, slack_ms)
        finally:
            sink.stop()
    if "idle" in parts:  # before the big bursts, which leave every heap at their high-water mark
        ttft = float(env.get("BENCH_IDLE_TTFT_MS", "15000"))
        out.idle_stream_memory = measure_idle(
            Load(gateway_url, stack.admin, stream_body(f"sim/gpt-sim+ttft={ttft:g}", words=8, pieces=9)),
            stack.pids(), int(env.get("BENCH_IDLE_STREAMS", "500")), ttft)
    if "streams" in parts:
        steps = [int(n) for n in env.get("BENCH_STREAM_STEPS", "100,500,1000,2000").split(",") if n]
        out.streams_at_scale = measure_scale(
            Load(direct_url, "bench", stream_body(model)), Load(gateway_url, stack.admin, stream_body(f"sim/{model}")),
            stack.pids(), steps, int(env.get("BENCH_STREAM_CLIENTS", "1")),
            float(env.get("BENCH_STREAM_TIMEOUT_S", "30")), stack.urls["router_metrics"])
    soak_s = float(env.get("BENCH_SOAK_SECONDS", "600"))
    if "soak" in parts and soak_s > 0:
        out.soak = measure_soak({"non-stream": (plain, 400), "stream": (stream, 100)}, stack.pids(), soak_s, slack_ms)
    return out


def _scale_lines(scale: Scale) -> list[str]:
    out = []
    if scale.cpu_per_request is not None:
        out += ["CPU per request, µs, every worker of a service summed (edge 263 / router 307 before issue 10):",
                *cpu_lines(scale.cpu_per_request)]
    if scale.features is not None:
        out += [f"per-request features, one at a time ({scale.features.rate:.0f} rps fixed, CPU per request net of "
                "idle; edges and routers restarted for each setting):", *features_ab.lines(scale.features)]
    if scale.idle_stream_memory is not None:
        out += ["memory per idle open stream (through the gateway):", *idle_lines(scale.idle_stream_memory)]
    if scale.streams_at_scale is not None:
        out += ["streams at scale (N opened at once, 200 chunks 10 ms apart each; ms):",
                *scale_lines(scale.streams_at_scale)]
    if scale.soak is not None:
        out += ["soak (RSS of every service):", *soak_lines(scale.soak)]
    return out


def _only(parts: set[str]) -> None:
    """BENCH_ONLY: the stack and just the named scale scenarios, for iterating on one of them."""
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    upstream_ms = int(os.environ.get("BENCH_UPSTREAM_MS", "10"))
    root = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    stack = _start(root, upstream_ms)
    try:
        run_closed(_targets(stack, stream=False)["gateway"], 2, 2)  # warm-up
        scale = _scale(stack, seconds, upstream_ms + 25.0, parts)
    finally:
        for proc in reversed(stack.procs):
            proc.stop()
    report = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "upstream_latency_ms": upstream_ms,
              "seconds_per_run": seconds, "cpus": os.cpu_count(), **msgspec.to_builtins(scale)}
    out_dir = Path("bench-results")
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"bench-{'-'.join(sorted(parts))}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print("\n".join(_scale_lines(scale)))
    print(f"Report: {path}")


def main() -> None:
    only = {p.strip() for p in os.environ.get("BENCH_ONLY", "").split(",") if p.strip()}
    if only:
        return _only(set(SCALE_PARTS) if "scale" in only else only & set(SCALE_PARTS))
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    rates = [float(r) for r in os.environ.get("BENCH_RATES", "200,500,1000").split(",") if r]
    upstream_ms = int(os.environ.get("BENCH_UPSTREAM_MS", "10"))
    peak_conns = int(os.environ.get("BENCH_PEAK_CONNECTIONS", "64"))
    root = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    stack = _start(root, upstream_ms)
    procs, urls, admin = stack.procs, stack.urls, stack.admin
    rows: list[dict[str, object]] = []
    slack_ms = upstream_ms + 25.0

    def each(run, targets: dict[str, Target]) -> dict[str, RunResult]:  # type: ignore[no-untyped-def]
        return {name: run(targets[name]) for name in TARGETS}

    try:
        plain, stream = _targets(stack, stream=False), _targets(stack, stream=True)
        each(lambda t: run_closed(t, 2, 2), plain)  # warm-up: connections, pools, caches
        rows.append(_row("1 connection, sequential", each(lambda t: run_closed(t, 1, seconds), plain)))
        for rate in rates:
            rows.append(_row(f"{rate:.0f} rps fixed",
                             each(lambda t, r=rate: run_fixed_rate(t, r, seconds, slack_ms), plain)))
        rows.append(_row(f"peak, {peak_conns} conns (wrk)", each(lambda t: run_wrk(t, peak_conns, seconds), plain)))
        rows.append(_row("stream, 1 connection", each(lambda t: run_closed(t, 1, seconds), stream)))
        rows.append(_row("stream, 200 rps fixed",
                         each(lambda t: run_fixed_rate(t, 200, seconds, slack_ms), stream)))
        routing = _routing_rows(urls, admin, seconds, slack_ms)
        metering = _metering_ab(stack, seconds, slack_ms)
        apart = _apart(stack, seconds, slack_ms, peak_conns)
        scale = _scale(stack, seconds, slack_ms, set(SCALE_PARTS))
    finally:
        for proc in reversed(procs):
            proc.stop()
    ingest = {store: measure_ingest(root / "ingest", store, int(os.environ.get("BENCH_INGEST_EVENTS", "20000")))
              for store in ("sqlite", "clickhouse")}
    spend = measure_spend(root / "spend")  # BENCH_SPEND_ROWS, default 1 M
    webhooks = measure_webhooks(root / "webhooks", int(os.environ.get("BENCH_WEBHOOK_EVENTS", "2000")))
    jobs = measure_jobs(root / "jobs", int(os.environ.get("BENCH_JOBS", "2000")))
    caps = measure_caps(root / "caps", int(os.environ.get("BENCH_CAPS_CENTS", "500")))
    report = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "upstream_latency_ms": upstream_ms,
              "seconds_per_run": seconds, "cpus": os.cpu_count(), "rows": rows, "metering": metering,
              "routing": routing, "apart": apart,
              "ledger_ingest": ingest, "webhooks": webhooks, "jobs": jobs, "spend_caps": caps}
    report["spend_refresh"] = spend
    report.update(msgspec.to_builtins(scale))
    out_dir = Path("bench-results")
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(_table(rows))
    print("\n".join(_apart_lines(apart, rows)))
    print("\nmetering on vs off (500 rps fixed, same stack, edges and routers restarted between runs):")
    for mode, runs in metering.items():
        print(f"  {mode:<4} p50 " + " / ".join(f"{r['p50_ms']:.2f}" for r in runs)
              + " ms, p99 " + " / ".join(f"{r['p99_ms']:.2f}" for r in runs) + " ms")
    print("routing features (gateway only, vs the plain gateway rows above):")
    for label, result in routing.items():
        print(f"  {label:<38} p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, {result['rps']:.0f} rps")
    print("ledger ingest (events waiting on USAGE -> stored):")
    for store, figures in ingest.items():
        print(f"  {store:<10} {figures['events_per_s']:>7} events/s ({figures['events']} in {figures['seconds']} s)")
    print("spend-status refresh (median per refresh, one account; SUM over the month's rows vs the aggregate):")
    print("\n".join(spend_lines(spend)))
    print(f"webhook deliveries (EVENTS -> signed POST to a local receiver): {webhooks['deliveries_per_s']}/s "
          f"({webhooks['deliveries']} in {webhooks['seconds']} s)")
    print(f"async jobs created through the edge (POST /v1/videos/generations -> 202): {jobs['jobs_per_s']}/s "
          f"({jobs['jobs']} in {jobs['seconds']} s, {jobs['connections']} connections, {jobs['failures']} failed)")
    print("spend cap overshoot (sub-account hammered until 402; leases off = the ledger's published spend alone):")
    print("\n".join(caps_lines(caps)))
    print("\n".join(_scale_lines(scale)))
    print(f"\nms; upstream latency {upstream_ms} ms; {seconds:g}s per run. dir = straight to the simulator, "
          "flr = bare edge->NATS->router floor (tools/bench/floor.py),\n+p50/+p99 = gateway minus direct, "
          f"gw-flr = what our code adds over the floor. Report: {path}")


if __name__ == "__main__":
    main()
