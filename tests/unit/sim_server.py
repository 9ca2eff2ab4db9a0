"""The provider simulator served in-process on a free port, for adapter tests."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from tools.upstream_sim import SimSettings, create_app


class Sim:
    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"

    async def journal(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(self.base_url + "/_sim/requests") as resp:
            return await resp.json()


@asynccontextmanager
async def running_sim(api_key: str) -> AsyncIterator[Sim]:
    runner = web.AppRunner(create_app(SimSettings(api_key=api_key)), access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Sim(runner.addresses[0][1])
    finally:
        await runner.cleanup()
