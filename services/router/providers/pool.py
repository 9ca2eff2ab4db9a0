"""The upstream connection pool of one provider, with its own short wait.

aiohttp's `connect` timeout covers both waiting for a free pooled connection and opening
one, so an exhausted pool used to surface, seconds later, as "provider timed out" and be
counted against the provider's health. Here opening a connection has its own timeout
(`sock_connect`), and the wait for a pool slot has another, short one, measured from
aiohttp's queue signals: when it runs out the gateway says it is saturated (a 503 with
Retry-After), and nobody blames the provider.
"""

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace

import aiohttp

from services.router.providers.base import ProviderSettings, UpstreamError

SATURATED_RETRY_AFTER_S = 1


class PoolWait:
    """One request's stay in the pool's queue; the deadline is armed only while queued."""

    __slots__ = ("expired", "scope", "timeout_s")

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.scope: asyncio.Timeout | None = None
        self.expired = False


async def _queued(_session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object) -> None:
    wait = ctx.trace_request_ctx
    if isinstance(wait, PoolWait) and wait.scope is not None:
        wait.scope.reschedule(asyncio.get_running_loop().time() + wait.timeout_s)


async def _dequeued(_session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object) -> None:
    wait = ctx.trace_request_ctx
    if isinstance(wait, PoolWait) and wait.scope is not None:
        wait.scope.reschedule(None)


def pooled_session(settings: ProviderSettings, **session_options: object) -> aiohttp.ClientSession:
    """The provider's session: `max_connections` pooled connections, each opened within
    `connect_timeout_s`, read with `read_timeout_s` between bytes."""
    tracing = aiohttp.TraceConfig()
    tracing.on_connection_queued_start.append(_queued)
    tracing.on_connection_queued_end.append(_dequeued)
    connector = aiohttp.TCPConnector(limit=settings.max_connections, limit_per_host=0, ttl_dns_cache=300,
                                     keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=settings.connect_timeout_s,
                                    sock_read=settings.read_timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=[tracing],
                                 raise_for_status=False, **session_options)  # type: ignore[arg-type]


def saturated(slug: str, max_connections: int) -> UpstreamError:
    return UpstreamError("saturated", f"the gateway has all {max_connections} of its connections to {slug} "
                         "in use; retry shortly", status=503, retry_after=SATURATED_RETRY_AFTER_S)


async def pooled_request(session: aiohttp.ClientSession, settings: ProviderSettings, method: str, url: str,
                         headers: Mapping[str, str], data: bytes | None = None) -> aiohttp.ClientResponse:
    """`method url` on the provider's pool; UpstreamError "saturated" when no slot frees up in time."""
    wait = PoolWait(settings.pool_timeout_s)
    try:
        async with asyncio.timeout(None) as scope:
            wait.scope = scope
            response = await session.request(method, url, data=data, headers=headers, trace_request_ctx=wait)
        return response
    except TimeoutError as exc:
        if wait.scope is not None and wait.scope.expired():
            raise saturated(settings.slug, settings.max_connections) from exc
        raise UpstreamError("timeout", f"no answer from {settings.slug} in time") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError("connection", f"cannot reach {settings.slug}: {exc}") from exc
