"""`python -m services.router`: the router service."""

import asyncio

import structlog

from libs.contracts.config import load_config
from libs.runtime.env import env_int, env_str
from libs.runtime.health import start_health_server
from libs.runtime.process import run_service
from services.router.service import RouterService


async def serve(stop: asyncio.Event) -> None:
    service = RouterService(load_config())
    await service.start()
    health = await start_health_server(
        env_str("SWITCHBOARD_HEALTH_HOST", "127.0.0.1"),
        env_int("SWITCHBOARD_ROUTER_HEALTH_PORT", 8091),
        lambda: service.ready,
    )
    await stop.wait()
    structlog.get_logger().info("router_stopping")
    await service.stop()
    if health is not None:
        await health.cleanup()


def main() -> None:
    run_service("router", serve)


if __name__ == "__main__":
    main()
