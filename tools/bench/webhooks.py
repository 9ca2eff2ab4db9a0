"""Webhook deliveries per second: events on EVENTS -> signed POSTs received by a local receiver.

Starts NATS and one webhooks replica, registers one endpoint (written straight into its KV
bucket: no edge needed), publishes N events and times until the receiver has all N.
Every delivery goes through the whole path: fan-out, the WEBHOOKS work queue, a KV record
written before and after the attempt, signing, the POST.
"""

import asyncio
import os
import secrets
import time
from pathlib import Path

import msgspec
import nats
from aiohttp import web

from libs.contracts import streams, subjects
from libs.contracts.bus import events
from libs.contracts.http.webhooks import EndpointView
from libs.runtime.jetstream import ensure_stream
from libs.runtime.kv_mirror import open_bucket
from tools.cli.processes import free_port, start_module, start_nats, wait_http_ok

_ACCOUNT = "acct_bench"


async def _drive(nats_url: str, receiver_port: int, count: int) -> float:
    received = 0
    done = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        nonlocal received
        await request.read()
        received += 1
        if received >= count:
            done.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver_port).start()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, streams.EVENTS)
        kv = await open_bucket(js, subjects.KV_WEBHOOK_ENDPOINTS)
        now = int(time.time()) - 1
        endpoint = EndpointView(id="we_bench", url=f"http://127.0.0.1:{receiver_port}/hook", event_types=[],
                                description="bench", disabled=False, created_at=now, updated_at=now)
        await kv.put(f"{_ACCOUNT}.we_bench", msgspec.json.encode(endpoint))
        await asyncio.sleep(1.0)  # the replica's endpoint mirror follows the bucket
        started = time.perf_counter()
        for i in range(count):
            event = events.Event(id=f"evt_bench_{secrets.token_hex(4)}_{i}", type=events.USAGE_DAILY_SUMMARY,
                                 occurred_at=int(time.time()), account_id=_ACCOUNT, data={"n": i})
            await js.publish_async(f"{subjects.EVENTS_PREFIX}.{event.type}", events.encode(event),
                                   headers={"Nats-Msg-Id": event.id})
        await js.publish_async_completed()
        await asyncio.wait_for(done.wait(), timeout=max(60.0, count / 20))
        return time.perf_counter() - started
    finally:
        await nc.close()
        await runner.cleanup()


def measure(root: Path, count: int) -> dict[str, float]:
    logs = root / "logs"
    nats_port, health, receiver_port = free_port(), free_port(), free_port()
    nats_url = f"nats://127.0.0.1:{nats_port}"
    server = start_nats(root / "webhooks", nats_port, logs)
    env = {**os.environ, "SWITCHBOARD_NATS_URL": nats_url, "SWITCHBOARD_WEBHOOKS_HEALTH_PORT": str(health),
           "SWITCHBOARD_WEBHOOK_ALLOW_HOSTS": "127.0.0.1", "SWITCHBOARD_LOG_LEVEL": "warning"}
    replica = start_module("webhooks", "services.webhooks", env, logs)
    try:
        wait_http_ok(f"http://127.0.0.1:{health}/readyz", 30, replica.popen)
        seconds = asyncio.run(_drive(nats_url, receiver_port, count))
    finally:
        replica.stop()
        server.stop()
    return {"deliveries": count, "seconds": round(seconds, 2), "deliveries_per_s": round(count / seconds)}


def main() -> None:
    """`python -m tools.bench.webhooks`: this bench alone (BENCH_WEBHOOK_EVENTS events, as in `make bench`)."""
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        print(measure(Path(root), int(os.environ.get("BENCH_WEBHOOK_EVENTS", "2000"))))


if __name__ == "__main__":
    main()
