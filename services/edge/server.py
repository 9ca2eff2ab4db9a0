"""The edge's HTTP server: its app on the shared port until told to stop."""

import asyncio

from aiohttp import web

from libs.contracts.config import SwitchboardConfig
from libs.contracts.in_process import InProcessRouter
from libs.runtime.listener import BurstListener, listening_socket
from services.edge.app import build_app
from services.edge.settings import EdgeSettings


async def serve(stop: asyncio.Event, config: SwitchboardConfig, router: InProcessRouter | None = None) -> None:
    """`router`: one in this process (services/node/) that takes the inference requests, else NATS."""
    settings = EdgeSettings.load(config.edge)
    app = await build_app(settings, router)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # reuse_port: several edge workers on one machine share the port and the kernel spreads
    # connections between them (SWITCHBOARD_EDGE_WORKERS, tools/cli/up.py).
    listener = BurstListener(runner, listening_socket(settings.host, settings.port, reuse_port=True))
    listener.start()
    await stop.wait()
    listener.stop()
    await runner.cleanup()  # waits for the requests in flight
