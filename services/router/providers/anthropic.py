"""Anthropic: the native Messages API (`POST {base}/v1/messages`) behind the OpenAI wire format.

The client's OpenAI chat-completions body is translated to a Messages request,
and the answer (a message, or its SSE events) back into a `chat.completion` or
`chat.completion.chunk` events; the mapping, and what cannot be mapped, is
documented in anthropic_translate.py. Errors follow the OpenAI adapter: an
HTTP error becomes `status_error(...)` (Anthropic's envelope
`{"type":"error","error":{"type","message"}}` yields its message; 529
"overloaded" stays a 5xx), an `error` event mid-stream an UpstreamError.
"""

import time
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
import msgspec

from libs.contracts.bus.inference import OP_CHAT
from services.router.providers.anthropic_translate import StreamTranslator, to_anthropic_request, to_openai_completion
from services.router.providers.base import (
    ProviderSettings,
    UpstreamError,
    UpstreamResult,
    UpstreamStream,
)
from services.router.providers.http import HttpAdapter, sse_batches
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
        try:
            async for events in sse_batches(self._response):
                out = b"".join(self._translate(event) for event in events.split(b"\n\n")[:-1])
                if out:
                    yield out
            if not self._translator.stopped:  # a clean close is not the end: message_stop is
                raise UpstreamError("connection", "upstream stream ended without its end marker "
                                                  "(no message_stop); the answer is incomplete")
        except UpstreamError:
            self.usage = self._translator.delivered()  # metered as far as it got
            raise
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


class AnthropicAdapter(HttpAdapter):
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

    async def _post(self, operation: str, upstream_model: str, body: bytes, stream: bool) -> aiohttp.ClientResponse:
        if operation != OP_CHAT:
            raise UpstreamError("malformed", f"{self.slug} supports chat only, not {operation}", status=400)
        payload = _encode(to_anthropic_request(body, upstream_model, stream))  # refusals: UpstreamError 400
        return await self.send(self._url, payload, self._headers)

    async def complete(self, operation: str, upstream_model: str, body: bytes,
                       content_type: str | None = None) -> UpstreamResult:
        started = time.perf_counter()
        response = await self._post(operation, upstream_model, body, stream=False)
        data = await self.read(response, status_error)
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            translated, usage = to_openai_completion(data)
        except msgspec.DecodeError as exc:
            raise UpstreamError("malformed", f"{self.slug} answered with malformed JSON") from exc
        return UpstreamResult(response.status, translated, latency_ms, usage)

    async def open_stream(self, operation: str, upstream_model: str, body: bytes) -> UpstreamStream:
        started = time.perf_counter()
        response = await self._post(operation, upstream_model, body, stream=True)
        await self.expect_events(response, status_error)
        return AnthropicStream(response, started)


ADAPTER = AnthropicAdapter
