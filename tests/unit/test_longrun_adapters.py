"""The long-running adapters (OpenAI videos, Gemini Veo, Replicate, fal) against the in-process
simulator, and their shared plumbing (downloads, malformed answers) against small local upstreams."""

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import pytest
from aiohttp import web

from libs.contracts.bus.longrun import LongRunHandle
from libs.contracts.config import RouterConfig
from services.router.providers import build_longrun, longrun_modules
from services.router.providers.base import ProviderSettings, UpstreamError
from services.router.providers.fal import Fal
from services.router.providers.gemini_veo import GeminiVeo
from services.router.providers.longrun_base import LongRunAdapter, ResultFile, Spec
from services.router.providers.openai_videos import OpenAIVideos
from services.router.providers.replicate import Replicate
from tests.unit.sim_server import Sim, running_sim

KEY = "sim-key"


@dataclass(frozen=True)
class Wire:
    cls: type[LongRunAdapter]
    path: str  # appended to the simulator's URL for the base URL
    model: str  # an upstream name the simulator serves (directives are appended)
    modality: str
    magic: bytes


WIRES = [
    Wire(OpenAIVideos, "/v1", "video-sim", "video", b"ftyp"),
    Wire(GeminiVeo, "", "veo-3.0-fast-generate-001", "video", b"ftyp"),
    Wire(Replicate, "", "meta/musicgen", "music", b"RIFF"),
    Wire(Fal, "/fal", "fal-ai/hunyuan3d/v2", "3d", b"glTF"),
]
IDS = [w.cls.__name__ for w in WIRES]


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with running_sim(KEY) as running:
        yield running


async def _adapter(cls: type[LongRunAdapter], base_url: str, key: str = KEY,
                   read_timeout_s: float = 2.0) -> LongRunAdapter:
    adapter = cls(ProviderSettings(slug=cls.kind, kind=cls.kind, base_url=base_url, api_key=key,
                                   read_timeout_s=read_timeout_s))
    await adapter.start()
    return adapter


def _spec(wire: Wire, seconds: int | None = 4) -> Spec:
    return Spec(modality=wire.modality, prompt="a red fox", seconds=None if wire.modality == "3d" else seconds)


async def _error(call: Awaitable[object]) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await call
    return caught.value


def _handle(wire: Wire, model: str, submitted_id: str, extra: dict[str, str]) -> LongRunHandle:
    return LongRunHandle(wire.cls.kind, "catalog/slug", model, submitted_id, extra)


@pytest.mark.parametrize("wire", WIRES, ids=IDS)
async def test_submit_poll_fetch_download(sim: Sim, wire: Wire) -> None:
    adapter = await _adapter(wire.cls, sim.base_url + wire.path)
    try:
        submitted = await adapter.submit(wire.model, _spec(wire))
        assert submitted.upstream_id and submitted.status.state == "queued"
        handle = _handle(wire, wire.model, submitted.upstream_id, submitted.extra)
        assert (await adapter.poll(handle)).state == "completed"  # job_s defaults to 0
        result = await adapter.fetch(handle)
        assert result.status.state == "completed" and len(result.files) == 1
        download = await adapter.download(result.files[0])
        data = b"".join([chunk async for chunk in download.chunks()])
        assert wire.magic in data[:12]
        if wire.modality != "3d":
            assert submitted.extra["seconds"] == "4"
    finally:
        await adapter.close()


@pytest.mark.parametrize("wire", WIRES, ids=IDS)
async def test_running_job_then_cancel(sim: Sim, wire: Wire) -> None:
    adapter = await _adapter(wire.cls, sim.base_url + wire.path)
    model = wire.model + "+job_s=60"
    try:
        submitted = await adapter.submit(model, _spec(wire))
        handle = _handle(wire, model, submitted.upstream_id, submitted.extra)
        assert (await adapter.poll(handle)).state in ("queued", "processing")
        assert (await adapter.fetch(handle)).files == []  # nothing to fetch yet
        assert (await adapter.cancel(handle)).state == "cancelled"
    finally:
        await adapter.close()


