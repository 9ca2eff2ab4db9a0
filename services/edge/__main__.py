"""`python -m services.edge`: the HTTP edge."""

import asyncio

from aiohttp import web

from libs.contracts.config import load_config
from libs.runtime.process import run_service
from services.edge.app import build_app
from services.edge.settings import EdgeSettings


async def serve(stop: asyncio.Event) -> None:
    settings = EdgeSettings.load(load_config().edge)
    app = await build_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port, backlog=1024, reuse_address=True).start()
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    run_service("edge", serve)


if __name__ == "__main__":
    main()
