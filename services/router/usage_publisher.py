"""Usage events onto JetStream without holding up any reply.

The dispatcher hands each event over after its reply is sent; workers publish
with the request id as Nats-Msg-Id (the stream drops duplicates) and retry with
backoff until the stream acknowledges, so a NATS blip delays metering rather
than losing it. The outbox is bounded: if NATS stays away long enough to fill
it, the oldest events are the ones counted as lost (logged), never the replies.
"""

import asyncio

import structlog
from nats.js import JetStreamContext

from libs.contracts import subjects
from libs.contracts.bus.usage import UsageEvent, encode

log = structlog.get_logger()
_MAX_BACKOFF_S = 2.0


class UsagePublisher:
    def __init__(self, js: JetStreamContext, max_pending: int = 100_000, workers: int = 16) -> None:
        self._js = js
        self._queue: asyncio.Queue[UsageEvent] = asyncio.Queue(max_pending)
        self._workers_count = workers
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work()) for _ in range(self._workers_count)]

    def submit(self, event: UsageEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._queue.get_nowait()
            self._queue.task_done()
            self._queue.put_nowait(event)
            self.dropped += 1
            log.error("usage_outbox_full", dropped=self.dropped)

    async def stop(self, grace_s: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self._queue.join(), grace_s)
        except TimeoutError:
            log.error("usage_unpublished_at_stop", pending=self._queue.qsize())
        for worker in self._workers:
            worker.cancel()

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            payload = encode(event)
            backoff = 0.05
            while True:
                try:
                    await self._js.publish(subjects.USAGE_EVENTS, payload,
                                           headers={"Nats-Msg-Id": event.request_id}, timeout=2)
                    self._queue.task_done()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS down, reconnecting, or the ack timed out: retry
                    log.warning("usage_publish_retry", request_id=event.request_id, error=repr(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
