"""What an edge and a router in one process (services/node/) agree on in place of the bus.

The edge hands the router the same encoded InferenceRequest it would publish on NATS, and the
router hands back the same encoded replies (bus/inference.py), in order, through `Deliver`;
only the transport is skipped. The edge knows this shape, not the router behind it.
"""

from collections.abc import Callable
from typing import Protocol

Deliver = Callable[[bytes], None]  # called with each encoded reply, in order


class InProcessRouter(Protocol):
    @property
    def ready(self) -> bool: ...

    def send(self, subject: str, payload: bytes, reply_to: str, deliver: Deliver,
             headers: dict[str, str] | None = None) -> None:
        """Dispatch one request; its replies are passed to `deliver` as the router makes them."""

    def cancel(self, reply_to: str) -> None:
        """The stream answering on `reply_to` lost its client: stop it."""

    async def request(self, subject: str, payload: bytes, timeout_s: float,
                      headers: dict[str, str] | None = None) -> bytes:
        """The one encoded reply to a whole-answer request, or to a catalog or health query
        (answered without NATS); TimeoutError after `timeout_s`, the request then cancelled."""
