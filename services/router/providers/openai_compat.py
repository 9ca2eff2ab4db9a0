"""OpenAI-compatible providers: OpenAI itself and every server speaking its wire
format (vLLM, Ollama, Together, Groq, Mistral, DeepSeek, xAI, ...).

The body is the client's own OpenAI-shaped JSON, so translation is only the
model name: fields are kept as raw JSON and never re-encoded.
"""

import math
import time
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Final

import aiohttp
import msgspec

from libs.contracts.bus.inference import FORM_OPERATIONS, OP_CHAT, OP_EMBEDDINGS, Usage
from services.router.providers.base import (
    ProviderSettings,
    UpstreamError,
    UpstreamResult,
    UpstreamStream,
)
from services.router.providers.http import HttpAdapter, sse_batches
from services.router.providers.openai_media import MEDIA_PATHS, form_payload, is_json, media_usage

# Providers enabled by their SDK-style environment variables alone:
# slug -> (key variable, base-URL variable, default base URL).
ENV_PROVIDERS: Final = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1"),
    "groq": ("GROQ_API_KEY", "GROQ_BASE_URL", "https://api.groq.com/openai/v1"),
    "together": ("TOGETHER_API_KEY", "TOGETHER_BASE_URL", "https://api.together.xyz/v1"),
    "mistral": ("MISTRAL_API_KEY", "MISTRAL_BASE_URL", "https://api.mistral.ai/v1"),
    "deepseek": ("DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL", "https://api.deepseek.com/v1"),
    "xai": ("XAI_API_KEY", "XAI_BASE_URL", "https://api.x.ai/v1"),
    "fireworks": ("FIREWORKS_API_KEY", "FIREWORKS_BASE_URL", "https://api.fireworks.ai/inference/v1"),
    # The bundled provider simulator (tools/upstream_sim), for trying and load-testing the gateway.
    "sim": ("SIM_API_KEY", "SIM_BASE_URL", "http://127.0.0.1:9100/v1"),
}

_PATHS: Final = {OP_CHAT: "/chat/completions", OP_EMBEDDINGS: "/embeddings", **MEDIA_PATHS}
_DONE_EVENT: Final = b"data: [DONE]\n\n"
_MAX_RETRY_AFTER_S: Final = 86400

_decode_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_options = msgspec.json.Decoder(dict[str, msgspec.Raw] | None).decode
_encode = msgspec.json.Encoder().encode


class _OpenAIUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: dict[str, int | None] | None = None


# Lenient (Any) where providers differ, so a probe never refuses an answer a client could read.
class _DeltaProbe(msgspec.Struct):
    content: Any = None  # a string from most providers, a list of parts from a few
    tool_calls: Any = None


class _ChoiceProbe(msgspec.Struct):
    index: Any = 0
    delta: _DeltaProbe | None = None
    finish_reason: Any = None


class _UsageProbe(msgspec.Struct):
    """Reads `usage` and what shows whether the stream ended properly (each choice's finish_reason);
    decoding it also proves the JSON is well formed."""

    usage: _OpenAIUsage | None = None
    choices: list[_ChoiceProbe] | None = None


class _ErrorProbe(msgspec.Struct):
    error: dict[str, object] | str | None = None
    message: str | None = None


_decode_probe = msgspec.json.Decoder(_UsageProbe).decode
_decode_error = msgspec.json.Decoder(_ErrorProbe).decode


def rewrite_model(body: bytes, upstream_model: str, stream_usage: bool = False) -> bytes:
    """Swap the gateway slug for the provider's model name; leave the rest byte-for-byte.

    With `stream_usage`, also ask for the usage chunk the gateway meters by; the
    router decides whether the client sees it.
    """
    fields = _decode_fields(body)
    fields["model"] = msgspec.Raw(_encode(upstream_model))
    fields.pop("models", None)  # the gateway's fallback list: providers would reject it
    if stream_usage:
        options = (_decode_options(fields["stream_options"]) if "stream_options" in fields else None) or {}
        options["include_usage"] = msgspec.Raw(b"true")
        fields["stream_options"] = msgspec.Raw(_encode(options))
    return _encode(fields)


def to_usage(probe: _UsageProbe) -> Usage | None:
    u = probe.usage
    if u is None:
        return None
    cached = (u.prompt_tokens_details or {}).get("cached_tokens") or 0
    return Usage(input_units=u.prompt_tokens, output_units=u.completion_tokens, cached_units=cached)


def parse_retry_after(value: str | None) -> int | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), rounded up."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(_MAX_RETRY_AFTER_S, max(0, math.ceil(seconds)))


def upstream_message(body: bytes) -> str:
    """The provider's own error message, for the client's error text."""
    try:
        probe = _decode_error(body)
    except msgspec.DecodeError:
        return body[:200].decode(errors="replace")
    if isinstance(probe.error, dict):
        return str(probe.error.get("message") or probe.error)
    return probe.error or probe.message or body[:200].decode(errors="replace")


def status_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    retry = parse_retry_after(headers.get("Retry-After"))
    return UpstreamError("status", upstream_message(body), status=status, retry_after=retry)


