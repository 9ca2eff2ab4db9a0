"""The burst listener takes every pending connection at once, and backs off (instead of
spinning) when accepting fails, e.g. out of file descriptors."""

import asyncio
import socket

from aiohttp import web

from libs.runtime import listener
from libs.runtime.listener import BurstListener, listening_socket


async def _hi(_: web.Request) -> web.Response:
    return web.Response(text="hi")


async def _runner() -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/", _hi)
    runner = web.AppRunner(app)
    await runner.setup()
    return runner


async def test_serves_a_burst_of_connections() -> None:
    runner = await _runner()
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    burst = BurstListener(runner, sock)
    burst.start()
    try:
        async def get() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await reader.read()
            writer.close()
            return data

        answers = await asyncio.gather(*(get() for _ in range(200)))
        assert all(a.startswith(b"HTTP/1.1 200") and a.endswith(b"hi") for a in answers)
    finally:
        burst.stop()
        await runner.cleanup()


class _FailingSocket:
    """Below the unit: a listening socket whose accept fails as when out of descriptors."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.accepts = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> tuple[socket.socket, object]:
        self.accepts += 1
        raise OSError(24, "Too many open files")

    def close(self) -> None:
        self.real.close()


async def test_a_failing_accept_pauses_instead_of_spinning(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(listener, "ACCEPT_PAUSE_S", 0.2)
    runner = await _runner()
    real = listening_socket("127.0.0.1", 0)
    fake = _FailingSocket(real)
    burst = BurstListener(runner, fake)  # type: ignore[arg-type]
    burst.start()
    client = socket.create_connection(real.getsockname())  # makes the socket readable, and keeps it so
    try:
        await asyncio.sleep(0.5)
        # A spinning reader would have tried thousands of times in half a second.
        assert 2 <= fake.accepts <= 5
    finally:
        client.close()
        burst.stop()
        await runner.cleanup()
