"""The router process: NATS subscriptions in the router queue group, one task
per request, graceful drain on shutdown."""

import asyncio
import secrets
from pathlib import Path

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.contracts import errors, streams, subjects
from libs.contracts.bus import cache as cache_bus
from libs.contracts.bus import catalog as catalog_bus
from libs.contracts.bus.inference import Reply, encode
from libs.contracts.config import SwitchboardConfig
from libs.contracts.in_process import Deliver
from libs.runtime.blobs import BlobStore
from libs.runtime.env import data_dir, env_float, env_int, env_str, nats_url
from libs.runtime.jetstream import ensure_stream
from libs.runtime.nats_conn import connect_nats, shutdown_nats
from libs.runtime.tracing import Tracing
from services.router.audio_fetch import AudioFetcher
from services.router.cache import ResponseCache
from services.router.catalog import DEFAULT_CATALOG, Catalog, RouteError
from services.router.dispatch import Dispatcher
from services.router.eval_aliases import EvalAliases
from services.router.failures import failure
from services.router.health import HealthBook
from services.router.longrun import DEFAULT_MAX_BYTES, LongRunner
from services.router.metrics import RouterMetrics
from services.router.pricing import Pricing
from services.router.providers import build_longrun, build_providers, known_provider_hints
from services.router.providers.base import ProviderAdapter
from services.router.providers.longrun_base import LongRunAdapter
from services.router.replies import LocalMessage, Replies
from services.router.routing import RetryPolicy
from services.router.spans import RouterSpans
from services.router.usage_publisher import UsagePublisher

log = structlog.get_logger()
_encode_json = msgspec.json.Encoder().encode