@pytest.mark.parametrize("wire", WIRES, ids=IDS)
async def test_cancel_of_a_finished_job_answers_its_state(sim: Sim, wire: Wire) -> None:
    adapter = await _adapter(wire.cls, sim.base_url + wire.path)
    try:
        submitted = await adapter.submit(wire.model, _spec(wire))
        handle = _handle(wire, wire.model, submitted.upstream_id, submitted.extra)
        assert (await adapter.cancel(handle)).state == "completed"
    finally:
        await adapter.close()


@pytest.mark.parametrize("wire", WIRES, ids=IDS)
async def test_failure_at_the_provider(sim: Sim, wire: Wire) -> None:
    adapter = await _adapter(wire.cls, sim.base_url + wire.path)
    model = wire.model + "+fail"
    try:
        submitted = await adapter.submit(model, _spec(wire))
        handle = _handle(wire, model, submitted.upstream_id, submitted.extra)
        status = await adapter.poll(handle)
        assert status.state == "failed" and "simulated generation failed" in (status.error or "")
        assert (await adapter.fetch(handle)).status.state == "failed"
    finally:
        await adapter.close()


@pytest.mark.parametrize("wire", [w for w in WIRES if w.cls is not GeminiVeo], ids=[i for i in IDS if i != "GeminiVeo"])
async def test_progress_is_reported(sim: Sim, wire: Wire) -> None:
    adapter = await _adapter(wire.cls, sim.base_url + wire.path)
    model = wire.model + "+job_s=60+progress"
    try:
        submitted = await adapter.submit(model, _spec(wire))
        handle = _handle(wire, model, submitted.upstream_id, submitted.extra)
        status = await adapter.poll(handle)
        assert status.progress is not None and 0 <= status.progress < 100
    finally:
        await adapter.close()


@pytest.mark.parametrize("wire", WIRES, ids=IDS)
@pytest.mark.parametrize("status", [500, 503, 429, 400])
async def test_submit_http_errors_keep_their_status(sim: Sim, wire: Wire, status: int) -> None:
    adapter = await _adapter(wire.cls, sim.base_url + wire.path)
    try:
        exc = await _error(adapter.submit(f"{wire.model}+status={status}", _spec(wire)))
        assert exc.kind == "status" and exc.status == status
    finally:
        await adapter.close()


@pytest.mark.parametrize("wire", WIRES, ids=IDS)
async def test_poll_5xx_and_unknown_ids(sim: Sim, wire: Wire) -> None:
    adapter = await _adapter(wire.cls, sim.base_url + wire.path)
    model = wire.model + "+poll_status=502"
    try:
        submitted = await adapter.submit(model, _spec(wire))
        exc = await _error(adapter.poll(_handle(wire, model, submitted.upstream_id, submitted.extra)))
        assert exc.status == 502
        unknown = "models/x/operations/nope" if wire.cls is GeminiVeo else "nope"
        exc = await _error(adapter.poll(_handle(wire, wire.model, unknown, {})))
        assert exc.status == 404
    finally:
        await adapter.close()


@pytest.mark.parametrize("wire", WIRES, ids=IDS)
async def test_malformed_submit_answer(sim: Sim, wire: Wire) -> None:
    adapter = await _adapter(wire.cls, sim.base_url + wire.path)
    try:
        assert (await _error(adapter.submit(wire.model + "+malformed", _spec(wire)))).kind == "malformed"
    finally:
        await adapter.close()


@pytest.mark.parametrize("wire", WIRES, ids=IDS)
async def test_hanging_provider_times_out(sim: Sim, wire: Wire) -> None:
    adapter = await _adapter(wire.cls, sim.base_url + wire.path, read_timeout_s=0.3)
    try:
        assert (await _error(adapter.submit(wire.model + "+hang", _spec(wire)))).kind == "timeout"
    finally:
        await adapter.close()


