"""A tiny HTTP server for /healthz and /readyz, for services with no HTTP API."""

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from libs.contracts.supervision import SUPERVISOR_STATUS_ENV, Readiness, SupervisorStatus

if TYPE_CHECKING:  # libs/runtime/metrics.py reads the supervisor status from here
    from libs.runtime.metrics import Metrics


def supervisor_status() -> SupervisorStatus | None:
    """The supervisor's status file, when this process runs under one (None if unset or unreadable)."""
    path = os.environ.get(SUPERVISOR_STATUS_ENV)
    if not path:
        return None
    try:
        # A few hundred bytes on local disk, replaced atomically by the supervisor: cheap to read per probe.
        with open(path, "rb") as f:
            return msgspec.json.decode(f.read(), type=SupervisorStatus)
    except (OSError, msgspec.DecodeError):
        return None


def readiness_response(ready: bool) -> web.Response:
    """200 "ready" or 503 "not ready"; as JSON with the supervisor's restarts when it runs us."""
    status, text = (200, "ready") if ready else (503, "not ready")
    if not os.environ.get(SUPERVISOR_STATUS_ENV):
        return web.Response(status=status, text=text)
    body = msgspec.json.encode(Readiness(status=text, supervisor=supervisor_status(), pid=os.getpid()))
    return web.Response(status=status, body=body, content_type="application/json")


async def start_health_server(host: str, port: int, ready: Callable[[], bool],
                              metrics: "Metrics | None" = None) -> web.AppRunner | None:
    """Serve liveness, readiness and /metrics; port 0 disables it (e.g. several replicas on one host)."""
    if port <= 0:
        return None

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        return readiness_response(ready())

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if metrics is not None:
        app.router.add_get("/metrics", metrics.handler)  # internal port: no key
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # reuse_port: a service's workers on one machine share its health port (see tools/cli/up.py).
    await web.TCPSite(runner, host, port, reuse_port=True).start()
    return runner
