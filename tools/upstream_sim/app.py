"""The simulator's aiohttp application: routing, auth, journal and fault directives."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from tools.upstream_sim.anthropic_messages import handle_messages
from tools.upstream_sim.common import (
    JOURNAL_KEY,
    JOURNAL_SIZE,
    SETTINGS_KEY,
    InvalidRequest,
    JournalEntry,
    delay_ms,
    hang_until_disconnect,
    json_response,
    openai_error,
    openai_status_error,
    reset_connection,
)
from tools.upstream_sim.directives import DirectiveError, parse_directives
from tools.upstream_sim.fal_queue import fal_routes
from tools.upstream_sim.gemini_veo import predict_long_running, veo_routes
from tools.upstream_sim.gemini_wire import gemini_handler
from tools.upstream_sim.jobs import JOBS_KEY, JobTable, serve_file
from tools.upstream_sim.openai_chat import handle_chat
from tools.upstream_sim.openai_embeddings import handle_embeddings
from tools.upstream_sim.openai_media import BYTES_PER_SECOND, media_routes
from tools.upstream_sim.openai_videos import video_routes
from tools.upstream_sim.replicate_predictions import prediction_routes
from tools.upstream_sim.settings import SimSettings

WireHandler = Callable[[web.Request, dict[str, Any], Any], Awaitable[web.StreamResponse]]

MODEL_IDS = ("gpt-sim", "gpt-sim-mini", "text-embedding-sim")
MODEL_CREATED = 1_700_000_000
_decode = msgspec.json.decode


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": "upstream-sim"}


def _record(request: web.Request, body: bytes) -> dict[str, str]:
    """Journal the request and return its ``x-sim-*`` headers (lower-cased)."""
    headers: dict[str, str] = {}
    sim: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key.startswith("x-"):
            headers[key] = value
            if key.startswith("x-sim-"):
                sim[key] = value
        elif key == "authorization" or key == "content-type":
            headers[key] = value
    request.app[JOURNAL_KEY].append(JournalEntry(request.method, request.path, headers, body))
    return sim


def _auth_error(request: web.Request, settings: SimSettings) -> web.Response | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return openai_error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            code="invalid_api_key",
        )
    if settings.api_key is not None and token != settings.api_key:
        return openai_error(401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key")
    return None


def _bad_request(message: str, param: str | None = None, code: str | None = None) -> web.Response:
    return openai_error(400, message, "invalid_request_error", param=param, code=code)


async def _dispatch(request: web.Request, handler: WireHandler) -> web.StreamResponse:
    body = await request.read()
    sim_headers = _record(request, body)
    settings = request.app[SETTINGS_KEY]
    denied = _auth_error(request, settings)
    if denied is not None:
        return denied
    try:
        payload = _decode(body)
    except msgspec.DecodeError:
        return _bad_request("We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.")
    if not isinstance(payload, dict):
        return _bad_request("The request body must be a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        return _bad_request("You must provide a model parameter.", "model", "missing_required_parameter")
    try:
        _, directives = parse_directives(model, sim_headers, settings)
    except DirectiveError as exc:
        return _bad_request(str(exc), "model")
    if directives.reset:
        return await reset_connection(request)
    if directives.hang:
        return await hang_until_disconnect(request)
    if directives.status is not None:
        await delay_ms(directives.latency_ms)
        return openai_status_error(directives.status, directives.retry_after)
    try:
        return await handler(request, payload, directives)
    except InvalidRequest as exc:
        return _bad_request(exc.message, exc.param, exc.code)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _dispatch(request, handle_chat)


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await _dispatch(request, handle_embeddings)


async def list_models(request: web.Request) -> web.StreamResponse:
    denied = _auth_error(request, request.app[SETTINGS_KEY])
    if denied is not None:
        return denied
    return json_response({"object": "list", "data": [_model_object(m) for m in MODEL_IDS]})


async def get_model(request: web.Request) -> web.StreamResponse:
    denied = _auth_error(request, request.app[SETTINGS_KEY])
    if denied is not None:
        return denied
    return json_response(_model_object(request.match_info["model_id"]))


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


def _decode_body(body: bytes) -> Any:
    try:
        return _decode(body) if body else None
    except msgspec.DecodeError:
        return None


async def sample_audio(request: web.Request) -> web.StreamResponse:
    """A fetchable "recording" for transcription by URL: ?seconds=N of silence as audio/wav
    (the transcription endpoints count BYTES_PER_SECOND bytes as one second)."""
    try:
        seconds = max(1, min(600, int(request.query.get("seconds", "1"))))
    except ValueError:
        return web.Response(status=400, text="seconds must be an integer")
    return web.Response(body=bytes(seconds * BYTES_PER_SECOND), content_type="audio/wav")


async def journal_list(request: web.Request) -> web.StreamResponse:
    entries = [
        {"method": e.method, "path": e.path, "headers": e.headers, "body": _decode_body(e.body)}
        for e in request.app[JOURNAL_KEY]
    ]
    return json_response(entries)


async def journal_clear(request: web.Request) -> web.StreamResponse:
    request.app[JOURNAL_KEY].clear()
    return web.Response(status=204)


def create_app(settings: SimSettings | None = None) -> web.Application:
    """Build the simulator app; all state lives on the returned application."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SETTINGS_KEY] = settings if settings is not None else SimSettings()
    app[JOURNAL_KEY] = deque(maxlen=JOURNAL_SIZE)
    app[JOBS_KEY] = JobTable()  # long-running generations (video, music, 3D) of every wire
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1beta/models/{name}",
                        gemini_handler(_record, {"predictLongRunning": predict_long_running}))
    for method, path, handler in [*video_routes(_record, _auth_error), *veo_routes(_record),
                                  *prediction_routes(_record), *fal_routes(_record)]:
        app.router.add_route(method, path, handler)
    app.router.add_get("/_sim/files/{job_id}/{filename}", serve_file)
    app.router.add_post("/v1/messages", handle_messages)
    for path, handler in media_routes(_record, _auth_error, _dispatch):
        app.router.add_post(path, handler)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id:.+}", get_model)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/_sim/requests", journal_list)
    app.router.add_get("/_sim/audio/{name}", sample_audio)
    app.router.add_delete("/_sim/requests", journal_clear)
    return app
