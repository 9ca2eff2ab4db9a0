"""Webhook test parts: a real HTTP receiver on 127.0.0.1 that can be told to fail, hang or
answer 410/429, a fresh tenant (account) per test, and events published the way services do."""

import asyncio
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
from aiohttp import web
from nats.js.errors import KeyNotFoundError

from libs.contracts import subjects
from libs.contracts.bus import webhooks as bus
from libs.contracts.keys import ALL_SCOPES, ApiKeyRecord, encode_record, hash_key, mint_key
from libs.runtime.events import EventPublisher
from tests.integration.api import call
from tests.integration.cluster import Cluster, eventually
from tools.cli.processes import free_port


class Step(msgspec.Struct, frozen=True):
    """One scripted answer: a status (and headers), after holding the request `hold_s`."""

    status: int = 200
    headers: dict[str, str] = {}
    hold_s: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    host: str = "127.0.0.1"  # any of 127/8 works on Linux: a cluster can allow one and not another
    port: int = field(default_factory=free_port)
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    default: dict[str, Step] = field(default_factory=dict)  # per path, once its script is used up
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def script(self, path: str, *steps: Step, then: Step | None = None) -> None:
        with self._lock:
            self.scripts[path] = list(steps)
            if then is not None:
                self.default[path] = then

    def got(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait(self, path: str, count: int, timeout_s: float = 15.0) -> list[Received]:
        return eventually(lambda: (found := self.got(path)) and len(found) >= count and found, timeout_s)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.requests.append(Received(request.path, dict(request.headers), body, time.time()))
            queue = self.scripts.get(request.path) or []
            step = queue.pop(0) if queue else self.default.get(request.path, Step())
        if step.hold_s:
            await asyncio.sleep(step.hold_s)
        return web.Response(status=step.status, headers=step.headers, text="ok")

    def __enter__(self) -> "Receiver":
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, self.host, self.port).start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert started.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


async def _with_js(nats_url: str, work: Any) -> Any:
    nc = await nats.connect(nats_url)
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


def new_tenant(gateway: Cluster) -> tuple[str, str]:
    """A second account of its own (as a multi-tenant deployment has): (account id, admin key)."""
    account, key = f"acct_{secrets.token_hex(6)}", mint_key()
    record = ApiKeyRecord(key_id=f"key_{secrets.token_hex(6)}", account_id=account, scopes=ALL_SCOPES,
                          name="tenant admin", created_at=int(time.time()))

    async def put(js: Any) -> None:
        kv = await js.key_value(subjects.KV_API_KEYS)
        await kv.put(hash_key(key), encode_record(record))

    asyncio.run(_with_js(gateway.nats.url, put))
    eventually(lambda: call(gateway, "GET", "/webhooks/endpoints", key).status_code == 200, 5)
    return account, key


def emit(gateway: Cluster, type_: str, account: str, data: dict[str, Any], **fields: Any) -> None:
    """Publish one event on EVENTS exactly as a service does (libs/runtime/events.py)."""

    async def publish(js: Any) -> None:
        assert await EventPublisher(js).emit(type_, account, data, **fields)

    asyncio.run(_with_js(gateway.nats.url, publish))


def webhook_status(gateway: Cluster, account: str, job_id: str) -> bus.WebhookStatus | None:
    async def read(js: Any) -> bus.WebhookStatus | None:
        kv = await js.key_value(subjects.KV_WEBHOOK_STATUS)
        try:
            entry = await kv.get(f"{account}.{job_id}")
        except KeyNotFoundError:
            return None
        return bus.decode_status(entry.value) if entry.value else None

    return asyncio.run(_with_js(gateway.nats.url, read))


def endpoint(gateway: Cluster, key: str, url: str, **fields: Any) -> dict[str, Any]:
    response = call(gateway, "POST", "/webhooks/endpoints", key, json={"url": url, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def deliveries(gateway: Cluster, key: str, **params: Any) -> list[dict[str, Any]]:
    response = call(gateway, "GET", "/webhooks/deliveries", key, params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def delivery(gateway: Cluster, key: str, id_: str, status: str, timeout_s: float = 15.0) -> dict[str, Any]:
    """The delivery once it has reached `status`."""

    def check() -> dict[str, Any] | None:
        found = call(gateway, "GET", f"/webhooks/deliveries/{id_}", key).json()
        return found if found.get("status") == status else None

    return eventually(check, timeout_s)
