"""Where an edge's streamed replies arrive: one wildcard subscription for all of them.

A subscription per stream cost a SUB and an UNSUB on the server and, per chunk, nats-py's
`next_msg` (an `asyncio.wait_for`, so a task and a timer for every chunk). Here every stream's
chunks land through one subscription into the stream's own buffer, and the relay takes
whatever has arrived in one go: chunks that came together are written to the client together,
and the first one is written the moment it arrives. An inbox holds the replies' encoded bytes,
so a router in the edge's own process (services/node/) can fill it directly.
"""

import asyncio
import itertools
from collections import deque

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.contracts import errors
from libs.contracts.bus.inference import Failure, encode
from libs.contracts.errors import ErrorBody

_NO_RESPONDERS = "503"
NO_ROUTER_TEXT = "No router is serving requests"
# What the server's "no responders" status for a stream's request becomes in the inbox: the 503
# that relay.request_reply answers for a whole one.
NO_ROUTER = encode(Failure(ErrorBody(f"{NO_ROUTER_TEXT}; retry shortly.", errors.UNAVAILABLE, 503)))


def no_responders(msg: Msg) -> bool:
    """The server's answer to a request nobody subscribes to (its Status header)."""
    return bool(msg.headers) and msg.headers.get("Status") == _NO_RESPONDERS


class StreamInbox:
    """One stream's replies, in arrival order."""

    __slots__ = ("_arrived", "_messages", "subject")

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self._messages: deque[bytes] = deque()
        self._arrived = asyncio.Event()

    def put(self, data: bytes) -> None:
        self._messages.append(data)
        self._arrived.set()

    async def take(self, timeout_s: float) -> list[bytes]:
        """Everything that has arrived, waiting up to `timeout_s` for the first; [] on timeout."""
        if not self._messages:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._arrived.wait()
            except TimeoutError:
                return []
        self._arrived.clear()
        taken = list(self._messages)
        self._messages.clear()
        return taken


class StreamInboxes:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._prefix = nc.new_inbox()  # unique to this connection: `_INBOX.<nuid>`
        self._ids = itertools.count()
        self._open: dict[str, StreamInbox] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        # Re-subscribed by nats-py after a reconnect, like every subscription.
        self._sub = await self.nc.subscribe(f"{self._prefix}.*", cb=self._deliver)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    def open(self) -> StreamInbox:
        inbox = StreamInbox(f"{self._prefix}.{next(self._ids)}")
        self._open[inbox.subject] = inbox
        return inbox

    def close(self, inbox: StreamInbox) -> None:
        self._open.pop(inbox.subject, None)

    async def _deliver(self, msg: Msg) -> None:
        inbox = self._open.get(msg.subject)
        if inbox is not None:  # else: a late chunk of a stream already given up on
            inbox.put(NO_ROUTER if no_responders(msg) else msg.data)
