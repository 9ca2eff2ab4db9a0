"""`python -m services.ledger`: the ledger service."""

import asyncio

import structlog

from libs.runtime.env import env_int, env_str
from libs.runtime.health import start_health_server
from libs.runtime.process import run_service
from services.ledger.service import LedgerService


async def serve(stop: asyncio.Event) -> None:
    service = LedgerService()
    await service.start()
    health = await start_health_server(env_str("SWITCHBOARD_HEALTH_HOST", "127.0.0.1"),
                                       env_int("SWITCHBOARD_LEDGER_HEALTH_PORT", 8093), lambda: service.ready)
    await stop.wait()
    structlog.get_logger().info("ledger_stopping")
    await service.stop()
    if health is not None:
        await health.cleanup()


def main() -> None:
    run_service("ledger", serve)


if __name__ == "__main__":
    main()
