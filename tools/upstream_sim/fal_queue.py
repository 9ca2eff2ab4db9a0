"""fal.ai's queue, long-running (job machinery in jobs.py), under ``/fal`` (point FAL_BASE_URL there).

  POST /fal/{model_id}                          the model's input -> {request_id, status, queue_position,
                                                status_url, response_url, cancel_url}
  GET  /fal/{app}/requests/{id}/status[?logs=1] IN_QUEUE | IN_PROGRESS | COMPLETED (with `error` when the
                                                run failed) | CANCELED; logs with percentages (``progress``)
  GET  /fal/{app}/requests/{id}                 the result: {video | audio_file | model_mesh: {url,
                                                content_type, file_name, file_size}}; 400 while running,
                                                500 {"detail"} for a failed run
  PUT  /fal/{app}/requests/{id}/cancel          202 CANCELLATION_REQUESTED, or 400 ALREADY_COMPLETED

``Authorization: Key <key>`` (any key, or exactly SimSettings.api_key); errors are {"detail": ...}.
The model id may have a sub-path; the request URLs name the app (its first two segments), as
fal's do. Directives ride in the model id (``fal-ai/video-sim+job_s=2``). The duration is
``duration`` (video, a string; default 5) or ``seconds_total`` (music; default 30).
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
    reset_connection,
)
from tools.upstream_sim.directives import DirectiveError, parse_directives
from tools.upstream_sim.jobs import FAILURE_MESSAGE, JOBS_KEY, SimJob, file_url, media_bytes, media_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Recorder = Callable[[web.Request, bytes], dict[str, str]]

PREFIX: Final = "/fal"
_WIRE: Final = "fal"
_RESULT_KEYS: Final = {"video": "video", "music": "audio_file", "3d": "model_mesh"}


def detail(status: int, message: str) -> web.Response:
    return json_response({"detail": message}, status=status)


def _auth(request: web.Request) -> web.Response | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[SETTINGS_KEY].api_key
    if scheme != "Key" or not key.strip() or (expected is not None and key.strip() != expected):
        return detail(401, "No user found for Key ID and Secret")
    return None


def _urls(request: web.Request, app_id: str, job: SimJob) -> dict[str, str]:
    base = f"{request.scheme}://{request.host}{PREFIX}/{app_id}/requests/{job.id}"
    return {"status_url": base + "/status", "response_url": base, "cancel_url": base + "/cancel"}


def status_of(request: web.Request, job: SimJob, with_logs: bool) -> dict[str, Any]:
    state = job.state()
    body: dict[str, Any] = {"request_id": job.id, **_urls(request, job.options["app"], job)}
    if state == "running":
        queued = job.fraction() < 0.1
        body["status"] = "IN_QUEUE" if queued else "IN_PROGRESS"
        if queued:
            body["queue_position"] = 0
    elif state == "cancelled":
        body["status"] = "CANCELED"
    else:
        body["status"] = "COMPLETED"
        if state == "failed":
            body["error"] = FAILURE_MESSAGE
    if with_logs:
        body["logs"] = ([{"message": f"Generating: {job.percent()}%", "level": "INFO", "timestamp": ""}]
                        if job.report_progress and state == "running" else [])
    return body


def _seconds(inputs: dict[str, Any], media: str) -> int | None:
    raw = inputs.get("seconds_total" if media == "music" else "duration", 30 if media == "music" else 5)
    try:
        seconds = int(raw)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds <= 600 else None


async def _submit(request: web.Request, record: Recorder, model_id: str) -> web.StreamResponse:
    body = await request.read()
    sim_headers = record(request, body)
    denied = _auth(request)
    if denied is not None:
        return denied
    try:
        inputs = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return detail(422, "The request body is not valid JSON.")
    if not isinstance(inputs, dict):
        return detail(422, "The request body must be an object.")
    try:
        base, directives = parse_directives(model_id, sim_headers, request.app[SETTINGS_KEY])
    except DirectiveError as exc:
        return detail(422, str(exc))
    if directives.reset:
        return await reset_connection(request)
    if directives.hang:
        return await hang_until_disconnect(request)
    await delay_ms(directives.latency_ms)
    if directives.status is not None:
        return detail(directives.status, f"Simulated error {directives.status}.")
    if directives.malformed:
        return malformed_json_response()
    seconds = _seconds(inputs, media_of(base))
    if seconds is None:
        return detail(422, "duration / seconds_total must be a whole number of seconds between 0 and 600")
    job = request.app[JOBS_KEY].create(_WIRE, base, directives, seconds, str(inputs.get("prompt", "")))
    job.options["app"] = "/".join(base.split("/")[:2])
    return json_response({"request_id": job.id, "status": "IN_QUEUE", "queue_position": 0,
                          **_urls(request, job.options["app"], job)})


async def _request(request: web.Request, record: Recorder, job_id: str, action: str) -> web.StreamResponse:
    record(request, b"")
    denied = _auth(request)
    if denied is not None:
        return denied
    job = request.app[JOBS_KEY].get(job_id, _WIRE)
    if job is None:
        return detail(404, "Request not found")
    if action == "status" and request.method == "GET":
        if job.poll_status is not None:
            return detail(job.poll_status, f"Simulated error {job.poll_status}.")
        return json_response(status_of(request, job, request.query.get("logs") == "1"))
    if action == "cancel" and request.method == "PUT":
        if job.state() != "running":
            return json_response({"status": "ALREADY_COMPLETED"}, status=400)
        job.cancelled = True
        return json_response({"status": "CANCELLATION_REQUESTED"}, status=202)
    if action == "" and request.method == "GET":
        state = job.state()
        if state == "failed":
            return detail(500, FAILURE_MESSAGE)
        if state != "completed":
            return detail(400, "Request is still in progress" if state == "running" else "Request was cancelled")
        file = {"url": file_url(request, job), "content_type": job.content_type, "file_name": job.filename,
                "file_size": len(media_bytes(job))}
        return json_response({_RESULT_KEYS[job.media]: file, "seed": 42})
    return detail(405, "Method not allowed")


def fal_routes(record: Recorder) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) for everything under /fal; app.py registers them."""

    async def handle(request: web.Request) -> web.StreamResponse:
        # A submit (POST to a model id, which may have a sub-path) or a request's status/result/cancel.
        path = request.match_info["path"]
        _, sep, tail = path.partition("/requests/")
        if sep and tail:
            job_id, _, action = tail.partition("/")
            return await _request(request, record, job_id, action)
        if request.method == "POST":
            return await _submit(request, record, path)
        return detail(405, "Method not allowed")

    return [("*", PREFIX + "/{path:.+}", handle)]
