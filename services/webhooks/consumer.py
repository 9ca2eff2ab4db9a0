"""A durable pull consumer shared by every webhooks replica, with a bound on the
messages one replica handles at once. Handlers ack, NAK or term themselves; one that
raises has its message put back after a pause."""

import asyncio
from collections.abc import Awaitable, Callable

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

log = structlog.get_logger()
Handler = Callable[[Msg], Awaitable[None]]
_BATCH = 64
_FAILED_DELAY_S = 1.0


class PullConsumer:
    def __init__(self, js: JetStreamContext, stream: str, subject: str, durable: str, handle: Handler,
                 concurrency: int, ack_wait_s: float) -> None:
        self._js = js
        self._stream = stream
        self._subject = subject
        self._durable = durable
        self._handle = handle
        self._ack_wait_s = ack_wait_s
        self._free = concurrency
        # Fetch again once a batch's worth is free, not after every finished message: a pull
        # request per message costs as much as handling it when the budget runs full.
        self._refill = max(1, min(_BATCH, concurrency // 4))
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.subscribed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pull())

    async def stop(self) -> None:
        # Messages in flight are left unacknowledged: JetStream hands them to another replica.
        tasks = [task for task in [self._task, *self._running] if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _pull(self) -> None:
        subscription = None
        backoff = 0.1
        while True:
            try:
                if subscription is None:
                    # max_deliver unlimited: handlers count attempts themselves (a NAK is not always one).
                    subscription = await self._js.pull_subscribe(
                        self._subject, durable=self._durable, stream=self._stream,
                        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self._ack_wait_s,
                                              max_deliver=-1, max_ack_pending=-1))
                    self.subscribed = True
                await self._room.wait()
                msgs = await subscription.fetch(min(self._free, _BATCH), timeout=1.0)
                for msg in msgs:
                    self._free -= 1
                    task = asyncio.get_running_loop().create_task(self._run(msg))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                if self._free < self._refill:
                    self._room.clear()
                backoff = 0.1
            except nats.errors.TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS restarting: back off, subscribe again
                log.warning("webhooks_pull_retry", durable=self._durable, error=repr(exc))
                subscription = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _run(self, msg: Msg) -> None:
        try:
            await self._handle(msg)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhooks_message_failed", durable=self._durable, subject=msg.subject)
            try:
                await msg.nak(delay=_FAILED_DELAY_S)
            except Exception as exc:  # redelivered after ack_wait anyway
                log.warning("webhooks_nak_failed", error=repr(exc))
        finally:
            self._free += 1
            if self._free >= self._refill:
                self._room.set()
