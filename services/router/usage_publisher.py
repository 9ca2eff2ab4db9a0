"""Usage events onto JetStream without holding up any reply, and without losing them.

The dispatcher hands each event over right after it queues the reply. `submit`
first appends the event to this replica's write-ahead spool (usage_spool.py):
one write(2), done before the reply's bytes leave the process (nats-py sends
them from its flusher task, which runs only once the dispatcher yields), so a
client never holds a 200 for usage that a kill of this process could lose.
Events are then gathered into batches (up to `max_batch` events or `linger_s`
seconds, whichever comes first) so the stream, the server's disk and the ledger
see one message per batch instead of one per request.

Workers publish each batch with a message id derived from its request ids and
retry with backoff until the stream acknowledges; the ack is logged to the
spool, and fully acknowledged segments are deleted. Memory is bounded: while
NATS is away, batches beyond `max_pending_bytes` stay on disk only (spilled)
and are read back once acknowledgements make room again. A replay publishes the
same message ids, so JetStream's duplicate window drops what did arrive, and
the ledger's insert (idempotent by request id) drops it after that window.

On start, and every `scan_interval_s`, the spool of any dead replica is adopted:
its unacknowledged batches are logged into ours and published like our own. A
graceful stop publishes what it can within its grace and leaves the rest in the
spool for the next replica.
"""

import asyncio
import hashlib
from pathlib import Path

import structlog
from nats.js import JetStreamContext

from libs.contracts import subjects
from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import UsageBatch, UsageEvent, encode
from services.router.usage_spool import Segment, Spool

log = structlog.get_logger()
_MAX_BACKOFF_S = 2.0
# Snapshot bytes after which a batch is sealed early: with one more snapshot of at most
# MAX_SNAPSHOT_BYTES the batch still fits the bus's default 1 MiB max_payload.
_MAX_SNAPSHOT_BATCH_BYTES = 256 * 1024


def batch_msg_id(events: list[UsageEvent]) -> str:
    """The JetStream message id of a batch: the same for the same requests, however often sent."""
    return hashlib.sha256("\n".join(e.request_id for e in events).encode()).hexdigest()


class _Outgoing:
    """A sealed batch held in memory until JetStream acknowledges it."""

    __slots__ = ("events", "msg_id", "payload", "segment")

    def __init__(self, msg_id: str, batch: UsageBatch, segment: Segment | None) -> None:
        self.msg_id = msg_id
        self.payload = encode(batch)
        self.events = len(batch.events)
        self.segment = segment  # None: not in the spool (a disk error), memory is its only copy


