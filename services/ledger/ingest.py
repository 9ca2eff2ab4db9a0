"""USAGE stream -> usage store, in batches, exactly once in effect.

A durable pull consumer hands out batches; a batch is acknowledged only after
the store has it, and the store ignores request ids it already holds. So a
ledger killed between insert and ack re-reads the batch and stores nothing
twice, and one that is down simply finds the events waiting when it returns.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from libs.contracts import subjects
from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import UsageEvent, decode_batch
from libs.runtime.background import BackgroundTask
from services.ledger.stores.base import UsageStore

log = structlog.get_logger()
BATCH = 500
# A batch handed to a ledger that dies is redelivered after this long: short enough that
# a restarted ledger catches up quickly, long enough for one batch insert (milliseconds).
ACK_WAIT_S = 10.0
HOOK_INTERVAL_S = 0.2
# A round that found less than a full batch waits out this long from its fetch before the next one,
# so a steady trickle is stored as one insert per round: each router already batches its own events,
# but at a few hundred requests/s those batches hold only a handful, and a store's cost is mostly
# per insert. Spend figures (HOOK_INTERVAL_S) already lag by more than this.
COALESCE_S = 0.05
_MAX_BACKOFF_S = 5.0


class Ingestor:
    def __init__(self, js: JetStreamContext, store: UsageStore,
                 on_stored: Callable[[list[UsageEvent]], Awaitable[None]] | None = None) -> None:
        self._js = js
        self._store = store
        self._on_stored = on_stored
        self._unhooked: list[UsageEvent] = []
        self._hooked_at = 0.0
        self._task = BackgroundTask("usage-ingest")
        self.stored = 0
        # When a fetch last found less than a batch waiting and every stored event had been through
        # the hooks (unix s): spend figures then include everything published before it (leases.py).
        self.caught_up_at = 0.0

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        return await self._js.pull_subscribe(
            subjects.USAGE_EVENTS, durable=subjects.LEDGER_CONSUMER, stream=subjects.STREAM_USAGE,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S, max_ack_pending=50_000),
        )

    async def _run(self) -> None:
        backoff = 0.1
        subscription = None
        while True:
            try:
                if subscription is None:
                    subscription = await self._subscribe()
                fetched_at, round_start = time.time(), time.monotonic()
                try:
                    msgs = await subscription.fetch(BATCH, timeout=HOOK_INTERVAL_S)
                except nats.errors.TimeoutError:
                    msgs = []
                if msgs:
                    await self._store_batch(msgs)
                await self._run_hooks()
                if len(msgs) < BATCH:
                    if not self._unhooked:
                        self.caught_up_at = fetched_at
                    if msgs:
                        await asyncio.sleep(round_start + COALESCE_S - time.monotonic())
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS restarting, store briefly unavailable: back off and retry
                log.warning("ingest_retry", error=repr(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                if isinstance(exc, nats.errors.Error):
                    subscription = None

    async def _store_batch(self, msgs: list[Msg]) -> None:
        events: list[UsageEvent] = []
        snapshots: list[Snapshot] = []
        for msg in msgs:
            try:
                batch = decode_batch(msg.data)
            except msgspec.DecodeError:
                log.error("bad_usage_event", subject=msg.subject, size=len(msg.data))
                continue
            events.extend(batch.events)
            snapshots.extend(batch.snapshots)
        if snapshots:
            # Before the events: a request whose usage is visible can already be replayed.
            await self._store.insert_snapshots(snapshots)
        if events:
            self.stored += await self._store.insert(events)
            self._unhooked.extend(events)
        for msg in msgs:
            await msg.ack()

    async def _run_hooks(self) -> None:
        """Spend caps, budgets and wallets look at stored events at most every HOOK_INTERVAL_S:
        their queries then cost the same whatever the request rate."""
        now = time.monotonic()
        if not self._unhooked or self._on_stored is None or now - self._hooked_at < HOOK_INTERVAL_S:
            return
        events, self._unhooked = self._unhooked, []
        self._hooked_at = now
        await self._on_stored(events)