@pytest.mark.parametrize("wire", WIRES, ids=IDS)
async def test_wrong_key_is_a_401_or_403(sim: Sim, wire: Wire) -> None:
    adapter = await _adapter(wire.cls, sim.base_url + wire.path, key="wrong")
    try:
        exc = await _error(adapter.submit(wire.model, _spec(wire)))
        assert exc.status in (401, 403)  # Gemini's API_KEY_INVALID 400 counts as 401
    finally:
        await adapter.close()


async def test_unreachable_provider_is_a_connection_error() -> None:
    adapter = await _adapter(Replicate, "http://127.0.0.1:9")
    try:
        assert (await _error(adapter.submit("a/b", Spec(modality="video", prompt="x")))).kind == "connection"
    finally:
        await adapter.close()


async def test_client_errors_are_400_before_any_call() -> None:
    adapter = await _adapter(OpenAIVideos, "http://127.0.0.1:9/v1")
    replicate = await _adapter(Replicate, "http://127.0.0.1:9")
    try:
        image = Spec(modality="video", prompt="x", image_url="https://example.com/a.png")
        assert (await _error(adapter.submit("sora-2", image))).status == 400
        ratio = Spec(modality="video", prompt="x", aspect_ratio="4:3")
        assert (await _error(adapter.submit("sora-2", ratio))).status == 400
        assert (await _error(replicate.submit("no-owner", Spec(modality="video", prompt="x")))).status == 400
        assert (await _error(replicate.submit("a/../b", Spec(modality="video", prompt="x")))).status == 400
    finally:
        await adapter.close()
        await replicate.close()


async def test_openai_request_carries_strings_and_derived_size(sim: Sim) -> None:
    adapter = await _adapter(OpenAIVideos, sim.base_url + "/v1")
    try:
        await adapter.submit("video-sim", Spec(modality="video", prompt="x", seconds=8, aspect_ratio="16:9"))
    finally:
        await adapter.close()
    sent = [e for e in await sim.journal() if e["path"] == "/v1/videos"][-1]["body"]
    assert sent == {"model": "video-sim", "prompt": "x", "seconds": "8", "size": "1280x720"}


# --- malformed answers and downloads, from a local upstream --------------------------------


class Upstream:
    def __init__(self) -> None:
        self.answer: web.Response = web.json_response({})
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.base = ""

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path_qs, dict(request.headers)))
        if request.path.startswith("/file"):
            return web.Response(body=b"\x00\x00\x00\x18ftyp" + bytes(100), content_type="application/octet-stream")
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        if request.path.startswith("/hop"):
            raise web.HTTPFound(request.query.get("to", "/file.mp4"))
        return self.answer


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", up.dispatch)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    up.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield up
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("cls", "body"), [
    (OpenAIVideos, b"[1, 2]"), (OpenAIVideos, b'{"id": "v", "status": "exploded"}'),
    (OpenAIVideos, b'{"status": "queued"}'),
    (Replicate, b'{"id": "p", "status": "thinking"}'), (Replicate, b'"just a string"'),
    (Fal, b'{"status": "IN_QUEUE"}'), (GeminiVeo, b'{"done": false}'),
])
async def test_malformed_answers_are_upstream_errors(upstream: Upstream, cls: type[LongRunAdapter],
                                                     body: bytes) -> None:
    upstream.answer = web.Response(body=body, content_type="application/json")
    adapter = await _adapter(cls, upstream.base)
    try:
        assert (await _error(adapter.submit("a/b", Spec(modality="video", prompt="x")))).kind == "malformed"
    finally:
        await adapter.close()


