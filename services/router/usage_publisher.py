"""Usage events onto JetStream without holding up any reply.

The dispatcher hands each event over after its reply is sent. Events are
gathered into batches (up to `max_batch` events or `linger_s` seconds,
whichever comes first) so the stream, the server's disk and the ledger see
one message per batch instead of one per request. Workers publish each batch
with a message id derived from its request ids (the stream drops a repeat) and
retry with backoff until the stream acknowledges, so a NATS blip delays
metering rather than losing it. The outbox is bounded: if NATS stays away long
enough to fill it, the oldest batches are the ones lost (logged), never replies.
"""

import asyncio
import hashlib

import structlog
from nats.js import JetStreamContext

from libs.contracts import subjects
from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import UsageBatch, UsageEvent, encode

log = structlog.get_logger()
_MAX_BACKOFF_S = 2.0
# Snapshot bytes after which a batch is sealed early: with one more snapshot of at most
# MAX_SNAPSHOT_BYTES the batch still fits the bus's default 1 MiB max_payload.
_MAX_SNAPSHOT_BATCH_BYTES = 256 * 1024


class UsagePublisher:
    def __init__(self, js: JetStreamContext, max_batch: int = 256, linger_s: float = 0.02,
                 max_pending_batches: int = 2_000, workers: int = 4) -> None:
        self._js = js
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._queue: asyncio.Queue[UsageBatch] = asyncio.Queue(max_pending_batches)
        self._batch: list[UsageEvent] = []
        self._snapshots: list[Snapshot] = []
        self._snapshot_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._workers_count = workers
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work()) for _ in range(self._workers_count)]

    def submit(self, event: UsageEvent, snapshot: Snapshot | None = None) -> None:
        self._batch.append(event)
        if snapshot is not None:
            self._snapshots.append(snapshot)
            self._snapshot_bytes += len(snapshot.request_body) + len(snapshot.response_body)
        if len(self._batch) >= self._max_batch or self._snapshot_bytes >= _MAX_SNAPSHOT_BATCH_BYTES:
            self._seal()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger_s, self._seal)

    def _seal(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._batch:
            return
        batch = UsageBatch(self._batch, self._snapshots)
        self._batch, self._snapshots, self._snapshot_bytes = [], [], 0
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            lost = self._queue.get_nowait()
            self._queue.task_done()
            self._queue.put_nowait(batch)
            self.dropped += len(lost.events)
            log.error("usage_outbox_full", dropped=self.dropped)

    async def stop(self, grace_s: float = 5.0) -> None:
        self._seal()
        try:
            await asyncio.wait_for(self._queue.join(), grace_s)
        except TimeoutError:
            log.error("usage_unpublished_at_stop", pending_batches=self._queue.qsize())
        for worker in self._workers:
            worker.cancel()

    async def _work(self) -> None:
        while True:
            batch = await self._queue.get()
            payload = encode(batch)
            msg_id = hashlib.sha256("\n".join(e.request_id for e in batch.events).encode()).hexdigest()
            backoff = 0.05
            while True:
                try:
                    await self._js.publish(subjects.USAGE_EVENTS, payload, headers={"Nats-Msg-Id": msg_id},
                                           timeout=2)
                    self._queue.task_done()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS down, reconnecting, or the ack timed out: retry
                    log.warning("usage_publish_retry", events=len(batch.events), error=repr(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
