"""Usage events, costs the client sees, the ledger's record of them, reports."""

import asyncio
import concurrent.futures
import json
import random
import time
from decimal import Decimal

import nats
import openai

from libs.contracts import subjects
from libs.contracts.bus.usage import UsageEvent, encode
from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster, eventually

USER = [{"role": "user", "content": "count these five words"}]


def test_non_stream_cost_headers_meta_and_generation(gateway: Cluster) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(model="sim/gpt-sim", messages=USER)
    body = json.loads(raw.http_response.text)
    meta = body["meta"]
    usage = body["usage"]
    assert raw.headers["X-Input-Units"] == str(usage["prompt_tokens"])
    assert raw.headers["X-Output-Units"] == str(usage["completion_tokens"])
    # $1/M input, $2/M output, +5 % markup, integer micro-dollars.
    upstream = usage["prompt_tokens"] * 1 + usage["completion_tokens"] * 2
    assert meta["cost"]["input_micros"] + meta["cost"]["output_micros"] == upstream
    assert meta["cost"]["total_micros"] == upstream + meta["cost"]["markup_micros"]
    assert Decimal(raw.headers["X-Cost-Cents"]) == Decimal(meta["cost"]["total_micros"]) / 10_000
    assert meta["timing"]["upstream_latency_ms"] > 0 and meta["request_id"] == raw.headers["X-Request-Id"]
    record = generation(gateway, raw.headers["X-Request-Id"])
    assert record["cost"] == meta["cost"] and record["usage"] == meta["usage"]
    assert (record["model"], record["provider"], record["status"]) == ("sim/gpt-sim", "sim", 200)


