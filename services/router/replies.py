"""Where the dispatcher's answers go: a NATS reply subject, or, for an edge in this router's own
process (services/node/, libs/contracts/in_process.py), straight into that edge's waiting request.

The in-process path exists for speed on one machine: it skips two trips through the NATS server
per request and one per streamed chunk, which on two cores was most of what the gateway added
(issue 10). Everything else the router does (usage, cache, health, breakers) is the same.
"""

from typing import NamedTuple

from nats.aio.client import Client

from libs.contracts.in_process import Deliver


class LocalMessage(NamedTuple):
    """An edge's request handed over in process: what the dispatcher reads of a NATS message."""

    subject: str
    data: bytes
    reply: str
    headers: dict[str, str] | None


class Replies:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._local: dict[str, Deliver] = {}  # reply subject -> the in-process edge waiting on it

    @property
    def max_payload(self) -> int:
        return self._nc.max_payload

    def attach(self, reply_to: str, deliver: Deliver) -> None:
        self._local[reply_to] = deliver

    def detach(self, reply_to: str) -> None:
        self._local.pop(reply_to, None)

    async def publish(self, reply_to: str, payload: bytes) -> None:
        deliver = self._local.get(reply_to)
        if deliver is not None:
            deliver(payload)
        else:
            await self._nc.publish(reply_to, payload)
