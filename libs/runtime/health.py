"""A tiny HTTP server for /healthz and /readyz, for services with no HTTP API."""

from collections.abc import Callable

from aiohttp import web


async def start_health_server(host: str, port: int, ready: Callable[[], bool]) -> web.AppRunner | None:
    """Serve liveness and readiness; port 0 disables it (e.g. several replicas on one host)."""
    if port <= 0:
        return None

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ready") if ready() else web.Response(status=503, text="not ready")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
