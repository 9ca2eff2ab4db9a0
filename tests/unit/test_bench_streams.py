"""The bench's pure parts: response scanning, failure reasons, summaries, the knee, feature costs."""

import json

from tools.bench.features_ab import BASELINE, FeatureRun, Mode, costs
from tools.bench.soak import CpuPerRequest, memory_summary, per_request_us
from tools.bench.stream_client import BodyScanner, StreamRecord, classify
from tools.bench.streams import (
    Step,
    StepSummary,
    bucket_quantile,
    knee,
    meets_target,
    percentile,
    pickup_buckets,
    stream_body,
    summarise,
)

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_scanner_follows_a_chunked_stream_to_done_and_the_last_chunk() -> None:
    scan = BodyScanner()
    scan.feed(1.0, HEAD)
    assert scan.status == 200 and scan.chunked and scan.first_data is None
    scan.feed(1.5, chunk(b'data: {"a": 1}\n\n'))
    scan.feed(1.6, chunk(b'data: {"a": 2}\n\n'))
    scan.feed(3.6, chunk(b'data: {"a": 3}\n\n'))
    scan.feed(3.7, chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    assert scan.first_data == 1.5
    assert abs(scan.worst_gap - 2.0) < 1e-9
    assert scan.done_at == 3.7 and scan.ended


def test_chunk_size_lines_alone_are_not_events() -> None:
    scan = BodyScanner()
    scan.feed(1.0, HEAD + b"1a\r\n")
    scan.feed(2.0, b": keep-alive comment\n\n\r\n")
    assert scan.first_data is None and scan.worst_gap == 0.0 and not scan.ended


def test_markers_split_across_reads_and_a_head_in_pieces() -> None:
    scan = BodyScanner()
    scan.feed(1.0, HEAD[:10])
    scan.feed(1.1, HEAD[10:] + b"e\r\nda")
    scan.feed(1.2, b"ta: x\n\n\r\n")
    assert scan.first_data == 1.2
    scan.feed(1.3, b"e\r\ndata: [DO")
    scan.feed(1.4, b"NE]\n\n\r\n0\r\n")
    assert scan.done_at == 1.4 and not scan.ended
    scan.feed(1.5, b"\r\n")
    assert scan.ended


def test_a_content_length_error_body_ends_without_done() -> None:
    body = b'{"error": {"message": "Provider openai timed out", "code": 504}}'
    scan = BodyScanner()
    scan.feed(1.0, b"HTTP/1.1 504 Gateway Timeout\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5])
    assert not scan.ended
    scan.feed(1.1, body[5:])
    assert scan.status == 504 and scan.ended and scan.done_at is None


def test_clean_end_without_done_and_an_empty_body() -> None:
    scan = BodyScanner()
    scan.feed(1.0, HEAD + chunk(b"data: {}\n\n") + b"0\r\n\r\n")
    assert scan.ended and scan.done_at is None
    empty = BodyScanner()
    empty.feed(1.0, HEAD + b"0\r\n\r\n")
    assert empty.ended and empty.first_data is None


def test_classify_names_the_first_thing_that_went_wrong() -> None:
    assert classify(connected=True, timed_out=False, status=200, done=True, ended=True) == "ok"
    assert classify(connected=True, timed_out=False, status=504, done=False, ended=True) == "status"
    assert classify(connected=True, timed_out=True, status=503, done=False, ended=False) == "status"
    assert classify(connected=True, timed_out=True, status=200, done=False, ended=False) == "timeout"
    assert classify(connected=False, timed_out=True, status=0, done=False, ended=False) == "timeout"
    assert classify(connected=False, timed_out=False, status=0, done=False, ended=False) == "connect"
    assert classify(connected=True, timed_out=False, status=200, done=False, ended=True) == "no_done"
    assert classify(connected=True, timed_out=False, status=200, done=False, ended=False) == "broken"
    assert classify(connected=True, timed_out=False, status=0, done=False, ended=False) == "broken"


def test_percentile_is_nearest_rank_and_none_when_empty() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) in (50.0, 51.0)
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def record(outcome: str = "ok", status: int = 200, ttfc: float | None = 100.0, gap: float = 20.0) -> StreamRecord:
    return StreamRecord(outcome=outcome, status=status, connect_ms=1.0, ttfc_ms=ttfc, worst_gap_ms=gap,
                        duration_ms=2000.0)


def test_summarise_counts_failures_by_reason_and_status_and_long_gaps() -> None:
    records = [record(), record(gap=1500.0), record("status", 504, None, 0.0), record("status", 503, None, 0.0),
               record("broken", gap=300.0), record("timeout", ttfc=None, gap=0.0)]
    s = summarise(records, 1.5)
    assert (s.streams, s.completed, s.failed) == (6, 2, 4)
    assert s.failures == {"status": 2, "broken": 1, "no_done": 0, "timeout": 1, "connect": 0}
    assert s.statuses == {"200": 4, "504": 1, "503": 1}
    assert s.gaps_over_1s == 1 and s.worst_gap_ms == 1500.0
    assert s.ttfc_p99_ms == 100.0 and s.duration_p50_ms == 2000.0


def summary(completed: int = 10, gaps: int = 0, ttfc_p99: float | None = 200.0) -> StepSummary:
    return StepSummary(streams=10, completed=completed, failed=10 - completed, failures={}, statuses={},
                       ttfc_p50_ms=50.0, ttfc_p99_ms=ttfc_p99, worst_gap_ms=0.0, gaps_over_1s=gaps,
                       duration_p50_ms=2000.0, connect_p99_ms=1.0, client_cpu_s=0.1)


def test_target_needs_all_completed_no_long_gap_and_ttfc_within_300_ms_of_direct() -> None:
    direct = summary(ttfc_p99=200.0)
    assert meets_target(summary(ttfc_p99=500.0), direct)
    assert not meets_target(summary(ttfc_p99=501.0), direct)
    assert not meets_target(summary(completed=9), direct)
    assert not meets_target(summary(gaps=1), direct)
    assert not meets_target(summary(ttfc_p99=None), direct)


def step(n: int, ok: bool) -> Step:
    return Step(n, summary(), summary(), ok, {})


def test_knee_is_the_last_of_the_passing_steps_from_the_smallest() -> None:
    assert knee([step(100, True), step(500, True), step(1000, False), step(2000, False)]) == 500
    assert knee([step(2000, True), step(100, True), step(500, True), step(1000, True)]) == 2000
    assert knee([step(100, True), step(500, False), step(1000, True)]) == 100  # a lucky big step does not count
    assert knee([step(100, False), step(500, True)]) is None
    assert knee([]) is None


def test_stream_body_asks_for_two_hundred_pieces() -> None:
    body = json.loads(stream_body("sim/gpt-sim+tps=100"))
    words = body["messages"][0]["content"].split()
    assert len(words) + 1 == body["max_tokens"] == 200  # "Echo:" + the prompt's words
    assert body["stream"] is True and body["model"] == "sim/gpt-sim+tps=100"


def test_memory_summary_starts_after_the_warm_up() -> None:
    samples = [{"t": 0.0, "edge": 50.0}, {"t": 10.0, "edge": 90.0}, {"t": 30.0, "edge": 100.0},
               {"t": 40.0, "edge": 130.0}, {"t": 50.0, "edge": 110.0}]
    m = memory_summary(samples, 30.0)["edge"]
    assert (m.first_kib, m.last_kib, m.max_kib, m.growth_pct) == (100, 110, 130, 10.0)
    short = memory_summary(samples[:2], 30.0)["edge"]  # a run shorter than the warm-up: its last sample
    assert short.first_kib == short.last_kib == 90


def test_per_request_us() -> None:
    assert per_request_us({"edge": 1.5, "router": 0.0}, 5000) == {"edge": 300.0, "router": 0.0}


def _cpu(edge: float, router: float) -> CpuPerRequest:
    per = {"edge": edge, "router": router}
    return CpuPerRequest(target="t", rate=500, seconds=1, requests=500, errors=0, us_per_request=per,
                         net_us_per_request=per, total_us=edge + router, net_total_us=edge + router)


def test_feature_costs_are_medians_of_differences_within_pairs_with_the_modes_sign() -> None:
    runs = [FeatureRun(BASELINE, 0, _cpu(600, 700)), FeatureRun("metering off", 0, _cpu(600, 600)),
            FeatureRun(BASELINE, 0, _cpu(620, 700)), FeatureRun("access log on", 0, _cpu(640, 700)),
            FeatureRun(BASELINE, 1, _cpu(900, 900)), FeatureRun("metering off", 1, _cpu(880, 860)),  # a slow pair
            FeatureRun(BASELINE, 2, _cpu(600, 700)), FeatureRun("metering off", 2, _cpu(580, 640)),
            FeatureRun("access log on", 2, _cpu(999, 999))]  # no baseline just before it: not a pair
    measured = [Mode("metering off", -1, {}), Mode("access log on", +1, {}), Mode("never run", +1, {})]
    by_mode = {c.mode: c for c in costs(runs, measured)}
    assert set(by_mode) == {"metering off", "access log on"}  # a mode with no runs has no cost
    # Taken away: baseline - mode, per pair (0/100, 20/40, 20/60), median per service.
    assert by_mode["metering off"].by_service == {"edge": 20.0, "router": 60.0}
    assert by_mode["metering off"].us_per_request == 80.0
    assert by_mode["access log on"].by_service == {"edge": 20.0, "router": 0.0}  # added: mode - baseline


def test_pickup_quantiles_come_from_the_bucket_deltas_between_two_readings() -> None:
    text = ('# HELP switchboard_router_pickup_seconds x\n# TYPE switchboard_router_pickup_seconds histogram\n'
            'switchboard_router_pickup_seconds_bucket{le="0.001"} 10.0\n'
            'switchboard_router_pickup_seconds_bucket{le="0.01"} 60.0\n'
            'switchboard_router_pickup_seconds_bucket{le="1.0"} 109.0\n'
            'switchboard_router_pickup_seconds_bucket{le="+Inf"} 110.0\n'
            'switchboard_router_pickup_seconds_count 110.0\nswitchboard_router_pickup_seconds_sum 3.0\n')
    before = {0.001: 10.0, 0.01: 10.0, 1.0: 10.0, float("inf"): 10.0}  # 10 earlier requests, all fast
    after = pickup_buckets(text)
    assert after == {0.001: 10.0, 0.01: 60.0, 1.0: 109.0, float("inf"): 110.0}
    # 100 new: 50 under 10 ms, 49 under 1 s, 1 slower
    assert bucket_quantile(before, after, 0.50) == 10.0
    assert bucket_quantile(before, after, 0.99) == 1000.0
    assert bucket_quantile(before, after, 1.0) == float("inf")
    assert bucket_quantile(after, after, 0.5) is None  # nothing observed in between
