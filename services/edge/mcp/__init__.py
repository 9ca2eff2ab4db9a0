"""The edge's MCP server: every gateway capability as a Model Context Protocol tool.

Routes (all but the inspector take the HTTP API's bearer key):
  POST /mcp                 streamable HTTP (streamable.py)
  GET /mcp/sse              legacy SSE transport: the session's event stream (sse.py)
  POST /mcp/message         legacy SSE transport: the client's messages, ?sessionId=<id>
  GET /mcp/inspect          a page to list and try the tools in a browser (inspector.py)
Each tool calls the edge's own HTTP API on loopback with the caller's key (loopback.py),
so what an MCP client may do, and what it costs, is exactly what that key may do over HTTP.
"""

from collections.abc import AsyncIterator

from aiohttp import web

from services.edge.errors import MAX_BODY
from services.edge.mcp import inspector
from services.edge.mcp.loopback import Loopback
from services.edge.mcp.server import build_server
from services.edge.mcp.sse import MESSAGE_PATH, SSE_SESSIONS, SseSessions, open_stream, post_message
from services.edge.mcp.streamable import StreamableHttp
from services.edge.state import EDGE


def add_routes(app: web.Application) -> None:
    loopback = Loopback(app[EDGE].settings)
    server = build_server(loopback)
    streamable = StreamableHttp(server, app[MAX_BODY])
    sessions = SseSessions(server)
    app[SSE_SESSIONS] = sessions

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await loopback.start()
        await streamable.start()
        yield
        await streamable.stop()
        await loopback.stop()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(sessions.close)  # open SSE streams end instead of holding the shutdown up
    # POST only: stateless, the server never speaks first, so there is no GET stream to offer
    # and no session to DELETE (the spec's answer to both is this 405).
    app.router.add_post("/mcp", streamable.handle)
    app.router.add_get("/mcp/sse", open_stream)
    app.router.add_post(MESSAGE_PATH, post_message)
    app.router.add_get("/mcp/inspect", inspector.page)
