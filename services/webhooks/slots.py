"""Per-receiver concurrency: at most `bound` attempts in flight to one receiver
(scheme://host:port) per replica, so a slow receiver cannot take every slot.

A delivery that finds its receiver at the bound waits here for a slot when the receiver's
recent pace says one frees up soon (within `max_wait_s`); otherwise it is refused and the
caller puts it back on the queue. Waiting keeps a fast receiver's backlog flowing without
NAKing and re-fetching each message over and over (which cost more than the deliveries);
refusing a slow receiver's backlog keeps it from filling the replica's in-flight budget,
which would hold up every other receiver (head-of-line blocking).
"""

import asyncio
import time
from collections import deque
from urllib.parse import urlsplit

_PACE_WEIGHT = 0.2  # how much one release moves a receiver's average time between releases


def target_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


class _Receiver:
    __slots__ = ("busy", "every_s", "last_s", "waiters")

    def __init__(self, now: float) -> None:
        self.busy = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.every_s = 0.0  # average time between slot releases
        self.last_s = now  # the last release (or the first attempt)

    def turn_in_s(self, position: int, now: float) -> float:
        """About when the `position`-th in line gets a slot. No release for a while counts as
        a slower pace: a receiver that stops answering is soon no longer waited for."""
        return position * max(self.every_s, now - self.last_s)


class TargetSlots:
    def __init__(self, bound: int, max_wait_s: float = 1.0) -> None:
        self._bound = bound
        self._max_wait_s = max_wait_s
        # Only receivers with attempts in flight are kept: job callback URLs are unbounded in number.
        self._receivers: dict[str, _Receiver] = {}

    def _receiver(self, target: str) -> _Receiver:
        receiver = self._receivers.get(target)
        if receiver is None:
            receiver = self._receivers[target] = _Receiver(time.monotonic())
        return receiver

    def enter(self, target: str) -> bool:
        """Take a slot if one is free now."""
        receiver = self._receiver(target)
        if receiver.busy >= self._bound:
            return False
        receiver.busy += 1
        return True

    async def wait(self, target: str) -> bool:
        """After a refused `enter`: wait for a slot if one should free up soon. False = not soon
        (or not within max_wait_s after all): the caller gives the message back."""
        receiver = self._receiver(target)
        if receiver.busy < self._bound:
            receiver.busy += 1
            return True
        if receiver.turn_in_s(len(receiver.waiters) + 1, time.monotonic()) > self._max_wait_s:
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        receiver.waiters.append(turn)
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation (a stopping replica).
        try:
            async with asyncio.timeout(self._max_wait_s):
                await turn
        except (TimeoutError, asyncio.CancelledError) as exc:
            if turn.done() and not turn.cancelled():  # handed a slot as the wait ended
                if isinstance(exc, TimeoutError):
                    return True  # it is ours
                self.leave(target)  # stopping: it goes to the next in line
            elif turn in receiver.waiters:
                receiver.waiters.remove(turn)
            if isinstance(exc, TimeoutError):
                return False
            raise
        return True

    def leave(self, target: str) -> None:
        """Give a slot back: to the next in line, if any."""
        receiver = self._receivers.get(target)
        if receiver is None:
            return
        now = time.monotonic()
        receiver.every_s += _PACE_WEIGHT * (now - receiver.last_s - receiver.every_s)
        receiver.last_s = now
        while receiver.waiters:
            turn = receiver.waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes straight on: busy stays as it is
                return
        receiver.busy -= 1
        if receiver.busy <= 0:
            del self._receivers[target]
