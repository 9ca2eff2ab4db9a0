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
        """The request answering on `reply_to` lost its client, or the edge gave up on it: stop it."""

    def query(self, subject: str, payload: bytes) -> bytes | None:
        """The encoded reply to a catalog or health query, answered from what the router holds
        (no NATS needed); None for a subject it does not answer that way."""