@pytest.mark.parametrize(("cls", "body"), [
    (GeminiVeo, b'{"done": true}'),
    (GeminiVeo, b'{"done": true, "response": {"generateVideoResponse": {"generatedSamples": [{"video": {}}]}}}'),
    (Replicate, b'{"id": "p", "status": "succeeded", "output": null}'),
])
async def test_malformed_finished_jobs(upstream: Upstream, cls: type[LongRunAdapter], body: bytes) -> None:
    upstream.answer = web.Response(body=body, content_type="application/json")
    adapter = await _adapter(cls, upstream.base)
    try:
        exc = await _error(adapter.fetch(LongRunHandle(cls.kind, "m", "a/b", "models/a/operations/1")))
        assert exc.kind == "malformed"
    finally:
        await adapter.close()


async def test_gemini_filtered_video_is_a_failure(upstream: Upstream) -> None:
    body = b'{"done": true, "response": {"generateVideoResponse": {"raiMediaFilteredCount": 1,' \
           b' "raiMediaFilteredReasons": ["unsafe"], "generatedSamples": []}}}'
    upstream.answer = web.Response(body=body, content_type="application/json")
    adapter = await _adapter(GeminiVeo, upstream.base)
    try:
        status = await adapter.poll(LongRunHandle("gemini", "m", "veo", "models/veo/operations/1"))
        assert status.state == "failed" and "unsafe" in (status.error or "")
    finally:
        await adapter.close()


async def test_download_follows_redirects_and_keeps_the_key_at_home(upstream: Upstream) -> None:
    adapter = await _adapter(Replicate, upstream.base)
    try:
        download = await adapter.download(ResultFile(upstream.base + "/hop"))
        assert download.content_type == "application/octet-stream"
        assert b"ftyp" in b"".join([c async for c in download.chunks()])
        assert [path for _, path, _ in upstream.seen] == ["/hop", "/file.mp4"]
        assert all(headers.get("Authorization") == f"Bearer {KEY}" for _, _, headers in upstream.seen)
        other = upstream.base.replace("127.0.0.1", "localhost")  # another origin: no credentials
        download = await adapter.download(ResultFile(other + "/file.mp4", "video/mp4"))
        download.close()
        assert "Authorization" not in upstream.seen[-1][2] and download.content_type == "video/mp4"
    finally:
        await adapter.close()


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x"])
async def test_download_refuses_non_http_redirects(upstream: Upstream, target: str) -> None:
    adapter = await _adapter(Fal, upstream.base)
    try:
        assert (await _error(adapter.download(ResultFile(f"{upstream.base}/hop?to={target}")))).kind == "malformed"
        assert (await _error(adapter.download(ResultFile(target)))).kind == "malformed"
    finally:
        await adapter.close()


async def test_download_redirect_loop_stops(upstream: Upstream) -> None:
    adapter = await _adapter(Fal, upstream.base)
    try:
        exc = await _error(adapter.download(ResultFile(f"{upstream.base}/loop")))
        assert exc.kind == "malformed"
    finally:
        await adapter.close()


def test_discovery_finds_one_longrun_module_per_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {kind: module.LONGRUN for kind, module in longrun_modules().items()} == {  # type: ignore[attr-defined]
        "openai": OpenAIVideos, "gemini": GeminiVeo, "replicate": Replicate, "fal": Fal}
    for name in ("REPLICATE_API_TOKEN", "FAL_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "SIM_API_KEY",
                 "ANTHROPIC_API_KEY", "GROQ_API_KEY", "TOGETHER_API_KEY", "MISTRAL_API_KEY", "DEEPSEEK_API_KEY",
                 "XAI_API_KEY", "FIREWORKS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_x")
    monkeypatch.setenv("FAL_KEY", "fal")
    monkeypatch.setenv("FAL_BASE_URL", "http://fal.internal")
    adapters = build_longrun([], RouterConfig())
    assert sorted(adapters) == ["fal", "replicate"]
    assert adapters["replicate"].settings.base_url == "https://api.replicate.com"
    assert adapters["fal"].settings.base_url == "http://fal.internal"
