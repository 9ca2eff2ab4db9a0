"""JetStream publishes awaited for the stream's ack, for the delivery hot path.

Every delivery makes four (its pending record, its task, the attempt count before the
POST, the outcome), and nats-py's `js.publish` spent more CPU on each than the rest of the
delivery: a random inbox token, `asyncio.wait_for`, JSON then dataclass parsing of the ack.
Here one wildcard reply subscription carries all acks, a counter names them, msgspec
decodes them, and one sweeper task times out the unanswered ones (acks are awaited in
order of publication, so the oldest are the first to expire).
"""

import asyncio
import time
from typing import Final

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import APIError, KeyWrongLastSequenceError, NoStreamResponseError

EXPECTED_LAST_SUBJECT_SEQUENCE: Final = "Nats-Expected-Last-Subject-Sequence"
_WRONG_LAST_SEQUENCE: Final = (10071, 10164)  # JSStreamWrongLastSequenceErr, ...ConstantErr
_SWEEP_S = 0.5


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    error: _ApiError | None = None


_decode_ack = msgspec.json.Decoder(_PubAck).decode


class AckedPublisher:
    def __init__(self, nc: Client, timeout_s: float = 5.0) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self._prefix = ""
        self._count = 0
        self._waiting: dict[str, tuple[asyncio.Future[Msg], float]] = {}
        self._subscription: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._prefix = f"{self._nc.new_inbox()}."
        self._subscription = await self._nc.subscribe(f"{self._prefix}*", cb=self._on_ack)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception:  # the connection may already be gone
                pass

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> int:
        """The stream sequence the message was stored at; raises like nats-py's js.publish."""
        self._count += 1
        token = str(self._count)
        answered: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._waiting[token] = (answered, time.monotonic() + self._timeout_s)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
            msg = await answered
        finally:
            self._waiting.pop(token, None)
        if not msg.data:  # a status reply: no stream listens on the subject
            raise NoStreamResponseError
        ack = _decode_ack(msg.data)
        if ack.error is not None:
            if ack.error.err_code in _WRONG_LAST_SEQUENCE:
                raise KeyWrongLastSequenceError(description=ack.error.description)
            raise APIError(code=ack.error.code, err_code=ack.error.err_code, description=ack.error.description)
        return ack.seq

    async def _on_ack(self, msg: Msg) -> None:
        waiting = self._waiting.get(msg.subject[len(self._prefix):])
        if waiting is not None and not waiting[0].done():
            waiting[0].set_result(msg)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_S)
            now = time.monotonic()
            expired = []
            for answered, deadline in self._waiting.values():
                if deadline > now:
                    break  # tokens were added in deadline order
                expired.append(answered)
            for answered in expired:
                if not answered.done():
                    answered.set_exception(nats.errors.TimeoutError())
