"""Anthropic: the native Messages API (`POST {base}/v1/messages`) behind the OpenAI wire format.

The client's OpenAI chat-completions body is translated to a Messages request,
and the answer (a message, or its SSE events) back into a `chat.completion` or
`chat.completion.chunk` events; the mapping, and what cannot be mapped, is
documented in anthropic_translate.py. Errors follow the OpenAI adapter: an
HTTP error becomes `status_error(...)` (Anthropic's envelope
`{"type":"error","error":{"type","message"}}` yields its message; 529
"overloaded" stays a 5xx), an `error` event mid-stream an UpstreamError.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
import msgspec

from libs.contracts.bus.inference import OP_CHAT
from services.router.providers.anthropic_translate import StreamTranslator, to_anthropic_request, to_openai_completion
from services.router.providers.base import (
    ProviderAdapter,
    ProviderSettings,
    UpstreamError,
    UpstreamResult,
    UpstreamStream,
)
from services.router.providers.openai_compat import status_error

# slug -> (key variable, base-URL variable, default base URL); the base URL is the
# host root, as the anthropic SDK takes it (`/v1/messages` is appended).
ENV_PROVIDERS: Final = {
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
}

API_VERSION: Final = "2023-06-01"
_encode = msgspec.json.Encoder().encode


class AnthropicStream(UpstreamStream):
    """Anthropic SSE events in, OpenAI chunk events out; the tail (usage chunk, [DONE]) is withheld."""

    def __init__(self, response: aiohttp.ClientResponse, started: float) -> None:
        self._response = response
        self.ttfb_ms = (time.perf_counter() - started) * 1000
        self._translator = StreamTranslator()

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        buffer = b""
        try:
            async for chunk in self._response.content.iter_any():
                buffer += chunk
                if b"\r" in buffer:
                    # Normalised on the buffer, not the chunk: a CRLF may straddle two reads.
                    buffer = buffer.replace(b"\r\n", b"\n")
                cut = buffer.rfind(b"\n\n")
                if cut < 0:
                    continue
                events, buffer = buffer[: cut + 2], buffer[cut + 2 :]
                out = b"".join(self._translate(event) for event in events.split(b"\n\n")[:-1])
                if out:
                    yield out
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError(
                "timeout" if isinstance(exc, asyncio.TimeoutError) else "connection",
                f"upstream stream broke off: {exc!r}",
            ) from exc
        if buffer.strip():
            raise UpstreamError("connection", "upstream stream ended inside an event")
        if not self._translator.stopped:
            raise UpstreamError("connection", "upstream stream ended before message_stop")
        self.usage_chunk, self.usage = self._translator.usage_chunk()

    def _translate(self, event: bytes) -> bytes:
        name: str | None = None
        data: list[bytes] = []
        for line in event.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode(errors="replace")
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip())
        if not data:
            return b""  # a comment or a bare event name: nothing to translate
        try:
            return self._translator.feed(name, b"\n".join(data))
        except msgspec.DecodeError as exc:
            raise UpstreamError("malformed", f"upstream sent a malformed {name or 'stream'} event") from exc

    async def aclose(self) -> None:
        self._response.release()


class AnthropicAdapter(ProviderAdapter):
    kind = "anthropic"
    operations = frozenset({OP_CHAT})

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        base = settings.base_url.rstrip("/")
        self._url = base + "/v1/messages"
        self._headers = {
            "x-api-key": settings.api_key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
        }
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections, ttl_dns_cache=300, keepalive_timeout=30
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.settings.connect_timeout_s,
            sock_read=self.settings.read_timeout_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=True, raise_for_status=False
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, operation: str, upstream_model: str, body: bytes, stream: bool) -> aiohttp.ClientResponse:
        assert self._session is not None, "adapter used before start()"
        if operation != OP_CHAT:
            raise UpstreamError("malformed", f"{self.slug} supports chat only, not {operation}", status=400)
        payload = _encode(to_anthropic_request(body, upstream_model, stream))  # refusals: UpstreamError 400
        try:
            return await self._session.post(self._url, data=payload, headers=self._headers)
        except TimeoutError as exc:
            raise UpstreamError("timeout", f"no answer from {self.slug} in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("connection", f"cannot reach {self.slug}: {exc}") from exc

    async def complete(self, operation: str, upstream_model: str, body: bytes,
                       content_type: str | None = None) -> UpstreamResult:
        started = time.perf_counter()
        response = await self._post(operation, upstream_model, body, stream=False)
        try:
            data = await response.read()
        except TimeoutError as exc:
            raise UpstreamError("timeout", f"no answer from {self.slug} in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("connection", f"{self.slug} broke off the response: {exc}") from exc
        finally:
            response.release()
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status >= 400:
            raise status_error(response.status, data, response.headers)
        try:
            translated, usage = to_openai_completion(data)
        except msgspec.DecodeError as exc:
            raise UpstreamError("malformed", f"{self.slug} answered with malformed JSON") from exc
        return UpstreamResult(response.status, translated, latency_ms, usage)

    async def open_stream(self, operation: str, upstream_model: str, body: bytes) -> UpstreamStream:
        started = time.perf_counter()
        response = await self._post(operation, upstream_model, body, stream=True)
        if response.status >= 400:
            try:
                data = await response.read()
            except (TimeoutError, aiohttp.ClientError):
                data = b""
            finally:
                response.release()
            raise status_error(response.status, data, response.headers)
        if not response.content_type.startswith("text/event-stream"):
            response.release()
            raise UpstreamError("malformed", f"{self.slug} did not answer with an event stream")
        return AnthropicStream(response, started)


ADAPTER = AnthropicAdapter
