"""The ledger process: ingest usage and request snapshots, track spend against caps,
answer generation, report, snapshot and management queries."""

from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from libs.contracts import accounts, errors, streams, subjects
from libs.contracts.bus import ledger as ledger_bus
from libs.contracts.bus.inference import Failure, Reply, encode
from libs.contracts.bus.usage import UsageEvent
from libs.contracts.errors import ErrorBody
from libs.contracts.keys import decode_record
from libs.runtime.bus_failures import failure_of
from libs.runtime.env import data_dir, env_float, env_str, nats_url
from libs.runtime.events import EventPublisher
from libs.runtime.jetstream import ensure_stream
from libs.runtime.kv_mirror import KvMirror, open_bucket
from libs.runtime.nats_conn import connect_nats, shutdown_nats
from services.ledger import queries
from services.ledger.accounts import Accounts
from services.ledger.admin_ops import dispatch
from services.ledger.budgets import Budgets
from services.ledger.daily import DailySummary
from services.ledger.ingest import Ingestor
from services.ledger.leases import BOOK_TTL_S, SpendLeases
from services.ledger.metrics import LedgerMetrics
from services.ledger.retention import SnapshotRetention, retention_days
from services.ledger.spend import SpendTracker
from services.ledger.stores import open_store
from services.ledger.stores.base import UsageStore
from services.ledger.wallets import Wallets

log = structlog.get_logger()


class LedgerService:
    def __init__(self) -> None:
        clickhouse = env_str("SWITCHBOARD_CLICKHOUSE_URL", "") or None
        self.store: UsageStore = open_store(clickhouse, Path(data_dir()) / "usage.sqlite3")
        self.keys = KvMirror(subjects.KV_API_KEYS, decode_record)
        self.subaccounts = KvMirror(subjects.KV_SUBACCOUNTS, accounts.decode_subaccount)
        self.spend = KvMirror(subjects.KV_SPEND, accounts.decode_spend)
        self._mirrors: list[KvMirror] = [self.keys, self.subaccounts, self.spend]  # type: ignore[type-arg]
        self._nc: Client | None = None
        self._ingestor: Ingestor | None = None
        self._daily: DailySummary | None = None
        self._retention = SnapshotRetention(self.store, retention_days())
        self.metrics = LedgerMetrics(lambda: self._ingestor.stored if self._ingestor is not None else 0)

    @property
    def ready(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def _resync(self) -> None:
        for mirror in self._mirrors:
            await mirror.resync()

    async def start(self) -> None:
        await self.store.open()
        self._nc = await connect_nats(nats_url(), "switchboard-ledger", on_reconnect=self._resync)
        js = self._nc.jetstream()
        self.metrics.start(js)
        await ensure_stream(js, streams.USAGE)
        await ensure_stream(js, streams.EVENTS)
        for mirror in (self.keys, self.subaccounts, self.spend):
            await mirror.start(js)
        events_out = EventPublisher(js)
        tracker = SpendTracker(self.store, self.spend, self.subaccounts, events_out)
        budgets = Budgets(self.store, events_out)
        wallets = Wallets(self.store, events_out)
        self._mirrors += [budgets.mirror, wallets.mirror]
        await budgets.mirror.start(js)
        await wallets.mirror.start(js)
        ops = {**Accounts(self.keys, self.subaccounts, tracker, events_out).ops, **budgets.ops, **wallets.ops}

        async def after_batch(batch: list[UsageEvent]) -> None:
            # Each watcher reads fresh totals from the store; none of them blocks ingestion for long.
            await tracker.after_batch(batch)
            await budgets.after_batch(batch)
            await wallets.after_batch(batch)

        self._ingestor = Ingestor(js, self.store, on_stored=after_batch)
        await self._ingestor.start()
        ingestor = self._ingestor
        leases = SpendLeases(await open_bucket(js, subjects.KV_SPEND_LEASES, ttl_s=BOOK_TTL_S), self.subaccounts,
                             self.spend, wallets.mirror, events_out, lambda: ingestor.caught_up_at)
        self._retention.start()
        self._daily = DailySummary(self.store, await open_bucket(js, subjects.KV_LEDGER_STATE),
                                   lambda: {record.account_id for record in self.keys.entries.values()}, events_out,
                                   env_float("SWITCHBOARD_DAILY_SUMMARY_INTERVAL_S", 60.0))
        self._daily.start()
        await self._serve(subjects.LEDGER_GENERATION,
                          lambda data: queries.generation(self.store, ledger_bus.decode_generation_query(data)))
        await self._serve(subjects.LEDGER_RECENT,
                          lambda data: queries.recent(self.store, ledger_bus.decode_recent_query(data)))
        await self._serve(subjects.LEDGER_REPORT,
                          lambda data: queries.report(self.store, ledger_bus.decode_report_query(data)))
        await self._serve(subjects.LEDGER_ADMIN, lambda data: dispatch(ops, ledger_bus.decode_admin(data)))
        await self._serve(subjects.LEDGER_SNAPSHOT,
                          lambda data: queries.snapshot(self.store, ledger_bus.decode_snapshot_query(data)))
        await self._serve_leases(leases)
        await self._nc.flush()
        log.info("ledger_ready", store=type(self.store).__name__)

    async def _serve(self, subject: str, answer: Callable[[bytes], Awaitable[Reply | Failure]]) -> None:
        assert self._nc is not None

        async def on_msg(msg: Msg) -> None:
            try:
                reply = await answer(msg.data)
            except msgspec.DecodeError:
                reply = Failure(ErrorBody("undecodable ledger query", errors.INVALID_REQUEST, 400))
            except Exception as exc:
                log.exception("ledger_query_failed", subject=subject)
                reply = failure_of(exc, "ledger")
            await msg.respond(encode(reply))

        await self._nc.subscribe(subject, queue=subjects.LEDGER_QUEUE, cb=on_msg)

    async def _serve_leases(self, leases: SpendLeases) -> None:
        """LEDGER_LEASE answers with a LeaseGrant (not a Reply): edges call it off their hot path."""
        assert self._nc is not None

        async def on_msg(msg: Msg) -> None:
            try:
                answer = await leases.answer(msg.data)
            except Exception:  # KV unavailable: the edge keeps its leases and asks again
                log.exception("lease_failed")
                answer = ledger_bus.encode(ledger_bus.LeaseGrant(None, error="the ledger could not answer"))
            await msg.respond(answer)

        await self._nc.subscribe(subjects.LEDGER_LEASE, queue=subjects.LEDGER_QUEUE, cb=on_msg)

    async def stop(self) -> None:
        await self.metrics.stop()
        if self._ingestor is not None:
            await self._ingestor.stop()
        if self._daily is not None:
            await self._daily.stop()
        await self._retention.stop()
        for mirror in self._mirrors:
            await mirror.stop()
        if self._nc is not None:
            await shutdown_nats(self._nc)
        await self.store.close()
