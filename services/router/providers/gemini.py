"""Google Gemini: the native REST API (generativelanguage.googleapis.com, v1beta) behind the OpenAI wire format.

Chat goes to `POST {base}/v1beta/models/{model}:generateContent` (streams:
`:streamGenerateContent?alt=sse`, one GenerateContentResponse per SSE event),
embeddings to `:batchEmbedContents` (at most 100 inputs per call, so larger inputs
are sent as several calls at once). The key travels in `x-goog-api-key`. The
client's OpenAI body is translated in gemini_translate.py, the answers back in
gemini_response.py; both document the mapping and what cannot be mapped.

Errors follow the OpenAI adapter: an HTTP error becomes `status_error(...)`
(Google's envelope `{"error": {"code", "message", "status"}}` yields its message),
with two Gemini specifics: a 429 without Retry-After takes its delay from the
`google.rpc.RetryInfo` detail, and a 400 whose `ErrorInfo` reason is
API_KEY_INVALID counts as 401 (it is the gateway's key, not the client's request,
that is wrong). An `error` object inside a stream becomes an UpstreamError too.
"""

import asyncio
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final, TypeVar

import aiohttp
import msgspec

from libs.contracts.bus.inference import OP_CHAT, OP_EMBEDDINGS
from services.router.providers.base import (
    ProviderSettings,
    UpstreamError,
    UpstreamResult,
    UpstreamStream,
)
from services.router.providers.gemini_response import ChatStream, chat_response, embeddings_response
from services.router.providers.gemini_translate import TranslationError, chat_request, embeddings_request
from services.router.providers.http import HttpAdapter, sse_batches
from services.router.providers.openai_compat import _data_of, parse_retry_after, status_error

# slug -> (key variable, base-URL variable, default base URL); the base URL is the host
# root, as Google's SDKs take it (`/v1beta` is appended unless it names a version itself).
ENV_PROVIDERS: Final = {
    "google": ("GEMINI_API_KEY", "GEMINI_BASE_URL", "https://generativelanguage.googleapis.com"),
}

EMBED_BATCH: Final = 100  # batchEmbedContents takes at most this many requests
_VERSIONED: Final = re.compile(r"/v1(alpha|beta)?\d*$")
_RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO: Final = "type.googleapis.com/google.rpc.ErrorInfo"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode
T = TypeVar("T")


def model_path(upstream_model: str) -> str:
    """`models/<name>` (or a tuned model's own `tunedModels/<id>`), as the URL and embed requests name it."""
    return upstream_model if upstream_model.startswith(("models/", "tunedModels/")) else "models/" + upstream_model


def gemini_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """status_error plus Google's RetryInfo and API_KEY_INVALID details."""
    if body.lstrip().startswith(b"["):
        # The array-shaped streaming endpoint wraps its error in a one-element array.
        try:
            first = _decode(body)[0]
            body = _encode(first)
        except (msgspec.DecodeError, IndexError, KeyError, TypeError):
            pass
    error = status_error(status, body, headers)
    try:
        envelope = _decode(body)
        details = envelope["error"].get("details") or []
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        return error
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        if detail.get("@type") == _RETRY_INFO and error.retry_after is None:
            error.retry_after = parse_retry_after(str(detail.get("retryDelay") or "").removesuffix("s"))
        if detail.get("@type") == _ERROR_INFO and detail.get("reason") == "API_KEY_INVALID":
            error.status = 401
    return error