class RouterService:
    def __init__(self, config: SwitchboardConfig) -> None:
        self.tracing = Tracing("router")
        router_cfg = config.router
        connect = env_float("SWITCHBOARD_ROUTER_CONNECT_TIMEOUT_S", router_cfg.connect_timeout_s or 5.0)
        read = env_float("SWITCHBOARD_ROUTER_READ_TIMEOUT_S", router_cfg.read_timeout_s or 120.0)
        pool = env_int("SWITCHBOARD_ROUTER_MAX_CONNECTIONS", router_cfg.max_connections_per_provider or 4096)
        pool_wait = env_float("SWITCHBOARD_ROUTER_POOL_TIMEOUT_S", router_cfg.pool_timeout_s or 1.0)
        router_cfg = msgspec.structs.replace(router_cfg, connect_timeout_s=connect, read_timeout_s=read,
                                             max_connections_per_provider=pool, pool_timeout_s=pool_wait)
        self.providers: dict[str, ProviderAdapter] = build_providers(config.providers, router_cfg)
        # Video, music and 3D: providers (Replicate, fal) may have only this side.
        self.longrun: dict[str, LongRunAdapter] = build_longrun(config.providers, router_cfg)
        catalog_path = Path(env_str("SWITCHBOARD_CATALOG", str(DEFAULT_CATALOG)))
        self.catalog = Catalog.load(catalog_path, config.models, set(self.providers) | set(self.longrun),
                                    known_provider_hints())
        self.pricing = Pricing.from_config(config.metering)
        self.policy = RetryPolicy.from_config(router_cfg)
        self.cache = ResponseCache(ttl_s=env_float("SWITCHBOARD_CACHE_TTL_S", 3600.0))
        self.health = HealthBook(replica=f"router-{secrets.token_hex(6)}",
                                 failures_to_open=router_cfg.breaker_failures or 5,
                                 cooldown_s=router_cfg.breaker_cooldown_s or 30.0)
        self.aliases = EvalAliases()
        self.metrics = RouterMetrics(self.catalog, self.health)
        self.audio = AudioFetcher(allow_private=env_str("SWITCHBOARD_FETCH_PRIVATE_URLS", "0") == "1")
        self._tasks: set[asyncio.Task[None]] = set()
        self._usage: UsagePublisher | None = None
        self._subscriptions: list[Subscription] = []
        self._nc: Client | None = None
        self._dispatcher: Dispatcher | None = None
        self._replies: Replies | None = None
        self._longrun: LongRunner | None = None

    @property
    def ready(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def start(self) -> None:
        for adapter in self.providers.values():
            await adapter.start()
        for longrun in self.longrun.values():
            await longrun.start()
        await self.audio.start()
        self._nc = await connect_nats(nats_url(), "switchboard-router", on_reconnect=self.aliases.mirror.resync)
        js = self._nc.jetstream()
        await ensure_stream(js, streams.USAGE)
        # Metering off (SWITCHBOARD_METERING=0) exists to measure what metering costs; a
        # production gateway always meters.
        if env_str("SWITCHBOARD_METERING", "1") != "0":
            # The per-replica usage spool (usage_spool.py); replicas on one host may share the folder.
            self._usage = UsagePublisher(js, data_dir() / "router-usage-spool",
                                         linger_s=env_float("SWITCHBOARD_USAGE_LINGER_S", 0.02))
            self._usage.start()
        await self.health.start(js)
        await self.cache.start(js)
        await self.aliases.mirror.start(js)
        self._replies = Replies(self._nc)
        self._dispatcher = Dispatcher(self._replies, self.catalog, self.providers, self.pricing, self._usage,
                                      self.health, self.policy, self.cache, self.aliases, self.audio,
                                      RouterSpans(self.tracing), self.metrics)
        blobs = BlobStore(js, subjects.OBJ_FILES)
        await blobs.start()
        self._longrun = LongRunner(self.catalog, self.longrun, self.pricing, self._usage, self.health, blobs,
                                   env_int("SWITCHBOARD_LONGRUN_MAX_BYTES", DEFAULT_MAX_BYTES))
        handlers = {subjects.INFER_CHAT: self._on_inference, subjects.INFER_EMBEDDINGS: self._on_inference,
                    subjects.INFER_MODALITY: self._on_inference, subjects.CATALOG_LIST: self._on_query,
                    subjects.CATALOG_GET: self._on_query, subjects.HEALTH_PROVIDERS: self._on_query,
                    subjects.CACHE_PURGE: self._on_purge, subjects.INFER_LONGRUN: self._on_longrun}
        self._subscriptions = [
            await self._nc.subscribe(subject, queue=subjects.ROUTER_QUEUE, cb=handler, pending_msgs_limit=65536)
            for subject, handler in handlers.items()]
        # Not a queue group: only the replica relaying the stream knows it, so all of them hear this.
        self._subscriptions.append(await self._nc.subscribe(subjects.STREAM_CANCEL, cb=self._on_cancel))
        await self._nc.flush()
        log.info("router_ready", providers=sorted(self.providers))

    async def _on_inference(self, msg: Msg) -> None:
        # nats-py awaits callbacks one at a time; a task per request lets a slow
        # upstream call not hold up the next message.
        assert self._dispatcher is not None
        task = asyncio.get_running_loop().create_task(self._dispatcher.handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def dispatch_local(self, subject: str, payload: bytes, reply_to: str, deliver: Deliver,
                       headers: dict[str, str] | None = None) -> None:
        """An inference request from the edge hosting this router: answered through `deliver`
        (called with each encoded reply, in order), as a NATS message would be on `reply_to`."""
        assert self._dispatcher is not None and self._replies is not None
        replies = self._replies
        replies.attach(reply_to, deliver)
        task = asyncio.get_running_loop().create_task(
            self._dispatcher.handle(LocalMessage(subject, payload, reply_to, headers)))
        self._tasks.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            replies.detach(reply_to)  # nothing is published to it after the dispatch ends

        task.add_done_callback(finished)

    def cancel_local(self, reply_to: str) -> None:
        """The in-process edge's client left this stream."""
        if self._dispatcher is not None:
            self._dispatcher.cancel(reply_to)

    async def _on_longrun(self, msg: Msg) -> None:
        # A fetch streams a whole video into the Object Store: a task per message, like inference.
        assert self._longrun is not None
        task = asyncio.get_running_loop().create_task(self._longrun.handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_cancel(self, msg: Msg) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel(msg.data.decode(errors="replace"))

    def answer_query(self, subject: str, data: bytes) -> bytes | None:
        """The encoded reply to a catalog or health query, which the router answers from what it
        holds; None for any other subject. Used on the bus and by an edge in this process."""
        if subject == subjects.HEALTH_PROVIDERS:
            return encode(Reply(200, _encode_json(self.health.merged())))
        if subject not in (subjects.CATALOG_LIST, subjects.CATALOG_GET):
            return None
        try:
            query = catalog_bus.decode_query(data)
            if query.model_id is not None:
                body = _encode_json(self.catalog.card(query.model_id))
            else:
                body = _encode_json(self.catalog.listing(query.provider, query.modality))
            answer: object = Reply(200, body)
        except RouteError as exc:
            answer = failure(exc.status, exc.type, exc.message)
        except msgspec.DecodeError:
            answer = failure(400, errors.INVALID_REQUEST, "undecodable catalog query")
        return encode(answer)

    async def _on_query(self, msg: Msg) -> None:
        answer = self.answer_query(msg.subject, msg.data)
        if answer is not None:
            await msg.respond(answer)

    async def _on_purge(self, msg: Msg) -> None:
        try:
            deleted = await self.cache.purge(cache_bus.decode_purge_request(msg.data).account_id)
            answer: object = cache_bus.PurgeResult(deleted)
        except Exception as exc:
            log.warning("cache_purge_failed", error=repr(exc))
            answer = failure(503, errors.UNAVAILABLE, "The cache could not be purged; retry.")
        await msg.respond(cache_bus.encode(answer))

    async def stop(self, grace_s: float = 10.0) -> None:
        # Stop taking requests, finish the ones in flight, flush their usage while the
        # connection is still up, and only then close it.
        for subscription in self._subscriptions:
            try:
                await subscription.unsubscribe()
            except Exception as exc:  # the connection may already be gone
                log.warning("unsubscribe_failed", error=repr(exc))
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace_s)
        if self._usage is not None:
            await self._usage.stop()
        await self.metrics.stop()
        await self.health.stop()
        await self.cache.stop()
        await self.aliases.mirror.stop()
        if self._nc is not None:
            await shutdown_nats(self._nc)
        for adapter in self.providers.values():
            await adapter.close()
        for longrun in self.longrun.values():
            await longrun.close()
        await self.audio.close()
        self.tracing.shutdown()
