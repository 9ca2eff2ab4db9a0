"""Running a service process: logging, uvloop, and SIGINT/SIGTERM -> graceful stop."""

import asyncio
import signal
from collections.abc import Awaitable, Callable

from libs.runtime.env import env_str
from libs.runtime.logs import configure_logging


def run_service(name: str, serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `serve(stop)` until it returns; `stop` is set on SIGINT/SIGTERM."""
    configure_logging(name, env_str("SWITCHBOARD_LOG_LEVEL", "info"))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
