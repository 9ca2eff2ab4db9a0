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

from libs.runtime.listener import BurstListener, listening_socket
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


async def _serve(app: web.Application, sock: socket.socket, url: str) -> None:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    loop = asyncio.get_running_loop()
    listener = BurstListener(runner, sock)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    listener.start()
    # The single line callers wait for: printed once the socket listens, which is exactly "ready".
    print(f"upstream_sim listening on {url}", flush=True)
    await stop.wait()
    listener.stop()
    await runner.cleanup()  # a short shutdown timeout: "hang" requests would otherwise hold it for a minute


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    settings = SimSettings(latency_ms=args.latency_ms, ttft_ms=args.ttft_ms, tps=args.tps, api_key=args.api_key)
    app = create_app(settings)
    # Bound here so that --port 0 can announce the real port.
    sock = listening_socket(args.host, args.port)
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
