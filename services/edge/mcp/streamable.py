"""`/mcp`: MCP over streamable HTTP, the SDK's session manager bridged into aiohttp.

The manager runs stateless with JSON answers: every POST carries its own key and is
served on its own, so any edge worker or replica can answer any request (no session to
find, no sticky routing) and a curl or fetch() client reads a plain JSON-RPC answer.
The SDK's ASGI app is reached through aiohttp-asgi's request bridge from this one
route, after the edge has checked the key; no other route passes through it.
"""

import asyncio
import contextlib

from aiohttp import web
from aiohttp_asgi.resource import ASGIContext
from mcp.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from libs.contracts import errors
from services.edge.errors import GatewayError
from services.edge.mcp.access import authenticate


class StreamableHttp:
    def __init__(self, server: Server, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.manager = StreamableHTTPSessionManager(server, stateless=True, json_response=True,
                                                    max_request_body_size=max_body_bytes)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Enter the manager's run() (its task group) in a task of its own for the app's lifetime:
        anyio wants the task that enters it to be the one that leaves it."""
        started = asyncio.get_running_loop().create_future()

        async def run() -> None:
            async with self.manager.run():
                started.set_result(None)
                await self._stop.wait()

        self._task = asyncio.create_task(run(), name="mcp-streamable-http")
        await asyncio.wait({started, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():  # run() failed before it was up: raise its error now, at startup
            self._task.result()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def handle(self, request: web.Request) -> web.StreamResponse:
        authenticate(request)  # 401/403 as the HTTP API answers them, before the SDK sees anything
        if (request.content_length or 0) > self.max_body_bytes:  # the SDK's own limit (for chunked bodies) is text
            raise GatewayError(413, errors.INVALID_REQUEST,
                               f"Request body too large: the limit is {self.max_body_bytes} bytes.")
        return await ASGIContext(self.manager.handle_request, request, "").get_response()
