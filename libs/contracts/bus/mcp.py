"""Edge -> edge: a message POSTed to /mcp/message, relayed to the edge worker holding the
session's SSE stream (`subjects.MCP_SSE_PREFIX.<session id>`, request/reply, msgpack).

A legacy SSE session lives in the process that answered its `GET /mcp/sse`; the client's
POSTs may reach any worker or replica (SO_REUSEPORT, a load balancer), so every POST goes
over the bus to that one subscriber. No subscriber means no such session (404).
"""

import re
from typing import Final, Literal

import msgspec

SESSION_ID: Final = re.compile(r"[0-9a-f]{32}")  # what a session id may be before it joins a subject
Delivery = Literal["accepted", "not_found"]


class RelayedMessage(msgspec.Struct, array_like=True):
    account_id: str  # who POSTed: must be the key that opened the session, or it is "not_found"
    key_id: str
    body: bytes  # one JSON-RPC message, as the client sent it (already parsed once by the sender)


class RelayAnswer(msgspec.Struct, array_like=True):
    delivery: Delivery


encode = msgspec.msgpack.Encoder().encode
decode_message = msgspec.msgpack.Decoder(RelayedMessage).decode
decode_answer = msgspec.msgpack.Decoder(RelayAnswer).decode
