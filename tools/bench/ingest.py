"""The ledger's sustained ingest rate: events waiting on the USAGE stream -> stored.

Publishes N usage events while no ledger runs, starts one, and times until its
store holds all N (asked over the ledger's own report subject). Run for the
SQLite store and for ClickHouse (chDB in-process, or a server given as
SWITCHBOARD_CLICKHOUSE_URL).
"""

import asyncio
import os
import time
from pathlib import Path

import msgspec
import nats

from libs.contracts import streams, subjects
from libs.contracts.bus import ledger as ledger_bus
from libs.contracts.bus.inference import Reply, decode_reply
from libs.contracts.bus.usage import ReportQuery, UsageEvent, encode
from libs.runtime.jetstream import ensure_stream
from tools.cli.processes import free_port, start_module, start_nats, wait_http_ok


async def _publish(nats_url: str, count: int, account: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js, streams.USAGE)
    now_ms = int(time.time() * 1000)
    for i in range(count):
        event = UsageEvent(request_id=f"bench-{account}-{i}", ts_ms=now_ms + i % 1000, account_id=account,
                           key_id="key_bench", subaccount_id=f"sa_{i % 20}", tag=f"t{i % 7}", operation="chat",
                           requested_model="sim/gpt-sim", model="sim/gpt-sim", provider="sim", status=200,
                           input_units=12, output_units=30, cost_micros=75, input_cost_micros=12,
                           output_cost_micros=60, markup_micros=3, upstream_latency_ms=10.0, total_latency_ms=11.0)
        await js.publish_async(subjects.USAGE_EVENTS, encode(event), headers={"Nats-Msg-Id": event.request_id})
    await js.publish_async_completed()
    await nc.close()


async def _stored(nats_url: str, account: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        query = ReportQuery(account_id=account, from_ms=0, to_ms=int(time.time() * 1000) + 86_400_000)
        msg = await nc.request(subjects.LEDGER_REPORT, ledger_bus.encode(query), timeout=30)
        reply = decode_reply(msg.data)
        assert isinstance(reply, Reply)
        return msgspec.json.decode(reply.body)["total"]["requests"]
    finally:
        await nc.close()


def measure(root: Path, store: str, count: int) -> dict[str, float]:
    logs = root / "logs"
    nats_port, health = free_port(), free_port()
    nats_url = f"nats://127.0.0.1:{nats_port}"
    server = start_nats(root / store, nats_port, logs)
    env = {**os.environ, "SWITCHBOARD_NATS_URL": nats_url, "SWITCHBOARD_DATA_DIR": str(root / store),
           "SWITCHBOARD_LEDGER_HEALTH_PORT": str(health)}
    if store == "clickhouse" and not env.get("SWITCHBOARD_CLICKHOUSE_URL"):
        env["SWITCHBOARD_CLICKHOUSE_URL"] = f"chdb://{root / store / 'chdb'}?database=bench"
    elif store == "sqlite":
        env.pop("SWITCHBOARD_CLICKHOUSE_URL", None)
    account = f"bench_{store}"
    ledger = None
    try:
        asyncio.run(_publish(nats_url, count, account))
        ledger = start_module(f"ledger-{store}", "services.ledger", env, logs)
        started = time.perf_counter()
        wait_http_ok(f"http://127.0.0.1:{health}/readyz", 60, ledger.popen)
        while asyncio.run(_stored(nats_url, account)) < count:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        if ledger is not None:
            ledger.stop()
        server.stop()
    return {"events": count, "seconds": round(elapsed, 3), "events_per_s": round(count / elapsed)}
