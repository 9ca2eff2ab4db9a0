"""OpenAI-compatible adapter: pure helpers, then complete()/open_stream() against a local upstream."""

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate

import msgspec
import pytest
from aiohttp import web

from libs.contracts.bus.inference import OP_CHAT, OP_EMBEDDINGS, Usage
from services.router.providers.base import ProviderSettings, UpstreamError
from services.router.providers.openai_compat import (
    OpenAICompatAdapter,
    parse_retry_after,
    rewrite_model,
    upstream_message,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CHAT_BODY = '{"model":"t/gpt-x","temperature":0.70,"messages":[{"role":"user","content":"héllo ☃ \\u00e9"}],"n":1}'

# --- pure helpers ----------------------------------------------------------------------------


def test_rewrite_model_swaps_only_the_model() -> None:
    out = rewrite_model(CHAT_BODY.encode(), "gpt-4o-2024")
    assert out == CHAT_BODY.replace('"t/gpt-x"', '"gpt-4o-2024"').encode()
    assert b'"temperature":0.70' in out and "héllo ☃ \\u00e9".encode() in out


def test_rewrite_model_keeps_raw_values_and_key_order() -> None:
    body = b'{"a":1e2,"model":"x","z":[1.50,{"k":"v"}],"m":null}'
    assert rewrite_model(body, 'we"ird') == b'{"a":1e2,"model":"we\\"ird","z":[1.50,{"k":"v"}],"m":null}'
    assert rewrite_model(b'{"input":"x"}', "emb") == b'{"input":"x","model":"emb"}'


@pytest.mark.parametrize("body", [b"[1,2]", b"not json", b""])
def test_rewrite_model_rejects_non_objects(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        rewrite_model(body, "m")


@pytest.mark.parametrize(("value", "expected"), [
    ("7", 7), ("1.2", 2), ("0", 0), ("-3", 0), ("garbage", None), ("", None), (None, None),
    pytest.param(formatdate(time.time() - 60, usegmt=True), 0, id="http-date-in-the-past"),  # stable id for xdist
    ("inf", None), ("1e400", None), ("nan", None), ("99999999", 86400),
])
def test_parse_retry_after(value: str | None, expected: int | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_ahead() -> None:
    assert parse_retry_after(formatdate(time.time() + 5, usegmt=True)) in (4, 5, 6)


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}',
     "Rate limit reached"),
    (b'{"error":"model overloaded"}', "model overloaded"),
    (b'{"message":"upstream said no"}', "upstream said no"),
    (b"Service Unavailable", "Service Unavailable"),
    (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
    (b"x" * 500, "x" * 200),
])
def test_upstream_message(body: bytes, expected: str) -> None:
    assert upstream_message(body) == expected


# --- a local upstream ------------------------------------------------------------------------

class Upstream:
    def __init__(self) -> None:
        self.handler: Handler = self.ok
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.release = asyncio.Event()
        self.port = 0

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, dict(request.headers), await request.read()))
        return await self.handler(request)

    async def ok(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=COMPLETION, content_type="application/json")


COMPLETION = (b'{"id":"chatcmpl-1", "object":"chat.completion","choices":[{"message":{"content":"hi"}}],'
              b'"usage":{"prompt_tokens":11,"completion_tokens":22,"prompt_tokens_details":{"cached_tokens":5}}}')


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", up.dispatch)
    app.router.add_post("/v1/embeddings", up.dispatch)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    up.port = runner.addresses[0][1]
    try:
        yield up
    finally:
        up.release.set()
        await runner.cleanup()


async def _adapter(port: int) -> OpenAICompatAdapter:
    adapter = OpenAICompatAdapter(ProviderSettings(slug="t", kind="openai", base_url=f"http://127.0.0.1:{port}/v1",
                                                   api_key="k", read_timeout_s=0.5))
    await adapter.start()
    return adapter


@pytest.fixture
async def adapter(upstream: Upstream) -> AsyncIterator[OpenAICompatAdapter]:
    a = await _adapter(upstream.port)
    try:
        yield a
    finally:
        await a.close()


async def _upstream_error(call: Awaitable[object]) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await call
    return info.value


# --- complete() ------------------------------------------------------------------------------

