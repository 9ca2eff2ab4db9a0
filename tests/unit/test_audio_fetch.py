"""services.router.audio_fetch: the gateway fetches only public audio URLs unless told otherwise."""

import msgspec
import pytest
from aiohttp import web

from libs.contracts.bus.inference import OP_TRANSCRIPTIONS, InferenceRequest, Principal
from libs.contracts.http.multipart import field, form_parts
from services.router.audio_fetch import MAX_AUDIO_BYTES, AudioFetcher, FetchError, public


@pytest.mark.parametrize(("address", "ok"), [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
    ("192.168.0.10", False), ("169.254.169.254", False), ("::1", False), ("fd00::1", False), ("0.0.0.0", False),
])
def test_public_addresses(address: str, ok: bool) -> None:
    assert public(address) is ok


def _request(url: str, **extra: object) -> InferenceRequest:
    body = msgspec.json.encode({"model": "m/whisper", "audio_url": url, **extra})
    return InferenceRequest(request_id="r", operation=OP_TRANSCRIPTIONS, model="m/whisper", body=body,
                            principal=Principal("a", "k"), content_type="application/json")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/a.wav", "http://[::1]:9/a.wav", "http://localhost:9/a.wav",
                                 "http://169.254.169.254/latest/meta-data"])
async def test_private_urls_are_refused_before_any_connection(url: str) -> None:
    fetcher = AudioFetcher(allow_private=False, timeout_s=2)
    await fetcher.start()
    try:
        with pytest.raises(FetchError) as err:
            await fetcher.as_form(_request(url))
        assert "private" in str(err.value) or "public" in str(err.value)
    finally:
        await fetcher.close()


async def test_fetched_audio_becomes_a_multipart_upload(aiohttp_server_url: str) -> None:
    fetcher = AudioFetcher(allow_private=True)
    await fetcher.start()
    try:
        converted = await fetcher.as_form(_request(f"{aiohttp_server_url}/calls/rec.wav", language="en",
                                                   temperature=0.2))
        parts = form_parts(converted.body, converted.content_type)
        assert [p.name for p in parts] == ["model", "language", "temperature", "file"]
        assert field(converted.body, parts, "language") == "en"
        (upload,) = [p for p in parts if p.name == "file"]
        assert upload.filename == "rec.wav" and converted.body[upload.start:upload.end] == b"RIFF" + bytes(60)
        with pytest.raises(FetchError, match="HTTP 302"):
            await fetcher.as_form(_request(f"{aiohttp_server_url}/moved.wav"))
        with pytest.raises(FetchError, match="MiB"):
            await fetcher.as_form(_request(f"{aiohttp_server_url}/huge.wav"))
    finally:
        await fetcher.close()


@pytest.fixture
async def aiohttp_server_url() -> object:
    async def recording(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"RIFF" + bytes(60), content_type="audio/wav")

    async def moved(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://169.254.169.254/")

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = bytes(1024 * 1024)
        for _ in range(MAX_AUDIO_BYTES // len(chunk) + 2):
            await response.write(chunk)
        return response

    app = web.Application()
    app.router.add_get("/calls/rec.wav", recording)
    app.router.add_get("/moved.wav", moved)
    app.router.add_get("/huge.wav", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
