"""CLI: ``python -m tools.upstream_sim --host 127.0.0.1 --port 9100 [--latency-ms ...]``.

Every flag has an environment fallback (SIM_HOST, SIM_PORT, SIM_LATENCY_MS, SIM_TTFT_MS,
SIM_TPS, SIM_API_KEY); flags win.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
from collections.abc import Sequence

from aiohttp import web

from tools.upstream_sim.app import create_app
from tools.upstream_sim.settings import SimSettings


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m tools.upstream_sim", description=__doc__)
    parser.add_argument("--host", default=env.get("SIM_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("SIM_PORT", "9100")))
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=float(env.get("SIM_LATENCY_MS", "0")),
        help="delay before non-streaming responses",
    )
    parser.add_argument(
        "--ttft-ms",
        type=float,
        default=float(env.get("SIM_TTFT_MS", "0")),
        help="delay before the first streamed chunk",
    )
    parser.add_argument(
        "--tps", type=float, default=float(env.get("SIM_TPS", "0")), help="streamed words per second (0 = unpaced)"
    )
    parser.add_argument(
        "--api-key", default=env.get("SIM_API_KEY") or None, help="require this bearer token (default: accept any)"
    )
    return parser.parse_args(argv)


def _bind(host: str, port: int) -> socket.socket:
    # Binding here (instead of letting run_app do it) lets --port 0 announce the real port.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


async def _serve(app: web.Application, sock: socket.socket, url: str) -> None:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[object]] = set()
    sock.listen(4096)
    sock.setblocking(False)

    def accept_all() -> None:
        # uvloop's own server (what run_app would use) accepts one connection per loop iteration,
        # so with thousands of paced streams running, a burst of new ones waited seconds just to
        # be accepted. Taking every pending connection at once keeps admission instant.
        while True:
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # out of descriptors and the like: the rest wait in the backlog
            conn.setblocking(False)  # Python hands accepted sockets back in blocking mode
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(loop.connect_accepted_socket(server, conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sock.fileno(), accept_all)
    # The single line callers wait for: printed once the socket listens, which is exactly "ready".
    print(f"upstream_sim listening on {url}", flush=True)
    await stop.wait()
    loop.remove_reader(sock.fileno())
    sock.close()
    await runner.cleanup()  # a short shutdown timeout: "hang" requests would otherwise hold it for a minute


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    settings = SimSettings(latency_ms=args.latency_ms, ttft_ms=args.ttft_ms, tps=args.tps, api_key=args.api_key)
    app = create_app(settings)
    sock = _bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{sock.getsockname()[1]}"
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(app, sock, url))


if __name__ == "__main__":
    main()
