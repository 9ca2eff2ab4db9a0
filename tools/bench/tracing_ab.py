"""Tracing off vs on, on one stack: the edges and routers restarted with and without an OTLP
exporter (every request sampled, spans sent to a local sink that accepts and drops them), CPU
per request and latency at a fixed rate each time. Off must cost nothing measurable."""

import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from tools.bench.loadgen import Target, run_closed
from tools.bench.soak import CpuPerRequest, measure_cpu
from tools.cli.processes import ManagedProcess, free_port, spawn, wait_port

# A few lines of aiohttp, run as its own process so its CPU is not the gateway's.
_SINK = """
import sys
from aiohttp import web
async def traces(request):
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")
app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/v1/traces", traces)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


class TracingRun(msgspec.Struct):
    tracing: str  # "off" | "on"
    cpu: CpuPerRequest


def start_sink(log_dir: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    proc = spawn("otlp-sink", [sys.executable, "-c", _SINK, str(port)], {}, log_dir)
    wait_port("127.0.0.1", port, 20, proc.popen)
    return proc, f"http://127.0.0.1:{port}"


def measure(target: Target, restart: Callable[[dict[str, str]], None], pids: Callable[[], dict[str, int]],
            sink_url: str, seconds: float, slack_ms: float, rounds: int = 2) -> list[TracingRun]:
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink_url, "OTEL_TRACES_SAMPLER": "always_on"}
    runs: list[TracingRun] = []
    try:
        for _ in range(rounds):
            for mode, env in (("off", {}), ("on", on)):
                restart(env)
                run_closed(target, 2, 1)  # warm-up: connections and pools of the new processes
                runs.append(TracingRun(mode, measure_cpu(target, pids(), 500, seconds, slack_ms)))
    finally:
        restart({})
    return runs


def lines(runs: list[TracingRun]) -> list[str]:
    out = []
    for run in runs:
        cpu = run.cpu
        per = ", ".join(f"{name} {us:.0f}" for name, us in cpu.net_us_per_request.items())
        out.append(f"  tracing {run.tracing:<3}: {per}; total {cpu.net_total_us:.0f} µs/request "
                   f"({cpu.requests} requests, {cpu.errors} errors)")
    return out
