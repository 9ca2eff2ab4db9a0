"""Driving compiled load generators (Debian's `hey` for fixed rates, `wrk` for
peak throughput) so the load itself does not run on the gateway's interpreter."""

import csv
import io
import math
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RunResult:
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    ttfb_p50_ms: float | None = None


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _hey_argv(target: Target, body: str, seconds: float, connections: int, qps: float | None) -> list[str]:
    argv = ["hey", "-z", f"{seconds}s", "-c", str(connections), "-m", "POST", "-T", "application/json",
            "-D", body, "-o", "csv", "-t", "30"]
    if qps:
        argv += ["-q", f"{qps:.4f}"]
    for name, value in target.headers.items():
        argv += ["-H", f"{name}: {value}"]
    return [*argv, target.url]


def _summarise(rows: list[dict[str, str]], seconds: float) -> RunResult:
    ok = [r for r in rows if r["status-code"].startswith("2")]
    latencies = [float(r["response-time"]) * 1000 for r in ok]
    ttfb = [float(r["Response-delay"]) * 1000 for r in ok]
    return RunResult(requests=len(rows), errors=len(rows) - len(ok), rps=len(rows) / seconds,
                     p50_ms=_percentile(latencies, 0.50), p90_ms=_percentile(latencies, 0.90),
                     p99_ms=_percentile(latencies, 0.99), ttfb_p50_ms=_percentile(ttfb, 0.50))


def run_closed(target: Target, connections: int, seconds: float) -> RunResult:
    """`connections` workers, each sending its next request as soon as the last one is answered."""
    with tempfile.NamedTemporaryFile(suffix=".json") as body:
        Path(body.name).write_bytes(target.body)
        out = subprocess.run(_hey_argv(target, body.name, seconds, connections, None),
                             capture_output=True, check=True, text=True).stdout
    return _summarise(list(csv.DictReader(io.StringIO(out))), seconds)


def run_fixed_rate(target: Target, rate: float, seconds: float, max_latency_ms: float) -> RunResult:
    """An evenly spaced `rate` requests/s (open loop as far as hey allows).

    One hey process with N workers starts all their tickers together and fires
    N requests at once every N/rate seconds; that measures bursts, not a rate.
    So each worker is its own hey process, started 1/rate after the previous
    one, which spreads the requests evenly. There are enough workers that each
    has max_latency_ms to finish before its next tick.
    """
    workers = max(2, math.ceil(rate * max_latency_ms / 1000))
    with tempfile.NamedTemporaryFile(suffix=".json") as body:
        Path(body.name).write_bytes(target.body)
        procs = []
        for _ in range(workers):
            procs.append(subprocess.Popen(_hey_argv(target, body.name, seconds, 1, rate / workers),
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
            time.sleep(1 / rate)
        rows = [row for proc in procs for row in csv.DictReader(io.StringIO(proc.communicate()[0]))]
    return _summarise(rows, seconds)


_WRK_LUA = """
wrk.method = "POST"
wrk.body = io.open("{body}"):read("*a")
{headers}
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %f %f %f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000))
end
"""


def run_wrk(target: Target, connections: int, seconds: float, threads: int = 1) -> RunResult:
    """Peak throughput: closed loop, `connections` requests always in flight."""
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        body.write_bytes(target.body)
        headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in
                            {**target.headers, "Content-Type": "application/json"}.items())
        script = Path(tmp) / "post.lua"
        script.write_text(_WRK_LUA.format(body=body, headers=headers))
        out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                              "-s", str(script), target.url], capture_output=True, check=True, text=True).stdout
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, errors, p50, p90, p99 = match.groups()
    return RunResult(int(requests), int(errors), float(rps.group(1)), float(p50), float(p90), float(p99))