class UsagePublisher:
    def __init__(self, js: JetStreamContext, spool_dir: Path, max_batch: int = 256, linger_s: float = 0.02,
                 max_pending_bytes: int = 32 * 1024 * 1024, workers: int = 4, scan_interval_s: float = 10.0) -> None:
        self._js = js
        self.spool = Spool(spool_dir)
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._max_bytes = max_pending_bytes
        self._scan_interval_s = scan_interval_s
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue()  # bounded by bytes, in _offer
        self._held_bytes = 0  # queued or being published
        self._held = 0
        self._batch: list[UsageEvent] = []
        self._snapshots: list[Snapshot] = []
        self._snapshot_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._workers_count = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._room = asyncio.Event()  # memory fell below half the bound
        self._settled = asyncio.Event()  # nothing held and nothing spilled: all acknowledged
        self.dropped = 0
        self.spilled = 0

    def start(self) -> None:
        self.spool.open()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work()) for _ in range(self._workers_count)]
        self._tasks.append(loop.create_task(self._replay()))

    def submit(self, event: UsageEvent, snapshot: Snapshot | None = None) -> None:
        self.spool.log_event(event, snapshot)
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
        msg_id = batch_msg_id(batch.events)
        self._offer(_Outgoing(msg_id, batch, self.spool.log_seal(msg_id, len(batch.events))))

    def _offer(self, out: _Outgoing) -> None:
        if self._held and self._held_bytes + len(out.payload) > self._max_bytes:
            if out.segment is not None:
                if not self.spilled:
                    log.warning("usage_outbox_spilling", held_bytes=self._held_bytes)
                self.spilled += 1
                return  # on disk only, read back by _replay once there is room
            self.dropped += out.events
            log.error("usage_outbox_full", dropped=self.dropped)
            return
        self._hold(out)

    def _hold(self, out: _Outgoing) -> None:
        if out.segment is not None:
            out.segment.held.add(out.msg_id)
        self._held += 1
        self._held_bytes += len(out.payload)
        self._settled.clear()
        self._queue.put_nowait(out)

    def _release(self, out: _Outgoing) -> None:
        if out.segment is not None:
            self.spool.log_ack(out.segment, out.msg_id)
        self._held -= 1
        self._held_bytes -= len(out.payload)
        if self.spool.spilled_segments():
            if self._held_bytes <= self._max_bytes // 2:
                self._room.set()
        elif not self._held:
            self._settled.set()

    async def _work(self) -> None:
        while True:
            out = await self._queue.get()
            backoff = 0.05
            while True:
                try:
                    await self._js.publish(subjects.USAGE_EVENTS, out.payload, headers={"Nats-Msg-Id": out.msg_id},
                                           timeout=2)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS down, reconnecting, or the ack timed out: retry
                    log.warning("usage_publish_retry", events=out.events, error=repr(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
            self._release(out)

    async def _replay(self) -> None:
        """Adopt dead replicas' spools every scan interval; read spilled batches back when there is room."""
        loop = asyncio.get_running_loop()
        next_scan = loop.time()
        while True:
            self._room.clear()
            try:
                if loop.time() >= next_scan:
                    next_scan = loop.time() + self._scan_interval_s
                    await self._adopt_orphans()
                await self._reload_spilled()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad file must not stop metering; the next round retries
                log.exception("usage_replay_failed")
            try:
                await asyncio.wait_for(self._room.wait(), max(next_scan - loop.time(), 0.0))
            except TimeoutError:
                pass

    async def _wait_room(self) -> None:
        while self._held and self._held_bytes > self._max_bytes // 2:
            self._room.clear()
            await self._room.wait()

    async def _reload_spilled(self) -> None:
        for segment in self.spool.spilled_segments():
            if segment is self.spool.current:
                self._seal()  # a batch never straddles two segments
                self.spool.rotate()
            batches = self.spool.read_spilled(segment)
            for msg_id, batch in batches:
                await self._wait_room()
                self._hold(_Outgoing(msg_id, batch, segment))
            if batches:
                log.info("usage_spill_reloaded", batches=len(batches), segment=segment.path.name)

    async def _adopt_orphans(self) -> None:
        for orphan in self.spool.orphans():
            try:
                adopted = 0
                for msg_id, batch in self.spool.read_orphan(orphan):
                    self._seal()  # our own open batch first: a seal covers the events just before it
                    for event, snapshot in _pairs(batch):
                        self.spool.log_event(event, snapshot)
                    msg_id = msg_id or batch_msg_id(batch.events)
                    segment = self.spool.log_seal(msg_id, len(batch.events))
                    self._offer(_Outgoing(msg_id, batch, segment))
                    if segment is None:  # not in our log: the orphan's files stay for the next round
                        return
                    adopted += 1
                    await asyncio.sleep(0)  # a large spool must not stall the requests in flight
                self.spool.discard(orphan)
                log.info("usage_spool_adopted", replica=orphan.replica, batches=adopted)
            finally:
                self.spool.release(orphan)

    async def stop(self, grace_s: float = 5.0) -> None:
        self._seal()
        try:
            await asyncio.wait_for(self._drain(), grace_s)
        except TimeoutError:
            pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        owed = self.spool.owes()
        if owed:
            log.warning("usage_left_in_spool_at_stop", held_batches=self._held, spool=str(self.spool.directory))
        self.spool.close(keep=owed)

    async def _drain(self) -> None:
        while self._held or self.spool.spilled_segments():
            self._settled.clear()
            await self._settled.wait()  # _replay reads spilled batches back as acks make room


def _pairs(batch: UsageBatch) -> list[tuple[UsageEvent, Snapshot | None]]:
    snapshots = {s.request_id: s for s in batch.snapshots}
    return [(event, snapshots.get(event.request_id)) for event in batch.events]
