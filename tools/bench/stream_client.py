"""`python -m tools.bench.stream_client URL AUTH N BODYFILE [TIMEOUT_S]`: open N SSE streams at once.

The load client of the streaming-at-scale scenario (tools/bench/streams.py). It shares two cores
with the gateway, NATS and the simulator, so it is as cheap as Python gets: raw asyncio Protocols on
uvloop and HTTP/1.1 by hand (one POST with Content-Length and `Connection: close`; the body is only
scanned for `data:` and `data: [DONE]`, never parsed). All N connections are started in the same
loop iteration, a burst, so the figures include burst admission. It prints one JSON `ClientResult`
(msgspec) on stdout: one `StreamRecord` per stream, plus its own CPU time so a report can tell
when the client itself was the bottleneck.

Times are from the moment the stream's connection attempt starts (what a caller waits for,
including the TCP accept); `connect_ms` says how much of it was the connect.
"""

import asyncio
import sys
import time
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import msgspec

_DATA = b"data:"
_DONE = b"data: [DONE]"
_LAST_CHUNK = b"\r\n0\r\n\r\n"  # chunked encoding's terminal chunk (no trailers)
_TAIL = 16  # bytes kept from the previous read, so a marker split across reads is still seen
_MAX_HEAD = 64 * 1024

OK = "ok"
REASONS = ("status", "broken", "no_done", "timeout", "connect")


class StreamRecord(msgspec.Struct, array_like=True):
    """One stream, as the client saw it. Times in ms; None where the moment never came."""

    outcome: str  # OK or one of REASONS
    status: int  # HTTP status, 0 if no status line arrived
    connect_ms: float | None
    ttfc_ms: float | None  # first body read holding a `data:` event
    worst_gap_ms: float  # longest wait between successive body reads after the first event
    duration_ms: float  # until `data: [DONE]` (or the last read / the give-up)


class ClientResult(msgspec.Struct):
    records: list[StreamRecord]
    cpu_s: float  # this client's own CPU time (user + system)
    wall_s: float


class BodyScanner:
    """Follows one HTTP/1.1 response through its reads, without parsing the events.

    Chunk-size lines of chunked encoding are never mistaken for events: only `data:` counts, and
    the end of the body is the terminal chunk (or Content-Length). A marker cut in two by a chunk
    boundary would be missed; servers here write whole events per chunk, so it does not happen.
    """

    __slots__ = ("_head", "_tail", "chunked", "done_at", "ended", "first_data", "in_body", "last_read", "length",
                 "received", "status", "worst_gap")

    def __init__(self) -> None:
        self._head = bytearray()
        self.status = 0
        self.in_body = False
        self.chunked = False
        self.length: int | None = None
        self.received = 0
        self._tail = b"\r\n"  # lets an empty chunked body ("0\r\n\r\n" right after the head) end it
        self.first_data: float | None = None
        self.last_read: float | None = None
        self.worst_gap = 0.0
        self.done_at: float | None = None
        self.ended = False

    def feed(self, now: float, data: bytes) -> None:
        if not self.in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > _MAX_HEAD:
                    self.ended = True  # not HTTP as we know it; the stream counts as broken
                return
            self._parse_head(bytes(self._head[:end]))
            data = bytes(self._head[end + 4:])
            self._head.clear()
            self.in_body = True
            if self.length == 0:
                self.ended = True
            if not data:
                return
        self._body(now, data)

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
            self.status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunked = True
            elif name == b"content-length" and value.strip().isdigit():
                self.length = int(value.strip())

    def _body(self, now: float, data: bytes) -> None:
        if self.first_data is not None and self.last_read is not None:
            self.worst_gap = max(self.worst_gap, now - self.last_read)
        window = self._tail + data
        if self.first_data is None and _DATA in window:
            self.first_data = now
        if self.first_data is not None:
            self.last_read = now
        if self.done_at is None and _DONE in window:
            self.done_at = now
        if self.chunked:
            if _LAST_CHUNK in window:
                self.ended = True
        elif self.length is not None:
            self.received += len(data)
            if self.received >= self.length:
                self.ended = True
        self._tail = window[-_TAIL:]


def classify(connected: bool, timed_out: bool, status: int, done: bool, ended: bool) -> str:
    """Why a stream failed (or OK): the first thing that went wrong, in the order a caller meets it."""
    if not connected:
        return "timeout" if timed_out else "connect"
    if status and status != 200:
        return "status"
    if done:
        return OK
    if timed_out:
        return "timeout"
    if status and ended:
        return "no_done"  # a clean end of the body without the end marker
    return "broken"


class _StreamProtocol(asyncio.Protocol):
    def __init__(self, request: bytes, finished: asyncio.Future[None]) -> None:
        self.request = request
        self.finished = finished
        self.scanner = BodyScanner()
        self.transport: asyncio.Transport | None = None
        self.connected_at: float | None = None
        self.last_at: float | None = None
        self._clock = time.monotonic

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.connected_at = self._clock()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = self._clock()
        self.last_at = now
        self.scanner.feed(now, data)
        if self.scanner.ended and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


def _request(url: str, auth: str, body: bytes) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {auth}\r\n"
            f"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return host, port, head.encode() + body


async def _one(host: str, port: int, request: bytes, timeout_s: float) -> StreamRecord:
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    finished: asyncio.Future[None] = loop.create_future()
    proto = _StreamProtocol(request, finished)
    connected = timed_out = False
    try:
        await asyncio.wait_for(loop.create_connection(lambda: proto, host, port), timeout_s)
        connected = True
        await asyncio.wait_for(finished, max(0.0, start + timeout_s - time.monotonic()))
    except TimeoutError:
        timed_out = True
    except OSError:
        pass
    if proto.transport is not None and not proto.transport.is_closing():
        proto.transport.abort()
    scan = proto.scanner

    def ms(at: float | None) -> float | None:
        return None if at is None else round((at - start) * 1000, 2)

    end = scan.done_at or proto.last_at or time.monotonic()
    return StreamRecord(outcome=classify(connected, timed_out, scan.status, scan.done_at is not None, scan.ended),
                        status=scan.status, connect_ms=ms(proto.connected_at), ttfc_ms=ms(scan.first_data),
                        worst_gap_ms=round(scan.worst_gap * 1000, 2), duration_ms=round((end - start) * 1000, 2))


async def run(url: str, auth: str, count: int, body: bytes, timeout_s: float) -> ClientResult:
    host, port, request = _request(url, auth, body)
    wall, cpu = time.monotonic(), time.process_time()
    records = await asyncio.gather(*(_one(host, port, request, timeout_s) for _ in range(count)))
    return ClientResult(list(records), round(time.process_time() - cpu, 3), round(time.monotonic() - wall, 3))


def main() -> None:
    if len(sys.argv) not in (5, 6):
        raise SystemExit(__doc__)
    url, auth, count, body_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    timeout_s = float(sys.argv[5]) if len(sys.argv) == 6 else 30.0
    import uvloop

    result = uvloop.run(run(url, auth, count, body_file.read_bytes(), timeout_s))
    sys.stdout.buffer.write(msgspec.json.encode(result))


if __name__ == "__main__":
    main()
