"""Request snapshots: what a request asked and what it was answered, kept by the
ledger so the request can be replayed on another model (POST /v1/replays).

The router captures a snapshot of each chat-shaped request (chat, and the
/v1/messages, /v1/responses and utility surfaces, all as the OpenAI chat body
the router sent) unless the edge said not to (sub-account opt-out, the
`x-aig-snapshot: off` header, or the gateway's setting). Snapshots ride in the
same USAGE batch as the usage events, so they are stored exactly once in effect
by the same consumer.
"""

from typing import Final

import msgspec

# A snapshot whose bodies together exceed this is stored without them (truncated=True):
# a usage batch, snapshots included, must stay inside one NATS message.
MAX_SNAPSHOT_BYTES: Final = 384 * 1024
SNAPSHOT_HEADER: Final = "x-aig-snapshot"  # "off" keeps this one request out of the snapshot store


class Snapshot(msgspec.Struct, kw_only=True):
    request_id: str
    ts_ms: int
    account_id: str
    subaccount_id: str | None = None
    operation: str  # the client's operation (chat, messages, responses, translations, ...)
    model: str  # the slug that served
    request_body: bytes = b""  # the OpenAI chat request the router dispatched
    # The answer as the router received it in OpenAI shape: a chat.completion JSON
    # body, or, when `streamed`, the raw SSE bytes of chat.completion.chunk events.
    response_body: bytes = b""
    streamed: bool = False
    truncated: bool = False  # the bodies were too large to keep: not replayable
