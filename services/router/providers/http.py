"""What every HTTP provider adapter shares: one pooled aiohttp session, transport
failures turned into UpstreamError, and reading an SSE body as complete events.

Each adapter module keeps only what is its provider's own: URLs, headers,
translation, and how its error bodies read.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp

from services.router.providers.base import ProviderAdapter, UpstreamError
from services.router.providers.pool import UpstreamPool

ErrorFactory = Callable[[int, bytes, Mapping[str, str]], UpstreamError]


class HttpAdapter(ProviderAdapter):
    _pool: UpstreamPool | None = None

    async def start(self) -> None:
        self._pool = UpstreamPool(self.settings, auto_decompress=True)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def send(self, url: str, payload: bytes, headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        assert self._pool is not None, "adapter used before start()"
        return await self._pool.request("POST", url, headers, payload)

    async def read(self, response: aiohttp.ClientResponse, error: ErrorFactory) -> bytes:
        """The whole body of a successful answer; an HTTP error status raised through `error`."""
        try:
            data = await response.read()
        except TimeoutError as exc:
            raise UpstreamError("timeout", f"no answer from {self.slug} in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("connection", f"{self.slug} broke off the response: {exc}") from exc
        finally:
            response.release()
        if response.status >= 400:
            raise error(response.status, data, response.headers)
        return data

    async def expect_events(self, response: aiohttp.ClientResponse, error: ErrorFactory) -> None:
        """Check that a streamed call really started an event stream (before any byte is relayed)."""
        if response.status >= 400:
            try:
                data = await response.read()
            except (TimeoutError, aiohttp.ClientError):
                data = b""
            finally:
                response.release()
            raise error(response.status, data, response.headers)
        if not response.content_type.startswith("text/event-stream"):
            response.release()
            raise UpstreamError("malformed", f"{self.slug} did not answer with an event stream")


async def sse_batches(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body as batches of complete SSE events (each ending in a blank line), LF-normalised."""
    buffer = b""
    try:
        async for chunk in response.content.iter_any():
            buffer += chunk
            if b"\r" in buffer:
                # Normalised on the buffer, not the chunk: a CRLF may straddle two reads.
                buffer = buffer.replace(b"\r\n", b"\n")
            cut = buffer.rfind(b"\n\n")
            if cut < 0:
                continue
            events, buffer = buffer[: cut + 2], buffer[cut + 2 :]
            yield events
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise UpstreamError("timeout" if isinstance(exc, asyncio.TimeoutError) else "connection",
                            f"upstream stream broke off: {exc!r}") from exc
    if buffer.strip():
        raise UpstreamError("connection", "upstream stream ended inside an event")
