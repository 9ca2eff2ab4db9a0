"""`python -m services.edge`: the HTTP edge."""

import asyncio

from aiohttp import web

from libs.contracts.config import load_config
from libs.runtime.listener import BurstListener, listening_socket
from libs.runtime.process import run_service
from services.edge.app import build_app
from services.edge.settings import EdgeSettings


async def serve(stop: asyncio.Event) -> None:
    settings = EdgeSettings.load(load_config().edge)
    app = await build_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # reuse_port: several edge workers on one machine share the port and the kernel spreads
    # connections between them (SWITCHBOARD_EDGE_WORKERS, tools/cli/up.py).
    listener = BurstListener(runner, listening_socket(settings.host, settings.port, reuse_port=True))
    listener.start()
    await stop.wait()
    listener.stop()
    await runner.cleanup()


def main() -> None:
    run_service("edge", serve)


if __name__ == "__main__":
    main()