class GeminiStream(UpstreamStream):
    """Gemini SSE events in, OpenAI chunk events out; the tail (usage chunk, [DONE]) is withheld."""

    def __init__(self, response: aiohttp.ClientResponse, started: float, model: str, slug: str) -> None:
        self._response = response
        self._slug = slug
        self.ttfb_ms = (time.perf_counter() - started) * 1000
        self._chat = ChatStream(model)

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        try:
            async for events in sse_batches(self._response):
                out = self._translate(events)
                if out:
                    yield out
            try:
                self.usage_chunk, self.usage = self._chat.close()
            except TranslationError as exc:  # a clean close is not the end: a finishReason is
                raise UpstreamError("connection", f"upstream stream {exc}") from exc
        except UpstreamError:
            self.usage = self._chat.delivered()  # metered as far as it got
            raise

    def _translate(self, events: bytes) -> bytes:
        out = bytearray()
        for event in events.split(b"\n\n")[:-1]:
            data = _data_of(event)
            if data is None:
                continue  # comments and keep-alives: the gateway writes its own
            try:
                chunk = _decode(data)
            except msgspec.DecodeError as exc:
                raise UpstreamError("malformed", "upstream sent a stream event that is not JSON") from exc
            if not isinstance(chunk, dict):
                raise UpstreamError("malformed", "upstream sent a stream event that is not an object")
            if "error" in chunk:
                code = chunk["error"].get("code") if isinstance(chunk["error"], dict) else None
                raise gemini_error(code if isinstance(code, int) else 502, data, {})
            try:
                out += self._chat.feed(chunk)
            except TranslationError as exc:
                raise UpstreamError("malformed", f"{self._slug} sent an unexpected stream event: {exc}") from exc
        return bytes(out)

    async def aclose(self) -> None:
        self._response.release()


class GeminiAdapter(HttpAdapter):
    kind = "gemini"
    operations = frozenset({OP_CHAT, OP_EMBEDDINGS})

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        base = settings.base_url.rstrip("/")
        self._base = base if _VERSIONED.search(base) else base + "/v1beta"
        self._headers = {"x-goog-api-key": settings.api_key, "Content-Type": "application/json"}

    def _url(self, upstream_model: str, method: str) -> str:
        return f"{self._base}/{urllib.parse.quote(model_path(upstream_model), safe='/+=@,')}:{method}"

    async def _call(self, url: str, payload: Any) -> dict[str, Any]:
        """POST and return the decoded JSON object of a successful answer."""
        data = await self.read(await self.send(url, _encode(payload), self._headers), gemini_error)
        try:
            answer = _decode(data)
        except msgspec.DecodeError as exc:
            raise UpstreamError("malformed", f"{self.slug} answered with malformed JSON") from exc
        if not isinstance(answer, dict):
            raise UpstreamError("malformed", f"{self.slug} answered with JSON that is not an object")
        return answer

    async def complete(self, operation: str, upstream_model: str, body: bytes,
                       content_type: str | None = None) -> UpstreamResult:
        started = time.perf_counter()
        request = _client_body(body)
        if operation == OP_EMBEDDINGS:
            payload, fmt = _translated(embeddings_request, request, model_path(upstream_model))
            url = self._url(upstream_model, "batchEmbedContents")
            requests = payload["requests"]
            answers = await asyncio.gather(*(self._call(url, {"requests": requests[i : i + EMBED_BATCH]})
                                             for i in range(0, len(requests), EMBED_BATCH)))
            translate, args = embeddings_response, (answers, upstream_model, fmt, len(requests))
        else:
            payload = _translated(chat_request, request)
            answer = await self._call(self._url(upstream_model, "generateContent"), payload)
            translate, args = chat_response, (answer, upstream_model)
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            out, usage = translate(*args)
        except TranslationError as exc:
            raise UpstreamError("malformed", f"{self.slug} answered in an unexpected shape: {exc}") from exc
        return UpstreamResult(200, _encode(out), latency_ms, usage)

    async def open_stream(self, operation: str, upstream_model: str, body: bytes) -> UpstreamStream:
        if operation != OP_CHAT:
            raise UpstreamError("malformed", f"{operation} cannot be streamed", status=400)
        started = time.perf_counter()
        payload = _translated(chat_request, _client_body(body))
        response = await self.send(self._url(upstream_model, "streamGenerateContent") + "?alt=sse",
                                   _encode(payload), self._headers)
        await self.expect_events(response, gemini_error)
        return GeminiStream(response, started, upstream_model, self.slug)


def _translated(translate: Callable[..., T], *args: Any) -> T:
    """A request translation; what cannot be translated is the client's error (400)."""
    try:
        return translate(*args)
    except TranslationError as exc:
        raise UpstreamError("malformed", str(exc), status=400) from exc


def _client_body(body: bytes) -> dict[str, Any]:
    try:
        request = _decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamError("malformed", "request body is not a JSON object", status=400) from exc
    if not isinstance(request, dict):
        raise UpstreamError("malformed", "request body is not a JSON object", status=400)
    return request


ADAPTER = GeminiAdapter
