"""The router as an edge in the same process sees it (libs/contracts/in_process.py): the whole
router service, with its own NATS connection and its health and /metrics on the router's
health port, plus the in-process calls the edge makes instead of publishing on the bus."""

from aiohttp import web

from libs.contracts.config import SwitchboardConfig
from libs.contracts.in_process import Deliver
from libs.runtime.env import env_int, env_str
from libs.runtime.health import start_health_server
from services.router.service import RouterService


class HostedRouter:
    def __init__(self, config: SwitchboardConfig) -> None:
        self.service = RouterService(config)
        self._health: web.AppRunner | None = None

    @property
    def ready(self) -> bool:
        return self.service.ready

    async def start(self) -> None:
        await self.service.start()
        self._health = await start_health_server(env_str("SWITCHBOARD_HEALTH_HOST", "127.0.0.1"),
                                                 env_int("SWITCHBOARD_ROUTER_HEALTH_PORT", 8091),
                                                 lambda: self.service.ready, self.service.metrics)
        self.service.metrics.start_export()

    async def stop(self) -> None:
        await self.service.stop()  # finishes the requests in flight and flushes their usage
        if self._health is not None:
            await self._health.cleanup()

    def send(self, subject: str, payload: bytes, reply_to: str, deliver: Deliver,
             headers: dict[str, str] | None = None) -> None:
        self.service.dispatch_local(subject, payload, reply_to, deliver, headers)

    def cancel(self, reply_to: str) -> None:
        self.service.cancel_local(reply_to)

    def query(self, subject: str, payload: bytes) -> bytes | None:
        return self.service.answer_query(subject, payload)
