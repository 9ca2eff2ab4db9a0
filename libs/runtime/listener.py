"""Serving an aiohttp app on a socket that takes in bursts of connections at once.

uvloop's own server accepts one connection per loop iteration, so with thousands of streams
keeping the loop busy a burst of new connections waited seconds just to be accepted (measured:
1,000 connections took 6.4 s under load, 0.2 s taking every pending one per readiness event).
Used by the edge and by the provider simulator.
"""

import asyncio
import socket

from aiohttp import web

ACCEPT_PAUSE_S = 0.1


def listening_socket(host: str, port: int, reuse_port: bool = False, backlog: int = 4096) -> socket.socket:
    """A bound, listening, non-blocking TCP socket; `reuse_port` lets several workers share it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


class BurstListener:
    """Feeds every pending connection of `sock` to the runner's server on each readiness event."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket) -> None:
        assert runner.server is not None, "runner.setup() first"
        self._server = runner.server
        self._sock = sock
        self._tasks: set[asyncio.Task[object]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._accept_all)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def _resume(self) -> None:
        if self._loop is not None and self._sock.fileno() >= 0:
            self._loop.add_reader(self._sock.fileno(), self._accept_all)

    def _accept_all(self) -> None:
        assert self._loop is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # Out of descriptors and the like: the rest wait in the backlog. The socket stays
                # readable, so it is left unwatched for a moment instead of spinning on it.
                self._loop.remove_reader(self._sock.fileno())
                self._loop.call_later(ACCEPT_PAUSE_S, self._resume)
                return
            conn.setblocking(False)  # Python hands accepted sockets back in blocking mode
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self._loop.create_task(self._loop.connect_accepted_socket(self._server, conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
