"""The soak (RSS of every service over a long mixed run) and CPU per request (issue 10).

Both read /proc (tools/bench/proc_stats.py) around load from `loadgen.run_fixed_rate` (hey), so the
load costs the stack no interpreter time. CPU per request is the CPU time a process spent during the
run over the requests sent; `net` takes off what the process burns idle (timers, health reports,
flushes), measured for a few seconds just before.
"""

import threading
import time
from dataclasses import asdict

import msgspec

from tools.bench.loadgen import RunResult, Target, run_fixed_rate
from tools.bench.proc_stats import by_service, cpu_delta, cpu_seconds, rss_kib, service_of

CPU_PROCESSES = ("edge", "router", "nats-server", "ledger")
SERVICE_PROCESSES = ("edge", "router", "ledger", "nats-server")
IDLE_WINDOW_S = 3.0


class CpuPerRequest(msgspec.Struct):
    target: str
    rate: float
    seconds: float
    requests: int
    errors: int
    us_per_request: dict[str, float]  # process -> µs of CPU per request, as measured
    net_us_per_request: dict[str, float]  # the same less the process's idle burn over the run's length
    total_us: float
    net_total_us: float


class ProcessMemory(msgspec.Struct):
    first_kib: int  # first sample after the warm-up
    last_kib: int
    max_kib: int
    growth_pct: float  # last vs first


class SoakReport(msgspec.Struct):
    seconds: float
    warmup_s: float
    interval_s: float
    rates: dict[str, float]
    samples: list[dict[str, float]]  # {"t": seconds since start, process: KiB, ...}
    processes: dict[str, ProcessMemory]
    load: dict[str, dict[str, object]]  # asdict(RunResult) per load


def per_request_us(cpu_s: dict[str, float], requests: int) -> dict[str, float]:
    return {name: round(sec * 1e6 / requests, 1) if requests else float("nan") for name, sec in cpu_s.items()}


def measure_cpu(target: Target, pids: dict[str, int], rate: float, seconds: float, slack_ms: float) -> CpuPerRequest:
    watched = {name: pid for name, pid in pids.items() if service_of(name) in CPU_PROCESSES}
    idle_start, start = cpu_seconds(watched), time.monotonic()
    time.sleep(IDLE_WINDOW_S)
    idle = cpu_delta(idle_start, cpu_seconds(watched))
    idle_rate = {name: sec / (time.monotonic() - start) for name, sec in idle.items()}
    before, start = cpu_seconds(watched), time.monotonic()
    result = run_fixed_rate(target, rate, seconds, slack_ms)
    used, wall = cpu_delta(before, cpu_seconds(watched)), time.monotonic() - start
    net = by_service({name: max(0.0, sec - idle_rate[name] * wall) for name, sec in used.items()})
    used = by_service(used)  # a request is served by one worker of each service: their sum is its cost
    raw_us, net_us = per_request_us(used, result.requests), per_request_us(net, result.requests)
    return CpuPerRequest(target=target.name, rate=rate, seconds=seconds, requests=result.requests,
                         errors=result.errors, us_per_request=raw_us, net_us_per_request=net_us,
                         total_us=round(sum(raw_us.values()), 1), net_total_us=round(sum(net_us.values()), 1))


def memory_summary(samples: list[dict[str, float]], warmup_s: float) -> dict[str, ProcessMemory]:
    """Per process: the first sample at or after the warm-up, the last, the max, and the growth."""
    settled = [s for s in samples if s["t"] >= warmup_s] or samples[-1:]
    out: dict[str, ProcessMemory] = {}
    if not settled:
        return out
    for name in (k for k in settled[0] if k != "t"):
        first, last = int(settled[0][name]), int(settled[-1][name])
        out[name] = ProcessMemory(first, last, int(max(s[name] for s in settled)),
                                  round((last - first) * 100 / first, 1) if first else float("nan"))
    return out


def measure_soak(loads: dict[str, tuple[Target, float]], pids: dict[str, int], seconds: float, slack_ms: float,
                 warmup_s: float = 30.0, interval_s: float = 10.0) -> SoakReport:
    """Every load of `loads` (name -> target, requests/s) at once for `seconds`, RSS sampled meanwhile."""
    watched = {name: pid for name, pid in pids.items() if service_of(name) in SERVICE_PROCESSES}
    results: dict[str, RunResult] = {}

    def drive(name: str, target: Target, rate: float) -> None:
        results[name] = run_fixed_rate(target, rate, seconds, slack_ms)

    threads = [threading.Thread(target=drive, args=(name, target, rate), daemon=True)
               for name, (target, rate) in loads.items()]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    samples: list[dict[str, float]] = []
    while True:
        samples.append({"t": round(time.monotonic() - start, 1), **rss_kib(watched)})
        if not any(t.is_alive() for t in threads):
            break
        next_at = start + len(samples) * interval_s
        while time.monotonic() < next_at and any(t.is_alive() for t in threads):
            time.sleep(0.2)
    return SoakReport(seconds=seconds, warmup_s=warmup_s, interval_s=interval_s,
                      rates={name: rate for name, (_, rate) in loads.items()}, samples=samples,
                      processes=memory_summary(samples, warmup_s),
                      load={name: asdict(r) for name, r in results.items()})


def cpu_lines(runs: list[CpuPerRequest]) -> list[str]:
    out = []
    for run in runs:
        per = ", ".join(f"{name} {us:.0f}" for name, us in run.us_per_request.items())
        net = ", ".join(f"{name} {us:.0f}" for name, us in run.net_us_per_request.items())
        out.append(f"  {run.target:<16} {run.rate:.0f} rps x {run.seconds:g} s, {run.requests} requests "
                   f"({run.errors} errors): {per}; total {run.total_us:.0f} µs")
        out.append(f"  {'':<16} net of idle burn: {net}; total {run.net_total_us:.0f} µs")
    return out


def soak_lines(soak: SoakReport) -> list[str]:
    rates = " + ".join(f"{rate:.0f} rps {name}" for name, rate in soak.rates.items())
    load = ", ".join(f"{name} {r['requests']} sent / {r['errors']} errors" for name, r in soak.load.items())
    out = [f"  {soak.seconds:g} s at {rates}; RSS every {soak.interval_s:g} s after a {soak.warmup_s:g} s warm-up; "
           f"{load}"]
    for name, m in soak.processes.items():
        out.append(f"  {name:<12} first {m.first_kib / 1024:7.1f} MiB  last {m.last_kib / 1024:7.1f} MiB  "
                   f"max {m.max_kib / 1024:7.1f} MiB  growth {m.growth_pct:+.1f} %")
    return out
