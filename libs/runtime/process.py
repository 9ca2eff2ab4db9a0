"""Running a service process: logging, uvloop, the garbage collector's settings, and
SIGINT/SIGTERM -> graceful stop."""

import asyncio
import resource
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from libs.runtime.env import env_int, env_str
from libs.runtime.gc_tuning import tune_gc
from libs.runtime.health import start_health_server
from libs.runtime.logs import configure_logging
from libs.runtime.metrics import Metrics


def run_service(name: str, serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `serve(stop)` until it returns; `stop` is set on SIGINT/SIGTERM."""
    configure_logging(name, env_str("SWITCHBOARD_LOG_LEVEL", "info"))
    _raise_open_files_limit()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tune_gc()  # the modules are imported: what the process keeps for good
        await serve(stop)

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())


def _raise_open_files_limit() -> None:
    """Soft limit up to the hard one: thousands of concurrent streams hold two sockets each in
    the edge and one in the router, past the usual soft default of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


class Service(Protocol):
    """A NATS-facing service process: the router, the ledger, later jobs and webhooks."""

    @property
    def ready(self) -> bool: ...

    @property
    def metrics(self) -> Metrics: ...  # served on the health port's /metrics

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def run_with_health(name: str, make: Callable[[], Service], health_port_env: str, default_port: int) -> None:
    """Run a service with its /healthz and /readyz on `health_port_env` (0 = off) until SIGTERM."""

    async def serve(stop: asyncio.Event) -> None:
        service = make()
        await service.start()
        health = await start_health_server(env_str("SWITCHBOARD_HEALTH_HOST", "127.0.0.1"),
                                           env_int(health_port_env, default_port), lambda: service.ready,
                                           service.metrics)
        service.metrics.start_export()  # over OTLP when configured; the service's stop() ends it
        await stop.wait()
        structlog.get_logger().info(f"{name}_stopping")
        await service.stop()
        if health is not None:
            await health.cleanup()

    run_service(name, serve)
