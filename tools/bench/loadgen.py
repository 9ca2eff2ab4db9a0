"""Driving compiled load generators (Debian's `hey` for fixed rates, `wrk` for
peak throughput) so the load itself does not run on the gateway's interpreter."""

import csv
import io
import re
import subprocess
import tempfile
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


def run_hey(target: Target, rate: float | None, connections: int, seconds: float) -> RunResult:
    """Fixed total rate (`rate` requests/s spread over `connections` workers), or as fast as
    `connections` sequential workers go when rate is None."""
    with tempfile.NamedTemporaryFile(suffix=".json") as body:
        Path(body.name).write_bytes(target.body)
        argv = ["hey", "-z", f"{seconds}s", "-c", str(connections), "-m", "POST", "-T", "application/json",
                "-D", body.name, "-o", "csv", "-t", "30"]
        if rate:
            argv += ["-q", f"{rate / connections:.3f}"]
        for name, value in target.headers.items():
            argv += ["-H", f"{name}: {value}"]
        out = subprocess.run([*argv, target.url], capture_output=True, check=True, text=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    ok = [r for r in rows if r["status-code"].startswith("2")]
    latencies = [float(r["response-time"]) * 1000 for r in ok]
    ttfb = [float(r["Response-delay"]) * 1000 for r in ok]
    span = max((float(r["offset"]) for r in rows), default=seconds) or seconds
    return RunResult(requests=len(rows), errors=len(rows) - len(ok), rps=len(rows) / span,
                     p50_ms=_percentile(latencies, 0.50), p90_ms=_percentile(latencies, 0.90),
                     p99_ms=_percentile(latencies, 0.99), ttfb_p50_ms=_percentile(ttfb, 0.50))


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
        out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                              "-s", str(script), target.url], capture_output=True, check=True, text=True).stdout
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, errors, p50, p90, p99 = match.groups()
    return RunResult(int(requests), int(errors), float(rps.group(1)), float(p50), float(p90), float(p99))
