"""Request snapshots for replays: what the router sent and what it got back.

Taken only for chat-shaped requests the edge marked (`InferenceRequest.snapshot`)
that succeeded. A stream is kept as its raw OpenAI SSE bytes, not reassembled:
appending bytes costs nothing on the hot path, and only a replay ever reads it.
"""

import time

from libs.contracts.bus.inference import OP_CHAT, InferenceRequest
from libs.contracts.bus.snapshots import MAX_SNAPSHOT_BYTES, Snapshot


def wanted(request: InferenceRequest) -> bool:
    return request.snapshot and request.operation == OP_CHAT


def snapshot_of(request: InferenceRequest, model: str, response_body: bytes, streamed: bool = False,
                truncated: bool = False) -> Snapshot:
    truncated = truncated or len(request.body) + len(response_body) > MAX_SNAPSHOT_BYTES
    principal = request.principal
    return Snapshot(
        request_id=request.request_id, ts_ms=time.time_ns() // 1_000_000, account_id=principal.account_id,
        subaccount_id=principal.subaccount_id, operation=request.operation, model=model,
        request_body=b"" if truncated else request.body, response_body=b"" if truncated else response_body,
        streamed=streamed, truncated=truncated)


class StreamCapture:
    """The SSE events of one stream, up to what a snapshot can hold."""

    def __init__(self, request_bytes: int) -> None:
        self._parts: list[bytes] = []
        self._room = MAX_SNAPSHOT_BYTES - request_bytes
        self.truncated = self._room < 0

    def feed(self, events: bytes) -> None:
        if self.truncated:
            return
        self._room -= len(events)
        if self._room < 0:
            self.truncated, self._parts = True, []
        else:
            self._parts.append(events)

    def body(self) -> bytes:
        return b"".join(self._parts)