def test_stream_meters_and_reports_usage_only_when_asked(gateway: Cluster) -> None:
    client = gateway.client()
    with client.chat.completions.with_streaming_response.create(
            model="sim/gpt-sim", messages=USER, stream=True, stream_options={"include_usage": True}) as response:
        request_id = response.headers["X-Request-Id"]
        chunks = [json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: {")]
    final = chunks[-1]
    assert final["choices"] == [] and final["usage"]["completion_tokens"] == 5
    assert generation(gateway, request_id)["cost"] == final["meta"]["cost"]
    with client.chat.completions.with_streaming_response.create(
            model="sim/gpt-sim", messages=USER, stream=True) as response:
        request_id = response.headers["X-Request-Id"]
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert all('"choices":[]' not in e for e in events)  # no usage chunk the client did not ask for
    record = generation(gateway, request_id)
    assert record["usage"]["output_units"] == 5 and record["cost"]["total_micros"] > 0  # metered anyway


def test_failed_request_is_metered_at_zero_cost(gateway: Cluster) -> None:
    try:
        gateway.client().chat.completions.create(model="sim/gpt-sim+status=503", messages=USER)
    except openai.InternalServerError as exc:
        request_id = exc.response.headers["X-Request-Id"]
    record = generation(gateway, request_id)
    assert record["status"] == 502 and record["error_type"] == "provider_error"
    assert record["cost"]["total_micros"] == 0


def test_unpriced_model_is_recorded_as_unpriced(gateway: Cluster) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(model="sim/not-in-catalog", messages=USER)
    assert raw.headers["X-Cost-Cents"] == "0.0000"
    record = generation(gateway, raw.headers["X-Request-Id"])
    assert record["cost"]["priced"] is False and record["usage"]["input_units"] == 4


def _cost_seen(gateway: Cluster, key: str, i: int) -> tuple[str, int]:
    """One of several request kinds; returns (tag, micro-dollars the client was shown)."""
    client = gateway.client(key=key)
    tag = f"feature-{i % 3}"
    kind = i % 4
    if kind == 0:
        raw = client.chat.completions.with_raw_response.create(
            model="sim/gpt-sim", messages=[{"role": "user", "content": "w " * (i % 7 + 1)}],
            extra_headers={"x-aig-tag": tag})
        return tag, round(Decimal(raw.headers["X-Cost-Cents"]) * 10_000)
    if kind == 1:
        stream = client.chat.completions.create(model="sim/gpt-sim", messages=USER, stream=True,
                                                stream_options={"include_usage": True},
                                                extra_headers={"x-aig-tag": tag})
        last = list(stream)[-1]
        return tag, last.model_extra["meta"]["cost"]["total_micros"]
    if kind == 2:
        raw = client.embeddings.with_raw_response.create(model="sim/embed-sim", input=["a b c"] * (i % 5 + 1),
                                                         extra_headers={"x-aig-tag": tag})
        return tag, round(Decimal(raw.headers["X-Cost-Cents"]) * 10_000)
    try:
        client.chat.completions.create(model="sim/gpt-sim+status=500", messages=USER,
                                       extra_headers={"x-aig-tag": tag})
    except openai.InternalServerError:
        return tag, 0
    raise AssertionError("expected a provider error")


def test_report_totals_equal_what_clients_saw(gateway: Cluster) -> None:
    sub = create_sub_account(gateway, name="report-check")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(lambda i: _cost_seen(gateway, sub["key"], i), range(240)))
    expected_total = sum(cost for _, cost in seen)
    by_tag: dict[str, int] = {}
    for tag, cost in seen:
        by_tag[tag] = by_tag.get(tag, 0) + cost

    def report_complete() -> dict | None:
        report = call(gateway, "GET", f"/sub-accounts/{sub['id']}/usage").json()
        return report if report["total"]["requests"] == 240 else None

    report = eventually(report_complete, 20)
    assert report["total"]["cost_micros"] == expected_total
    assert report["total"]["errors"] == 60
    tags = call(gateway, "GET", "/usage/by-tag", sub["key"]).json()  # the sub-account's own view
    assert {row["group"]: row["cost_micros"] for row in tags["data"]} == by_tag
    assert all(row["p95_latency_ms"] >= row["p50_latency_ms"] > 0 for row in tags["data"])
    everyone = call(gateway, "GET", "/usage/by-sub-account").json()
    (mine,) = [row for row in everyone["data"] if row["group"] == sub["id"]]
    assert mine["cost_micros"] == expected_total and mine["requests"] == 240
    hourly = call(gateway, "GET", f"/sub-accounts/{sub['id']}/usage", params={"bucket": "hour"}).json()
    assert sum(row["cost_micros"] for row in hourly["data"]) == expected_total


def test_report_time_range_and_validation(gateway: Cluster) -> None:
    past = call(gateway, "GET", "/usage/by-tag", params={"month": "2001-01"}).json()
    assert past["data"] == [] and past["start"] == "2001-01-01T00:00:00Z" and past["end"] == "2001-02-01T00:00:00Z"
    for params in ({"month": "2026-13"}, {"from": "yesterday"}, {"bucket": "week"},
                   {"from": "2026-02-01", "to": "2026-01-01"}):
        response = call(gateway, "GET", "/usage/by-tag", params=params)
        assert response.status_code == 400 and response.json()["error"]["param"], params


async def _publish_raw(nats_url: str, payload: bytes, times: int) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for _ in range(times):
            await js.publish(subjects.USAGE_EVENTS, payload)  # no Nats-Msg-Id: only the store can dedupe
    finally:
        await nc.close()


def test_duplicate_usage_events_are_stored_once(gateway: Cluster) -> None:
    request_id = f"dup-{random.randrange(1 << 60):x}"
    event = UsageEvent(request_id=request_id, ts_ms=int(time.time() * 1000), account_id="root",
                       key_id="key_admin", subaccount_id=None, tag="dup-test", operation="chat",
                       requested_model="sim/gpt-sim", model="sim/gpt-sim", provider="sim", status=200,
                       input_units=3, output_units=4, cost_micros=123, input_cost_micros=123)
    asyncio.run(_publish_raw(gateway.nats.url, encode(event), 3))
    assert generation(gateway, request_id)["cost"]["total_micros"] == 123

    def tag_row() -> dict | None:
        rows = call(gateway, "GET", "/usage/by-tag", params={"tag": "dup-test"}).json()["data"]
        return rows[0] if rows else None

    row = eventually(tag_row)
    time.sleep(0.5)  # give any duplicate a chance to land
    row = tag_row()
    assert row is not None and row["requests"] == 1 and row["cost_micros"] == 123


def test_generation_of_unknown_id_is_404(gateway: Cluster) -> None:
    response = call(gateway, "GET", "/generations", params={"id": "no-such-request"})
    assert response.status_code == 404 and response.json()["error"]["param"] == "id"
    assert call(gateway, "GET", "/generations").status_code == 400
