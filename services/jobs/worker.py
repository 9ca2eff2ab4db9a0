"""Work pulled from the JOBS work queue, a bounded number at a time per replica.

One durable pull consumer per kind of work (`runs`, `polls`; subjects.py) is shared
by every jobs replica, so each message goes to one of them. A handler in progress
keeps telling JetStream so (in_progress), and its message is acknowledged only when
the result is recorded: a replica killed mid-run has the message redelivered to
another after `ack_wait_s`, which runs it again.

A handler may instead return `Later(seconds)`: the message is NAKed with that delay
and comes back then (a generation polled again), holding no slot meanwhile; such
returns are not failures. With `max_deliver` set, a message that failed (raised, or
its replica died) that many times is given up and recorded as failed; a consumer
whose messages come back on purpose (`max_deliver=None`) counts failures itself.
"""

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from libs.contracts import subjects

log = structlog.get_logger()
MAX_DELIVER = 3


class Later(msgspec.Struct, frozen=True):
    """Come back to this message in `delay_s` seconds (not a failure)."""

    delay_s: float


Handler = Callable[[bytes], Awaitable[object]]
GiveUp = Callable[[bytes, str], Awaitable[None]]


class Worker:
    def __init__(self, js: JetStreamContext, handlers: dict[str, Handler], give_up: dict[str, GiveUp],
                 concurrency: int, ack_wait_s: float, *, durable: str = subjects.JOBS_CONSUMER,
                 filter_subject: str = f"{subjects.JOBS_RUNS_PREFIX}.>", max_deliver: int | None = MAX_DELIVER
                 ) -> None:
        self._js = js
        self._ack_wait_s = ack_wait_s
        self._durable = durable
        self._filter = filter_subject
        self._max_deliver = max_deliver
        self._handlers = handlers
        self._give_up = give_up
        self._slots = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pull())

    async def stop(self) -> None:
        # Runs in flight are abandoned unacknowledged: JetStream hands them to another replica.
        for task in [self._task, *self._running]:
            if task is not None:
                task.cancel()

    async def _pull(self) -> None:
        subscription = None
        backoff = 0.1
        while True:
            try:
                if subscription is None:
                    max_deliver = -1 if self._max_deliver is None else self._max_deliver + 1
                    subscription = await self._js.pull_subscribe(
                        self._filter, durable=self._durable, stream=subjects.STREAM_JOBS,
                        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self._ack_wait_s,
                                              max_deliver=max_deliver, max_ack_pending=-1))
                await self._slots.acquire()
                try:
                    msgs = await subscription.fetch(1, timeout=1.0)
                except BaseException:
                    self._slots.release()
                    raise
                task = asyncio.get_running_loop().create_task(self._run(msgs[0]))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                backoff = 0.1
            except nats.errors.TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS restarting: back off, subscribe again
                log.warning("jobs_pull_retry", error=repr(exc))
                subscription = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _run(self, msg: Msg) -> None:
        try:
            handler = self._handlers.get(msg.subject)
            if handler is None:
                log.error("jobs_unknown_work", subject=msg.subject)
                await msg.term()
                return
            attempt = msg.metadata.num_delivered
            limit = self._max_deliver
            if limit is not None and attempt > limit:
                await self._abandon(msg, f"gave up after {limit} attempts (the worker died or failed each time)")
                return
            beat = asyncio.get_running_loop().create_task(self._heartbeat(msg, self._ack_wait_s / 3))
            try:
                outcome = await handler(msg.data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("jobs_run_failed", subject=msg.subject, attempt=attempt)
                if limit is not None and attempt >= limit:
                    await self._abandon(msg, f"failed: {exc!r}")
                else:
                    await msg.nak(delay=min(1.0 * attempt, 30.0))
                return
            finally:
                beat.cancel()
            if isinstance(outcome, Later):
                await msg.nak(delay=outcome.delay_s)
            else:
                await msg.ack()
        finally:
            self._slots.release()

    async def _abandon(self, msg: Msg, why: str) -> None:
        give_up = self._give_up.get(msg.subject)
        if give_up is not None:
            await give_up(msg.data, why)
        await msg.term()

    @staticmethod
    async def _heartbeat(msg: Msg, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await msg.in_progress()
            except Exception as exc:  # the run goes on; at worst it is redelivered and runs again
                log.warning("jobs_heartbeat_failed", error=repr(exc))
