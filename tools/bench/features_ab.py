"""What each per-request feature costs, on one stack (issue 10: under 30 µs of CPU each).

Every mode is the gateway as shipped with one thing changed, measured as CPU per request (net
of idle, every worker of a service summed) at a fixed 500 rps. A mode that changes a setting
restarts the edges and routers with it; the sub-account mode only sends with another key, so
it runs on the baseline's processes. Every mode run follows a run of the shipped gateway,
restarted and warmed the same way, and a feature's cost is the median over rounds of the
difference within those pairs: slow drift on a noisy machine (page cache, JetStream's files,
other tenants) and the warm-up of fresh processes fall out of it.

The modes:
- metering off: the router publishes no usage event and stores no snapshot (the ledger idles);
- snapshots off: usage events still flow, without the request and response bodies;
- metrics in-process: prometheus_client without its multiprocess files, as a one-worker pod runs;
- access log on: one structured line per request from the edge;
- tracing on: every request sampled, spans exported over OTLP/HTTP to a local sink that drops them;
- sub-account: a customer's key with a spend cap and RPM/TPM limits (caps, leases and the
  rate-limit window on every request) instead of the unlimited admin key.
"""

import json
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import msgspec

from libs.runtime.metrics_dir import MULTIPROC_ENV
from tools.bench.loadgen import Target, run_fixed_rate
from tools.bench.soak import CpuPerRequest, measure_cpu
from tools.cli.processes import ManagedProcess, free_port, spawn, wait_port

RATE = 500
WARMUP_S = 3.0
BASELINE = "as shipped"
# A few lines of aiohttp, run as its own process so its CPU is not the gateway's.
_SINK = """
import sys
from aiohttp import web
async def traces(request):
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")
app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/v1/traces", traces)
app.router.add_post("/v1/metrics", traces)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


class FeatureRun(msgspec.Struct):
    mode: str
    round: int
    cpu: CpuPerRequest


class FeatureCost(msgspec.Struct):
    mode: str
    sign: int  # +1: the mode adds the feature; -1: the mode takes it away
    us_per_request: float  # CPU the feature costs per request: the sum of by_service
    by_service: dict[str, float]  # per service, the median over rounds of the in-pair difference


class FeatureReport(msgspec.Struct):
    rate: float
    runs: list[FeatureRun]
    costs: list[FeatureCost]


class Mode(msgspec.Struct):
    name: str
    sign: int
    env: dict[str, str] | None  # None: no restart, another target on the running processes
    target: str = "admin"  # "admin" | "sub-account"


def start_sink(log_dir: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    proc = spawn("otlp-sink", [sys.executable, "-c", _SINK, str(port)], {}, log_dir)
    wait_port("127.0.0.1", port, 20, proc.popen)
    return proc, f"http://127.0.0.1:{port}"


def modes(sink_url: str) -> list[Mode]:
    return [Mode("sub-account", +1, None, "sub-account"),  # on the baseline's processes: no restart
            Mode("metering off", -1, {"SWITCHBOARD_METERING": "0"}),
            Mode("snapshots off", -1, {"SWITCHBOARD_SNAPSHOTS": "0"}),
            Mode("metrics in-process", -1, {MULTIPROC_ENV: ""}),  # "" = unset (see the bench's start_workers)
            Mode("access log on", +1, {"SWITCHBOARD_ACCESS_LOG": "1"}),
            Mode("tracing on", +1, {"OTEL_EXPORTER_OTLP_ENDPOINT": sink_url, "OTEL_TRACES_SAMPLER": "always_on"})]


def measure(targets: dict[str, Target], restart: Callable[[dict[str, str]], None],
            pids: Callable[[], dict[str, int]], sink_url: str, seconds: float, slack_ms: float,
            rounds: int = 2) -> FeatureReport:
    """`targets`: "admin" and "sub-account", the same request with the two keys. Each mode is
    measured right after a baseline run treated the same way (restarted and warmed alike), so
    a feature's cost is the difference within a pair."""
    runs: list[FeatureRun] = []
    running: dict[str, str] | None = None  # the settings the edges and routers run with now

    def run(mode: Mode, n: int) -> None:
        nonlocal running
        wanted = mode.env or {}
        if mode.env is not None or running != {}:
            restart(wanted)
            running = wanted
        target = replace(targets[mode.target], name=mode.name)
        run_fixed_rate(target, RATE, WARMUP_S, slack_ms)  # pools, caches and allocator of new processes
        runs.append(FeatureRun(mode.name, n, measure_cpu(target, pids(), RATE, seconds, slack_ms)))

    try:
        for n in range(rounds):
            for mode in modes(sink_url):
                run(Mode(BASELINE, 0, {}), n)
                run(mode, n)
    finally:
        if running:
            restart({})
    return FeatureReport(RATE, runs, costs(runs, modes(sink_url)))


def costs(runs: list[FeatureRun], measured: list[Mode]) -> list[FeatureCost]:
    """Per mode: the median over rounds of (mode - the baseline run just before it), by service."""
    out = []
    for mode in measured:
        pairs = [(runs[i - 1].cpu.net_us_per_request, run.cpu.net_us_per_request)
                 for i, run in enumerate(runs) if run.mode == mode.name and i > 0 and runs[i - 1].mode == BASELINE]
        if not pairs:
            continue
        services = sorted({name for pair in pairs for per in pair for name in per})
        diff = {name: round(mode.sign * statistics.median(after.get(name, 0.0) - before.get(name, 0.0)
                                                          for before, after in pairs), 1) for name in services}
        out.append(FeatureCost(mode.name, mode.sign, round(sum(diff.values()), 1), diff))
    return out


def lines(report: FeatureReport) -> list[str]:
    out = []
    for run in report.runs:
        cpu = run.cpu
        per = ", ".join(f"{name} {us:.0f}" for name, us in cpu.net_us_per_request.items())
        out.append(f"  round {run.round + 1} {run.mode:<20}: {per}; total {cpu.net_total_us:.0f} µs/request "
                   f"({cpu.requests} requests, {cpu.errors} errors)")
    out.append("  cost of each feature (median over rounds of mode minus the baseline run just before it):")
    for cost in report.costs:
        feature = cost.mode.removesuffix(" off").removesuffix(" on")
        per = ", ".join(f"{name} {us:+.0f}" for name, us in cost.by_service.items())
        out.append(f"    {feature:<20} {cost.us_per_request:>+7.0f} µs/request ({per})")
    return out


def sub_account_key(admin_url: str, admin: str) -> str:
    """A customer's key with every per-request check armed and never reached."""
    body = json.dumps({"name": f"bench-ab-{int(time.time())}", "spend_cap_cents": 10**9,
                       "rate_limit_rpm": 10**8, "rate_limit_tpm": 10**10}).encode()
    request = urllib.request.Request(f"{admin_url}/sub-accounts", body, method="POST",
                                     headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        key = json.loads(answer.read())["key"]
    time.sleep(0.5)  # the key reaches every edge's mirror
    return str(key)