async def test_complete_returns_body_untouched_and_usage(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    result = await adapter.complete(OP_CHAT, "gpt-x-upstream", CHAT_BODY.encode())
    assert result.status == 200 and result.body == COMPLETION
    assert result.usage == Usage(input_units=11, output_units=22, cached_units=5)
    assert result.latency_ms > 0
    path, headers, body = upstream.seen[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer k" and headers["Content-Type"] == "application/json"
    assert body == CHAT_BODY.replace('"t/gpt-x"', '"gpt-x-upstream"').encode()


async def test_complete_embeddings_path_and_usage_without_details(upstream: Upstream,
                                                                  adapter: OpenAICompatAdapter) -> None:
    async def emb(request: web.Request) -> web.Response:
        return web.json_response({"data": [], "usage": {"prompt_tokens": 4, "total_tokens": 4}})
    upstream.handler = emb
    result = await adapter.complete(OP_EMBEDDINGS, "text-embedding-3-small", b'{"model":"t/e","input":"x"}')
    assert result.usage == Usage(4, 0, 0)
    assert upstream.seen[0][0] == "/v1/embeddings"
    assert msgspec.json.decode(upstream.seen[0][2]) == {"model": "text-embedding-3-small", "input": "x"}


async def test_complete_without_usage(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    upstream.handler = lambda r: _json(b'{"id":"x"}')
    assert (await adapter.complete(OP_CHAT, "m", b'{"model":"t/m"}')).usage is None


async def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


async def test_complete_503_is_status_error(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    upstream.handler = lambda r: _json(b'{"error":{"message":"overloaded"}}', 503)
    exc = await _upstream_error(adapter.complete(OP_CHAT, "m", b'{"model":"t/m"}'))
    assert (exc.kind, exc.status, exc.message, exc.retry_after) == ("status", 503, "overloaded", None)


async def test_complete_429_carries_retry_after(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    upstream.handler = lambda r: _json(b'{"error":{"message":"slow down"}}', 429, {"Retry-After": "3"})
    exc = await _upstream_error(adapter.complete(OP_CHAT, "m", b'{"model":"t/m"}'))
    assert (exc.kind, exc.status, exc.retry_after, exc.message) == ("status", 429, 3, "slow down")


async def test_complete_non_json_200_is_malformed(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    upstream.handler = lambda r: _json(b"<html>hello</html>")
    exc = await _upstream_error(adapter.complete(OP_CHAT, "m", b'{"model":"t/m"}'))
    assert exc.kind == "malformed"


async def test_complete_slow_upstream_times_out(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(upstream.release.wait(), 3)
        return await _json(COMPLETION)
    upstream.handler = slow
    started = time.perf_counter()
    exc = await _upstream_error(adapter.complete(OP_CHAT, "m", b'{"model":"t/m"}'))
    assert exc.kind == "timeout"
    assert time.perf_counter() - started < 2


async def test_complete_unreachable_is_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = await _adapter(port)
    try:
        exc = await _upstream_error(adapter.complete(OP_CHAT, "m", b'{"model":"t/m"}'))
        assert exc.kind == "connection" and "cannot reach t" in exc.message
    finally:
        await adapter.close()


async def test_complete_non_object_request_body(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    exc = await _upstream_error(adapter.complete(OP_CHAT, "m", b"[]"))
    assert (exc.kind, exc.status) == ("malformed", 400)
    assert upstream.seen == []


# --- open_stream() ---------------------------------------------------------------------------

def _sse(pieces: list[bytes], content_type: str = "text/event-stream") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response
    return handler


async def _drain(adapter: OpenAICompatAdapter, body: bytes = b'{"model":"t/m","stream":true}'
                 ) -> tuple[list[bytes], Usage | None]:
    stream = await adapter.open_stream(OP_CHAT, "m", body)
    chunks: list[bytes] = []
    try:
        async for events in stream:
            chunks.append(events)
    finally:
        await stream.aclose()
    adapter.last_usage_chunk = stream.usage_chunk  # type: ignore[attr-defined]
    return chunks, stream.usage


E1 = b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
E2 = b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
FIN = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,' \
        b'"prompt_tokens_details":{"cached_tokens":2}}}\n\n'
DONE = b"data: [DONE]\n\n"


async def test_stream_reassembles_events_split_across_chunks(upstream: Upstream,
                                                             adapter: OpenAICompatAdapter) -> None:
    whole = E1 + b": keep-alive\n\n" + E2 + FIN + USAGE + DONE
    cuts = [3, 17, len(E1) - 1, len(E1) + 1, len(E1) + 20, len(whole) - len(DONE) - 1, len(whole) - 2]
    upstream.handler = _sse([whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)])
    chunks, usage = await _drain(adapter)
    # The tail (usage-only chunk and [DONE]) is withheld for the router to write.
    assert b"".join(chunks) == E1 + b": keep-alive\n\n" + E2 + FIN
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.endswith(b"\n\n") and not chunk.startswith(b"\n")
    assert usage == Usage(5, 7, 2)
    assert adapter.last_usage_chunk == USAGE[len(b"data: "):-2]  # type: ignore[attr-defined]
    # The upstream is always asked for usage, so every stream can be metered.
    assert upstream.seen[0][2] == b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}'


async def test_stream_options_of_the_client_are_kept(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    upstream.handler = _sse([E1, FIN, DONE])
    await _drain(adapter, b'{"model":"t/m","stream":true,"stream_options":{"include_usage":false,"x":1}}')
    assert upstream.seen[0][2] == b'{"model":"m","stream":true,"stream_options":{"include_usage":true,"x":1}}'


async def test_usage_inside_a_content_chunk_is_forwarded(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    mixed = b'data: {"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n'
    upstream.handler = _sse([mixed, FIN, DONE])
    chunks, usage = await _drain(adapter)
    assert b"".join(chunks) == mixed + FIN and usage == Usage(1, 1, 0)


async def test_stream_normalises_crlf(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    crlf = [e.replace(b"\n", b"\r\n") for e in (E1, E2, FIN + DONE)]
    # Pieces cut inside events, but never between a CR and its LF.
    upstream.handler = _sse([crlf[0][:10], crlf[0][10:] + crlf[1][:5], crlf[1][5:], crlf[2]])
    chunks, usage = await _drain(adapter)
    assert b"".join(chunks) == E1 + E2 + FIN
    assert usage is None


async def test_stream_crlf_straddling_two_reads(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    crlf = b"".join(e.replace(b"\n", b"\r\n") for e in (E1, FIN, DONE))
    # The final blank line's CR ends one read and its LF starts the next.
    upstream.handler = _sse([crlf[:-1], crlf[-1:]])
    chunks, _ = await _drain(adapter)
    assert b"".join(chunks) == E1 + FIN
    assert b"\r" not in b"".join(chunks)


@pytest.mark.parametrize("tail", [
    FIN + USAGE,  # finished, usage sent, but no [DONE]: the body may have been cut
    USAGE + DONE,  # [DONE] without the choice's finish_reason
    b"",  # content, then a clean close
])
async def test_stream_without_its_end_markers_is_truncated(upstream: Upstream, adapter: OpenAICompatAdapter,
                                                           tail: bytes) -> None:
    upstream.handler = _sse([E1, E2, tail] if tail else [E1, E2])
    stream = await adapter.open_stream(OP_CHAT, "m", b'{"model":"t/m","stream":true}')
    chunks: list[bytes] = []
    with pytest.raises(UpstreamError) as err:
        async for events in stream:
            chunks.append(events)
    await stream.aclose()
    assert err.value.kind == "connection" and "end marker" in err.value.message
    assert b"".join(chunks).startswith(E1 + E2)  # what came is relayed; the error follows it
    # Metered as far as it got: the provider's usage when it sent one, else one unit per content chunk.
    assert stream.usage == (Usage(5, 7, 2) if USAGE in tail else Usage(0, 2, 0))


async def test_stream_end_markers_per_choice(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    two = [b'data: {"choices":[{"index":%d,"delta":{"content":"x"}}]}\n\n' % i for i in (0, 1)]
    done = [b'data: {"choices":[{"index":%d,"delta":{},"finish_reason":"stop"}]}\n\n' % i for i in (0, 1)]
    upstream.handler = _sse([*two, done[0], DONE])  # choice 1 never finished
    exc = await _upstream_error(_drain(adapter))
    assert "no finish_reason" in exc.message
    # Both finished, and a trailing chunk after a finish (some servers send one) is no reopening.
    upstream.handler = _sse([*two, *done, two[0].replace(b'"x"', b'""'), DONE])
    chunks, _ = await _drain(adapter)
    assert b"".join(chunks).count(b"finish_reason") == 2


async def test_stream_non_json_event_is_malformed(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    upstream.handler = _sse([E1, b"data: {not json\n\n", FIN, DONE])
    exc = await _upstream_error(_drain(adapter))
    assert exc.kind == "malformed"


async def test_stream_ending_inside_an_event(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    upstream.handler = _sse([E1, b'data: {"choices":[]}'])
    exc = await _upstream_error(_drain(adapter))
    assert exc.kind == "connection" and "inside an event" in exc.message


async def test_stream_upstream_500_before_streaming(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    upstream.handler = lambda r: _json(b'{"error":{"message":"kaput"}}', 500)
    exc = await _upstream_error(adapter.open_stream(OP_CHAT, "m", b'{"model":"t/m","stream":true}'))
    assert (exc.kind, exc.status, exc.message) == ("status", 500, "kaput")


async def test_stream_429_before_streaming_has_retry_after(upstream: Upstream,
                                                          adapter: OpenAICompatAdapter) -> None:
    upstream.handler = lambda r: _json(b'{"error":"busy"}', 429, {"Retry-After": "2"})
    exc = await _upstream_error(adapter.open_stream(OP_CHAT, "m", b'{"model":"t/m","stream":true}'))
    assert (exc.kind, exc.status, exc.retry_after) == ("status", 429, 2)


async def test_stream_wrong_content_type_is_malformed(upstream: Upstream, adapter: OpenAICompatAdapter) -> None:
    upstream.handler = lambda r: _json(COMPLETION)
    exc = await _upstream_error(adapter.open_stream(OP_CHAT, "m", b'{"model":"t/m","stream":true}'))
    assert exc.kind == "malformed" and "event stream" in exc.message

