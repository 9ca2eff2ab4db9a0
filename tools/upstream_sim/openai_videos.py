"""OpenAI's Videos API (Sora), long-running (job machinery in jobs.py).

  POST   /v1/videos               JSON or multipart: model, prompt, seconds ("4", "8", "12", "16", "20"),
                                  size (720x1280, 1280x720, 1024x1792, 1792x1024) -> a video object
  GET    /v1/videos/{id}          the video object: status queued | in_progress | completed | failed,
                                  progress, seconds, error {code, message}
  GET    /v1/videos/{id}/content  the MP4 (404 until completed)
  DELETE /v1/videos/{id}          {id, object: "video.deleted", deleted: true}

Bearer auth like every OpenAI route. Directives ride in the model name at submit
(``video-sim+job_s=2+progress``); ``status=``/``latency=``/``malformed``/``hang``/``reset`` act on the
submit, ``poll_status=S`` on every GET of the job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from aiohttp import web

from tools.upstream_sim.common import (
    SETTINGS_KEY,
    delay_ms,
    hang_until_disconnect,
    json_response,
    malformed_json_response,
    openai_error,
    openai_status_error,
    reset_connection,
)
from tools.upstream_sim.directives import DirectiveError, parse_directives
from tools.upstream_sim.jobs import FAILURE_MESSAGE, JOBS_KEY, SimJob, media_bytes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Recorder = Callable[[web.Request, bytes], dict[str, str]]
AuthCheck = Callable[[web.Request, Any], "web.Response | None"]

SECONDS: Final = ("4", "8", "12", "16", "20")
SIZES: Final = ("720x1280", "1280x720", "1024x1792", "1792x1024")
_WIRE: Final = "openai"
_STATUS: Final = {"running": "in_progress", "completed": "completed", "failed": "failed", "cancelled": "failed"}


def video_object(job: SimJob, fresh: bool = False) -> dict[str, Any]:
    """The video object; `fresh` (the create answer) is always still queued."""
    state = "running" if fresh else job.state()
    # The first tenth of the run is spent in the queue.
    status = "queued" if state == "running" and (fresh or job.fraction() < 0.1) else _STATUS[state]
    error = None
    if state == "failed":
        error = {"code": "generation_failed", "message": FAILURE_MESSAGE}
    completed_at = job.created_unix + int(job.job_s) if state == "completed" else None
    return {"id": job.id, "object": "video", "model": job.model, "status": status,
            "progress": 0 if fresh else job.percent(), "created_at": job.created_unix,
            "completed_at": completed_at, "expires_at": None, "seconds": str(job.seconds),
            "size": job.options.get("size", "720x1280"), "prompt": job.prompt, "remixed_from_video_id": None,
            "error": error}


def _not_found(video_id: str) -> web.Response:
    return openai_error(404, f"Video with id '{video_id}' not found.", "invalid_request_error", code="not_found")


async def _fields(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_type.startswith("multipart/") or request.content_type == "application/x-www-form-urlencoded":
        try:
            posted = await request.post()
        except (ValueError, AssertionError):
            return openai_error(400, "Could not parse multipart form.", "invalid_request_error")
        return {key: value for key, value in posted.items() if isinstance(value, str)}
    try:
        payload = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        return openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
    if not isinstance(payload, dict):
        return openai_error(400, "The request body must be a JSON object.", "invalid_request_error")
    return payload


def video_routes(record: Recorder, auth_error: AuthCheck) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) for the Videos API; app.py registers them."""
    async def create(request: web.Request) -> web.StreamResponse:
        fields = await _fields(request)
        sim_headers = record(request, msgspec.json.encode(fields) if isinstance(fields, dict) else b"")
        denied = auth_error(request, request.app[SETTINGS_KEY])
        if denied is not None:
            return denied
        if isinstance(fields, web.Response):
            return fields
        model, prompt = fields.get("model"), fields.get("prompt")
        if not isinstance(model, str) or not model:
            return openai_error(400, "Missing required parameter: 'model'.", "invalid_request_error", param="model")
        if not isinstance(prompt, str) or not prompt:
            return openai_error(400, "Missing required parameter: 'prompt'.", "invalid_request_error", param="prompt")
        seconds = str(fields.get("seconds") or "4")
        if seconds not in SECONDS:
            return openai_error(400, f"Invalid value: '{seconds}'. Supported values are: {', '.join(SECONDS)}.",
                                "invalid_request_error", param="seconds", code="invalid_value")
        size = str(fields.get("size") or "720x1280")
        if size not in SIZES:
            return openai_error(400, f"Invalid value: '{size}'. Supported values are: {', '.join(SIZES)}.",
                                "invalid_request_error", param="size", code="invalid_value")
        try:
            base, directives = parse_directives(model, sim_headers, request.app[SETTINGS_KEY])
        except DirectiveError as exc:
            return openai_error(400, str(exc), "invalid_request_error", param="model")
        if directives.reset:
            return await reset_connection(request)
        if directives.hang:
            return await hang_until_disconnect(request)
        await delay_ms(directives.latency_ms)
        if directives.status is not None:
            return openai_status_error(directives.status, directives.retry_after)
        if directives.malformed:
            return malformed_json_response()
        job = request.app[JOBS_KEY].create(_WIRE, base, directives, int(seconds), prompt, prefix="video_")
        job.options["size"] = size
        return json_response(video_object(job, fresh=True))

    async def lookup(request: web.Request) -> SimJob | web.Response:
        record(request, b"")
        denied = auth_error(request, request.app[SETTINGS_KEY])
        if denied is not None:
            return denied
        job = request.app[JOBS_KEY].get(request.match_info["video_id"], _WIRE)
        if job is None or job.cancelled:  # a deleted video is gone
            return _not_found(request.match_info["video_id"])
        if job.poll_status is not None:
            return openai_status_error(job.poll_status, None)
        return job

    async def retrieve(request: web.Request) -> web.StreamResponse:
        job = await lookup(request)
        if isinstance(job, web.Response):
            return job
        return json_response(video_object(job))

    async def content(request: web.Request) -> web.StreamResponse:
        job = await lookup(request)
        if isinstance(job, web.Response):
            return job
        if job.state() != "completed":
            return openai_error(404, "Video is not ready yet; poll its status until it is completed.",
                                "invalid_request_error", code="video_not_ready")
        return web.Response(body=media_bytes(job), headers={"Content-Type": "video/mp4"})

    async def delete(request: web.Request) -> web.StreamResponse:
        job = await lookup(request)
        if isinstance(job, web.Response):
            return job
        job.cancelled = True
        return json_response({"id": job.id, "object": "video.deleted", "deleted": True})

    return [("POST", "/v1/videos", create), ("GET", "/v1/videos/{video_id}", retrieve),
            ("GET", "/v1/videos/{video_id}/content", content), ("DELETE", "/v1/videos/{video_id}", delete)]
