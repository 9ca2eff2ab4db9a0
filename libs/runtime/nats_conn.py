"""One way to connect to NATS: reconnect forever, log transitions.

`url` may list a cluster's servers separated by commas: the client connects to any of
them and, when that one dies, reconnects to another (and to the ones the cluster
advertises), so losing a node costs a reconnect, not the service.

Services are stateless and NATS is their only peer, so the right behaviour
during a NATS outage is to keep retrying and resume (subscriptions are
re-established by nats-py on reconnect); callers add their own
`on_reconnect` hooks for state that must be rebuilt (KV watches).
"""

from collections.abc import Awaitable, Callable

import nats
import structlog
from nats.aio.client import Client

log = structlog.get_logger()


def server_list(url: str) -> list[str]:
    """`nats://a:4222,nats://b:4222` -> both; a single URL -> itself."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError(f"no NATS server in {url!r}")
    return servers


async def connect_nats(
    url: str,
    name: str,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    servers = server_list(url)
    client: Client | None = None

    def current() -> str:
        return str(client.connected_url.netloc) if client is not None and client.connected_url else url

    async def disconnected() -> None:
        log.warning("nats_disconnected", url=current())

    async def reconnected() -> None:
        log.info("nats_reconnected", url=current())
        if on_reconnect is not None:
            await on_reconnect()

    async def error(exc: Exception) -> None:
        log.warning("nats_error", error=repr(exc))

    client = await nats.connect(
        servers=servers,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.25,
        connect_timeout=2,
        allow_reconnect=True,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
        # Buffer publishes during a short outage instead of failing them at once.
        pending_size=8 * 1024 * 1024,
    )
    return client


async def shutdown_nats(nc: Client, timeout_s: float = 2.0) -> None:
    """Push out what is still buffered, then close.

    Callers stop their own work first (unsubscribe, finish in-flight requests, flush
    outboxes). nats-py's drain is not used: a pull consumer or KV watch whose queue
    nobody reads any more holds it for its full 30 s timeout.
    """
    if nc.is_closed:
        return
    if nc.is_connected:
        try:
            await nc.flush(timeout=timeout_s)
        except Exception as exc:  # the server may be gone already
            log.warning("nats_flush_at_close_failed", error=repr(exc))
    await nc.close()