class OpenAIStream(UpstreamStream):
    """The provider's SSE events, validated, with the tail withheld.

    A stream is whole only with its end markers: a finish_reason for every choice it
    opened, then `data: [DONE]`. A body that closes cleanly without them (a proxy or
    server cutting the answer short) raises UpstreamError, like a broken connection;
    either way `usage` is then what was delivered: the content chunks relayed, as
    OpenAI streams about one token per chunk and reports usage only at the end.
    """

    def __init__(self, response: aiohttp.ClientResponse, started: float) -> None:
        self._response = response
        self._started = started
        self.ttfb_ms = (time.perf_counter() - started) * 1000
        self._done = False
        self._unfinished: set[int] = set()  # choice indexes seen without a finish_reason yet
        self._finished: set[int] = set()
        self._pieces = 0  # content / tool-call chunks relayed

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        try:
            async for events in sse_batches(self._response):
                kept = self._filter(events)
                if kept:
                    yield kept
            missing = "finish_reason" if self._unfinished else None if self._done else "[DONE]"
            if missing is not None:  # a clean close is not the end: the end markers are
                raise UpstreamError("connection", f"upstream stream ended without its end marker "
                                                  f"(no {missing}); the answer is incomplete")
        except UpstreamError:
            if self.usage is None:
                self.usage = Usage(output_units=self._pieces)  # metered as far as it got
            raise

    def _filter(self, events: bytes) -> bytes:
        """Validate each event; keep usage and withhold the stream's tail (usage-only chunk, [DONE])."""
        kept: list[bytes] = []
        withheld = False
        for event in events.split(b"\n\n")[:-1]:
            # Nearly every event is one `data: ` line: skip the general line parsing for those.
            if event.startswith(b"data: ") and b"\n" not in event:
                data = event[6:]
            else:
                data = _data_of(event)
                if data is None:
                    kept.append(event)
                    continue
            if data == b"[DONE]":
                self._done = withheld = True
                continue
            try:
                probe = _decode_probe(data)
            except msgspec.DecodeError as exc:
                raise UpstreamError("malformed", "upstream sent a stream event that is not JSON") from exc
            for choice in probe.choices or ():
                if choice.finish_reason is None and type(choice.index) is int and choice.index in self._unfinished:
                    delta = choice.delta  # the common case, inline: one more piece of an open choice
                    if delta is not None and (delta.content or delta.tool_calls):
                        self._pieces += 1
                else:
                    self._track(choice)
            if probe.usage is not None:
                self.usage = to_usage(probe)
                if probe.choices is not None and not probe.choices:
                    self.usage_chunk = data
                    withheld = True
                    continue
            kept.append(event)
        if not withheld:
            return events
        return b"".join(event + b"\n\n" for event in kept)

    def _track(self, choice: _ChoiceProbe) -> None:
        delta = choice.delta
        if delta is not None and (delta.content or delta.tool_calls):
            self._pieces += 1
        index = choice.index if isinstance(choice.index, int) else 0
        if choice.finish_reason:
            self._finished.add(index)
            self._unfinished.discard(index)
        elif index not in self._finished:  # a chunk after the finish (some servers send one) keeps it
            self._unfinished.add(index)

    async def aclose(self) -> None:
        self._response.release()


def _data_of(event: bytes) -> bytes | None:
    """The payload of an SSE event's data lines (joined as the SSE spec says), or None."""
    lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return lines[0] if len(lines) == 1 else b"\n".join(lines)


class OpenAICompatAdapter(HttpAdapter):
    kind = "openai"
    operations = frozenset(_PATHS)

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        base = settings.base_url.rstrip("/")
        self._urls = {op: base + path for op, path in _PATHS.items()}
        self._headers = {
            "Authorization": f"Bearer {settings.api_key}",
            "Content-Type": "application/json",
        }

    async def _post(self, operation: str, upstream_model: str, body: bytes,
                    stream: bool = False, content_type: str | None = None) -> aiohttp.ClientResponse:
        headers = self._headers
        if operation in FORM_OPERATIONS:
            payload = form_payload(body, content_type, upstream_model)
            headers = {**headers, "Content-Type": content_type or ""}
        else:
            try:
                payload = rewrite_model(body, upstream_model, stream_usage=stream)
            except msgspec.DecodeError as exc:
                raise UpstreamError("malformed", "request body is not a JSON object", status=400) from exc
        return await self.send(self._urls[operation], payload, headers)

    async def complete(self, operation: str, upstream_model: str, body: bytes,
                       content_type: str | None = None) -> UpstreamResult:
        started = time.perf_counter()
        response = await self._post(operation, upstream_model, body, content_type=content_type)
        data = await self.read(response, status_error)
        latency_ms = (time.perf_counter() - started) * 1000
        if operation in MEDIA_PATHS:
            return self._media_result(operation, body, response, data, latency_ms)
        try:
            usage = to_usage(_decode_probe(data))
        except msgspec.DecodeError as exc:
            raise UpstreamError("malformed", f"{self.slug} answered with malformed JSON") from exc
        return UpstreamResult(response.status, data, latency_ms, usage)

    def _media_result(self, operation: str, body: bytes, response: aiohttp.ClientResponse, data: bytes,
                      latency_ms: float) -> UpstreamResult:
        """Images, audio and moderation answers: JSON, text or binary, with the provider's Content-Type."""
        content_type = response.headers.get("Content-Type") or "application/octet-stream"
        try:
            usage = media_usage(operation, body, data, content_type)
        except msgspec.DecodeError as exc:
            raise UpstreamError("malformed", f"{self.slug} answered with malformed JSON") from exc
        return UpstreamResult(response.status, data, latency_ms, usage,
                              "application/json" if is_json(content_type) else content_type)

    async def open_stream(self, operation: str, upstream_model: str, body: bytes) -> UpstreamStream:
        started = time.perf_counter()
        response = await self._post(operation, upstream_model, body, stream=True)
        await self.expect_events(response, status_error)
        return OpenAIStream(response, started)


ADAPTER = OpenAICompatAdapter
