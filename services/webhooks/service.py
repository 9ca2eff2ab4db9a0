"""The webhooks process: fans events out into deliveries, delivers them signed with
retries, and answers the edge's /v1/webhooks* and /v1/webhook-secret* calls."""

import aiohttp
import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.contracts import streams, subjects
from libs.contracts.bus.inference import encode
from libs.contracts.http.webhooks import EndpointView
from libs.runtime.bus_failures import failure_of
from libs.runtime.env import nats_url
from libs.runtime.events import EventPublisher
from libs.runtime.jetstream import ensure_stream
from libs.runtime.kv_mirror import KvMirror, open_bucket
from libs.runtime.nats_conn import connect_nats, shutdown_nats
from libs.runtime.tracing import Tracing
from services.webhooks import settings as settings_mod
from services.webhooks.acked_publish import AckedPublisher
from services.webhooks.api import WebhooksApi
from services.webhooks.consumer import PullConsumer
from services.webhooks.deliveries import decode_stored
from services.webhooks.delivery import Deliverer
from services.webhooks.fanout import Fanout
from services.webhooks.metrics import WebhooksMetrics
from services.webhooks.records import Records
from services.webhooks.signing_keys import SecretRecord, SigningKeys, decode_secret
from services.webhooks.ssrf import AllowList, Guard

log = structlog.get_logger()
_decode_endpoint = msgspec.json.Decoder(EndpointView).decode
_FANOUT_CONCURRENCY = 32


class WebhooksService:
    def __init__(self) -> None:
        self._tracing = Tracing("webhooks")
        self.metrics = WebhooksMetrics()
        self._nc: Client | None = None
        self._session: aiohttp.ClientSession | None = None
        self._mirror: KvMirror[EndpointView] = KvMirror(subjects.KV_WEBHOOK_ENDPOINTS, _decode_endpoint)
        self._secrets: KvMirror[SecretRecord] = KvMirror(subjects.KV_WEBHOOK_SECRETS, decode_secret)
        self._consumers: list[PullConsumer] = []
        self._subscription: Subscription | None = None
        self._writes: AckedPublisher | None = None

    @property
    def ready(self) -> bool:
        return (self._nc is not None and self._nc.is_connected and self._mirror.synced.is_set()
                and self._secrets.synced.is_set() and all(c.subscribed for c in self._consumers))

    async def _resync(self) -> None:
        await self._mirror.resync()
        await self._secrets.resync()

    async def start(self) -> None:
        settings = settings_mod.load()
        self._nc = nc = await connect_nats(nats_url(), "switchboard-webhooks", on_reconnect=self._resync)
        js = nc.jetstream()
        self.metrics.start(js)
        await ensure_stream(js, streams.EVENTS)
        await ensure_stream(js, streams.WEBHOOKS)
        await self._mirror.start(js)
        await self._secrets.start(js)
        self._writes = writes = AckedPublisher(nc)
        await writes.start()
        endpoints = Records(subjects.KV_WEBHOOK_ENDPOINTS, await open_bucket(js, subjects.KV_WEBHOOK_ENDPOINTS),
                            _decode_endpoint, writes)
        deliveries = Records(subjects.KV_WEBHOOK_DELIVERIES,
                             await open_bucket(js, subjects.KV_WEBHOOK_DELIVERIES, ttl_s=settings.retention_s),
                             decode_stored, writes)
        keys = SigningKeys(await open_bucket(js, subjects.KV_WEBHOOK_SECRETS), settings.secret_grace_s, self._secrets)
        guard = Guard(AllowList(settings.allow_hosts))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=guard.resolver(), limit=settings.max_in_flight),
            timeout=aiohttp.ClientTimeout(total=settings.timeout_s), auto_decompress=False)
        fanout = Fanout(writes, self._mirror, deliveries)
        deliverer = Deliverer(settings, self._session, guard, deliveries, endpoints, self._mirror, keys,
                              await open_bucket(js, subjects.KV_WEBHOOK_STATUS), self._tracing, self.metrics)
        api = WebhooksApi(endpoints, self._mirror, deliveries, keys, guard, fanout,
                          await open_bucket(js, subjects.KV_SUBACCOUNTS), EventPublisher(js))

        async def on_call(msg: Msg) -> None:
            try:
                answer = await api.answer(msg.data)
            except Exception as exc:
                log.exception("webhooks_call_failed")
                answer = failure_of(exc, "webhooks service")
            await msg.respond(encode(answer))

        self._subscription = await nc.subscribe(subjects.WEBHOOKS_API, queue=subjects.WEBHOOKS_QUEUE, cb=on_call)
        self._consumers = [
            PullConsumer(js, subjects.STREAM_EVENTS, f"{subjects.EVENTS_PREFIX}.>", subjects.WEBHOOKS_FANOUT_CONSUMER,
                         fanout.handle, _FANOUT_CONCURRENCY, ack_wait_s=30.0),
            PullConsumer(js, subjects.STREAM_WEBHOOKS, f"{subjects.WEBHOOKS_DELIVER_PREFIX}.>",
                         subjects.WEBHOOKS_DELIVERY_CONSUMER, deliverer.handle, settings.max_in_flight,
                         ack_wait_s=settings.ack_wait_s),
        ]
        for consumer in self._consumers:
            consumer.start()
        await nc.flush()
        log.info("webhooks_ready", attempts=len(settings.schedule), per_target=settings.per_target)

    async def stop(self) -> None:
        await self.metrics.stop()
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as exc:  # the connection may already be gone
                log.warning("unsubscribe_failed", error=repr(exc))
        for consumer in self._consumers:
            await consumer.stop()
        if self._writes is not None:
            await self._writes.stop()
        await self._mirror.stop()
        await self._secrets.stop()
        if self._session is not None:
            await self._session.close()
        if self._nc is not None:
            await shutdown_nats(self._nc)
        self._tracing.shutdown()
