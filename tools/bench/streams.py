"""Streaming at scale (issue 10): N concurrent 2-second streams, direct vs gateway; memory per idle stream.

Each stream is 200 pieces 10 ms apart from the simulator (`+tps=100` in the model name; the answer is
"Echo: " plus the prompt, one piece per word, so a 199-word prompt gives 200). At each step the same
burst of N streams goes first straight to the simulator, then through the gateway, one after the
other in the same run. The load comes from `tools.bench.stream_client` processes (raw asyncio on
uvloop), so the measuring costs little of the two cores everything shares.

The knee is the largest step such that it and every smaller step meet the issue's target through the
gateway: every stream completes, none has a gap over 1 s between reads, and time to first chunk p99
is within 300 ms of direct's at the same step.
"""

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from tools.bench.proc_stats import by_service, cpu_delta, cpu_seconds, rss_kib, service_of
from tools.bench.stream_client import OK, REASONS, ClientResult, StreamRecord

STREAM_WORDS = 199  # "Echo:" + 199 words = 200 pieces
STREAM_TPS = 100  # pieces per second: 10 ms apart
GAP_LIMIT_MS = 1000.0
TTFC_SLACK_MS = 300.0
IDLE_PROCESSES = ("edge", "router", "nats-server")
PICKUP_METRIC = "switchboard_router_pickup_seconds"


class StepSummary(msgspec.Struct):
    """One target at one step. Times in ms; None when no stream got that far."""

    streams: int
    completed: int
    failed: int
    failures: dict[str, int]  # reason -> count (see stream_client.REASONS)
    statuses: dict[str, int]  # HTTP status -> count, so a 503 (saturated) and a 504 tell apart
    ttfc_p50_ms: float | None  # over the streams that got a first event
    ttfc_p99_ms: float | None
    worst_gap_ms: float
    gaps_over_1s: int  # streams whose longest wait between reads passed GAP_LIMIT_MS
    duration_p50_ms: float | None  # completed streams
    connect_p99_ms: float | None
    client_cpu_s: float  # the load client's own CPU, to see when it is the bottleneck


class Step(msgspec.Struct):
    concurrency: int
    direct: StepSummary
    gateway: StepSummary
    meets_target: bool
    cpu_s: dict[str, dict[str, float]]  # target -> CPU seconds each stack process spent during that run
    # Edge receiving a request -> a router starting on it, over the gateway run's requests: the
    # upper bound of the router histogram's bucket holding that rank (None: /metrics unreadable).
    pickup_p50_ms: float | None = None
    pickup_p99_ms: float | None = None


class ScaleReport(msgspec.Struct):
    steps: list[Step]
    knee: int | None  # largest concurrency meeting the target (with every smaller step), None if none


class IdleMemory(msgspec.Struct):
    streams: int
    ttft_ms: float
    before_kib: dict[str, int]
    open_kib: dict[str, int]  # the most seen while the streams were open and idle
    after_kib: dict[str, int]  # once they had finished
    kib_per_stream: dict[str, float]
    completed: int
    failures: dict[str, int]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (the same rule as loadgen), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarise(records: list[StreamRecord], client_cpu_s: float) -> StepSummary:
    failures = {reason: 0 for reason in REASONS}
    statuses: dict[str, int] = {}
    for r in records:
        if r.outcome != OK:
            failures[r.outcome] = failures.get(r.outcome, 0) + 1
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    done = [r for r in records if r.outcome == OK]
    ttfc = [r.ttfc_ms for r in records if r.ttfc_ms is not None]
    gaps = [r.worst_gap_ms for r in records]
    connects = [r.connect_ms for r in records if r.connect_ms is not None]
    return StepSummary(streams=len(records), completed=len(done), failed=len(records) - len(done),
                       failures=failures, statuses=statuses, ttfc_p50_ms=percentile(ttfc, 0.50),
                       ttfc_p99_ms=percentile(ttfc, 0.99), worst_gap_ms=max(gaps, default=0.0),
                       gaps_over_1s=sum(1 for g in gaps if g > GAP_LIMIT_MS),
                       duration_p50_ms=percentile([r.duration_ms for r in done], 0.50),
                       connect_p99_ms=percentile(connects, 0.99), client_cpu_s=round(client_cpu_s, 3))


