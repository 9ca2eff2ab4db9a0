"""The upstream connection pool of one provider, with its own short wait.

aiohttp's `connect` timeout covers both waiting for a free pooled connection and opening
one, so an exhausted pool used to surface, seconds later, as "provider timed out" and be
counted against the provider's health. Here the pool's slots are a semaphore with its own
short wait, and opening a connection has its own timeout (`sock_connect`): when no slot
frees up in time the gateway says it is saturated (a 503 with Retry-After), and nobody
blames the provider.

A slot is held from the request until aiohttp lets go of the connection (the body read to
its end, or the response released or closed), which is what a pooled connection's life is.
The semaphore costs a counter on the fast path; aiohttp's tracing signals, the other way
to see a queued request, cost about 20 µs per request in profiles.
"""

import asyncio
from collections.abc import Mapping

import aiohttp

from services.router.providers.base import ProviderSettings, UpstreamError

SATURATED_RETRY_AFTER_S = 1


def saturated(slug: str, max_connections: int) -> UpstreamError:
    return UpstreamError("saturated", f"the gateway has all {max_connections} of its connections to {slug} "
                         "in use; retry shortly", status=503, retry_after=SATURATED_RETRY_AFTER_S)


class UpstreamPool:
    """`max_connections` connections to one provider, each opened within `connect_timeout_s`
    and read with `read_timeout_s` between bytes; a request waits at most `pool_timeout_s`."""

    def __init__(self, settings: ProviderSettings, **session_options: object) -> None:
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.max_connections)
        # The semaphore is the limit; the connector's own would queue without a deadline.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30)
        timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=settings.connect_timeout_s,
                                        sock_read=settings.read_timeout_s)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False,
                                             **session_options)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self.session.close()

    async def request(self, method: str, url: str, headers: Mapping[str, str],
                      data: bytes | None = None) -> aiohttp.ClientResponse:
        """`method url`; UpstreamError "saturated" when no slot frees up in time."""
        settings = self._settings
        if self._slots.locked():
            try:
                async with asyncio.timeout(settings.pool_timeout_s):
                    await self._slots.acquire()
            except TimeoutError as exc:
                raise saturated(settings.slug, settings.max_connections) from exc
        else:
            await self._slots.acquire()  # free: returns without yielding
        try:
            response = await self.session.request(method, url, data=data, headers=headers)
        except BaseException as exc:
            self._slots.release()
            if isinstance(exc, TimeoutError):
                raise UpstreamError("timeout", f"no answer from {settings.slug} in time") from exc
            if isinstance(exc, aiohttp.ClientError):
                raise UpstreamError("connection", f"cannot reach {settings.slug}: {exc}") from exc
            raise
        connection = response.connection
        if connection is None:  # already let go of (the whole body came with the headers)
            self._slots.release()
        else:
            connection.add_callback(self._slots.release)
        return response