def meets_target(gateway: StepSummary, direct: StepSummary) -> bool:
    if gateway.completed != gateway.streams or gateway.gaps_over_1s:
        return False
    if gateway.ttfc_p99_ms is None or direct.ttfc_p99_ms is None:
        return False
    return gateway.ttfc_p99_ms <= direct.ttfc_p99_ms + TTFC_SLACK_MS


def knee(steps: list[Step]) -> int | None:
    best = None
    for step in sorted(steps, key=lambda s: s.concurrency):
        if not step.meets_target:
            break
        best = step.concurrency
    return best


def stream_body(model: str, words: int = STREAM_WORDS, pieces: int = STREAM_WORDS + 1) -> bytes:
    prompt = " ".join(f"w{i}" for i in range(words))
    return json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}],
                       "max_tokens": pieces, "stream": True}).encode()


class Load(msgspec.Struct):
    url: str  # .../v1/chat/completions
    token: str
    body: bytes


def _spawn(load: Load, count: int, clients: int, timeout_s: float, body_path: Path) -> list[subprocess.Popen[bytes]]:
    body_path.write_bytes(load.body)
    shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    argv = [sys.executable, "-m", "tools.bench.stream_client", load.url, load.token]
    return [subprocess.Popen([*argv, str(n), str(body_path), str(timeout_s)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for n in shares if n]


def _collect(procs: list[subprocess.Popen[bytes]], timeout_s: float) -> tuple[list[StreamRecord], float]:
    """The clients' results. Every stream has its own timeout inside the client, so a client that
    outlives them by far, or prints no result, is a fault of the bench itself: say so loudly."""
    records: list[StreamRecord] = []
    cpu = 0.0
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout_s + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        try:
            result = msgspec.json.decode(out, type=ClientResult)
        except msgspec.DecodeError:
            tail = err.decode(errors="replace")[-2000:]
            raise RuntimeError(f"stream_client gave no result (exit {proc.returncode}):\n{tail}") from None
        records += result.records
        cpu += result.cpu_s
    return records, cpu


def run_streams(load: Load, count: int, clients: int, timeout_s: float) -> tuple[list[StreamRecord], float]:
    """`count` streams opened at once, split over `clients` client processes started together."""
    with tempfile.TemporaryDirectory() as tmp:
        return _collect(_spawn(load, count, clients, timeout_s, Path(tmp) / "body.json"), timeout_s)


def pickup_buckets(metrics_text: str) -> dict[float, float]:
    """Cumulative bucket counts (upper bound in s -> count) of the router's pick-up histogram."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name == PICKUP_METRIC:
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding rank q of the observations between two readings."""
    delta = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return None
    for bound, cumulative in delta:
        if cumulative >= q * total:
            return bound * 1000
    return None


def _read_pickup(metrics_url: str | None) -> dict[float, float] | None:
    if metrics_url is None:
        return None
    try:
        with urllib.request.urlopen(metrics_url, timeout=10) as answer:
            return pickup_buckets(answer.read().decode())
    except OSError:
        return None


def measure_scale(direct: Load, gateway: Load, pids: dict[str, int], steps: list[int], clients: int,
                  timeout_s: float, router_metrics_url: str | None = None) -> ScaleReport:
    out: list[Step] = []
    for count in steps:
        summaries = {}
        cpu: dict[str, dict[str, float]] = {}
        pickup: tuple[float | None, float | None] = (None, None)
        for name, load in (("direct", direct), ("gateway", gateway)):
            before, buckets = cpu_seconds(pids), _read_pickup(router_metrics_url) if name == "gateway" else None
            records, client_cpu = run_streams(load, count, clients, timeout_s)
            cpu[name] = cpu_delta(before, cpu_seconds(pids))
            summaries[name] = summarise(records, client_cpu)
            after = _read_pickup(router_metrics_url) if buckets is not None else None
            if buckets is not None and after is not None:
                pickup = bucket_quantile(buckets, after, 0.50), bucket_quantile(buckets, after, 0.99)
            time.sleep(1.0)  # closed connections and lingering router tasks settle before the next run
        out.append(Step(count, summaries["direct"], summaries["gateway"],
                        meets_target(summaries["gateway"], summaries["direct"]), cpu, *pickup))
    return ScaleReport(out, knee(out))


def measure_idle(gateway: Load, pids: dict[str, int], count: int, ttft_ms: float) -> IdleMemory:
    """`count` streams held open and silent (the upstream's first chunk comes only after ttft_ms)."""
    watched = {name: pid for name, pid in pids.items() if service_of(name) in IDLE_PROCESSES}
    before = rss_kib(watched)
    peak = dict(before)
    timeout_s = ttft_ms / 1000 + 30
    with tempfile.TemporaryDirectory() as tmp:
        procs = _spawn(gateway, count, 1, timeout_s, Path(tmp) / "body.json")
        # Sample until shortly before the first chunks are due: all admitted, none answered yet.
        deadline = time.monotonic() + max(1.0, ttft_ms / 1000 - 1.5)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            for name, kib in rss_kib(watched).items():
                peak[name] = max(peak[name], kib)
        records, _ = _collect(procs, timeout_s)
    time.sleep(1.0)
    summary = summarise(records, 0.0)
    return IdleMemory(streams=count, ttft_ms=ttft_ms, before_kib=before, open_kib=peak, after_kib=rss_kib(watched),
                      kib_per_stream={n: round(kib / count, 1)  # the streams spread over every worker
                                      for n, kib in by_service({n: peak[n] - before[n] for n in watched}).items()},
                      completed=summary.completed, failures={k: v for k, v in summary.failures.items() if v})


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _failures(s: StepSummary) -> str:
    parts = [f"{reason} {n}" for reason, n in s.failures.items() if n]
    bad = [f"{code}x{n}" for code, n in s.statuses.items() if code != "200" and n]
    return ", ".join(parts) + (f" (HTTP {' '.join(bad)})" if bad else "") if parts else "-"


def lines(report: ScaleReport) -> list[str]:
    head = (f"  {'streams':>7} {'target':<8}{'done':>6}{'fail':>6}{'ttfc p50':>9}{'ttfc p99':>9}{'worst gap':>10}"
            f"{'gaps>1s':>8}{'dur p50':>8}{'cli cpu':>8}  failures")
    out = [head]
    for step in report.steps:
        for name, s in (("direct", step.direct), ("gateway", step.gateway)):
            out.append(f"  {step.concurrency:>7} {name:<8}{s.completed:>6}{s.failed:>6}{_ms(s.ttfc_p50_ms):>9}"
                       f"{_ms(s.ttfc_p99_ms):>9}{s.worst_gap_ms:>10.0f}{s.gaps_over_1s:>8}{_ms(s.duration_p50_ms):>8}"
                       f"{s.client_cpu_s:>8.2f}  {_failures(s)}")
        cpu = ", ".join(f"{name} {sec:.1f}" for name, sec in step.cpu_s["gateway"].items())
        sim = step.cpu_s["direct"].get("upstream_sim", 0.0)
        out.append(f"  {'':>7} {'':<8}target {'met' if step.meets_target else 'missed'}; CPU s, gateway run: {cpu}"
                   f" (simulator in the direct run: {sim:.1f}); request to router pick-up p50 <= "
                   f"{_ms(step.pickup_p50_ms)} ms, p99 <= {_ms(step.pickup_p99_ms)} ms")
    out.append(f"  knee: {report.knee if report.knee is not None else 'none (the smallest step misses the target)'}")
    return out


def idle_lines(idle: IdleMemory) -> list[str]:
    per = ", ".join(f"{name} {kib:.1f} KiB" for name, kib in idle.kib_per_stream.items())
    rss = ", ".join(f"{name} {idle.before_kib[name] // 1024}->{idle.open_kib[name] // 1024}->"
                    f"{idle.after_kib[name] // 1024} MiB" for name in idle.kib_per_stream)
    fails = ", ".join(f"{k} {v}" for k, v in idle.failures.items()) or "none"
    return [f"  {idle.streams} idle streams (first chunk after {idle.ttft_ms / 1000:g} s): {per} per open stream",
            f"  RSS before->open->after: {rss}; completed {idle.completed}, failed: {fails}"]
